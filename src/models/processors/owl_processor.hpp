// The image processors of the OWL detectors (transformers 4.50.3, the slow
// numpy processors), value for value:
//   Owlv2ImageProcessor   rescale (float64 product, float32 result) -> pad to a
//                         square at the bottom/right with 0.5 -> skimage-style
//                         resize (gaussian anti-aliasing, linear zoom, clip to
//                         the input's range) -> normalize
//   OwlViTImageProcessor  PIL resize of the uint8 image -> optional center crop
//                         -> rescale -> normalize (CLIP's pipeline at a fixed size)
// Torch-free: the output is channels-first float32 (image::FloatImage).
#pragma once

#include <array>
#include <string>

#include "image/preprocess.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::models {

struct OwlImageProcessorConfig {
  enum class Kind { Owlv2, OwlVit };
  Kind kind = Kind::Owlv2;
  bool do_resize = true;
  int height = 960;  ///< size.height (an int size N means N x N)
  int width = 960;   ///< size.width
  /// Owlv2: pad to max(height, width) square before resizing.
  bool do_pad = true;
  /// OwlViT: the PIL filter of the resize (Owlv2 stores one and ignores it:
  /// its resize is always linear).
  image::Resample resample = image::Resample::Bicubic;
  /// OwlViT: center crop after the resize.
  bool do_center_crop = false;
  int crop_height = 768;
  int crop_width = 768;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};  ///< OPENAI_CLIP_MEAN
  std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};   ///< OPENAI_CLIP_STD

  /// Parses preprocessor_config.json text (image_processor_type
  /// "Owlv2ImageProcessor" or "OwlViTImageProcessor", or the older
  /// feature_extractor_type "OwlViTFeatureExtractor"); absent keys take the
  /// class defaults. Error(InvalidModel) naming `source` for a malformed
  /// value, Error(Unsupported) for another processor type.
  static OwlImageProcessorConfig from_json(const std::string& json_text, const std::string& source);
  /// Reads and parses a file (Error(Io) if it cannot be read).
  static OwlImageProcessorConfig from_file(const std::string& path);
};

/// Where a box of the processed image lies in the original image: a point
/// (u, v) in [0, 1] of pixel_values' width and height is original pixel
/// (scale_x * u + offset_x, scale_y * v + offset_y). Owlv2 with padding:
/// scale = the padded square's side; a plain resize: (width, height), as HF's
/// post-processing scales; a center crop shifts and narrows the window.
struct OwlBoxFrame {
  float scale_x = 1, offset_x = 0, scale_y = 1, offset_y = 0;
};
OwlBoxFrame owl_box_frame(int height, int width, const OwlImageProcessorConfig& config);

/// What the processor puts in pixel_values[0] for one uint8 RGB image:
/// [3, height, width] float32 (the configured size when resizing).
/// Error(InvalidArgument) for an empty image.
image::FloatImage owl_preprocess(const Image& image, const OwlImageProcessorConfig& config);

}  // namespace imgjudge::models
