// Torch-free image preprocessing that reproduces Hugging Face image processors
// (transformers 4.50, the "slow" PIL-based processors) value for value:
//   CLIPImageProcessor:   resize shortest edge -> center crop -> rescale -> normalize
//   SiglipImageProcessor: resize to a fixed height x width -> rescale -> normalize
// The building blocks are public so other families (e.g. Qwen2-VL's
// smart_resize) can compose them with their own size rules.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "image/resize.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::image {

/// A float image in channels-first layout: chw[(c * height + y) * width + x].
struct FloatImage {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> chw;
};

/// The fields of a preprocessor_config.json that the CLIP/SigLIP pipeline uses.
struct ImageProcessorConfig {
  std::string image_processor_type;  ///< e.g. "CLIPImageProcessor"
  bool do_resize = true;
  int shortest_edge = 0;  ///< size.shortest_edge; 0 when size is height x width
  int size_height = 0;    ///< size.height / size.width; 0 when size is shortest_edge
  int size_width = 0;
  Resample resample = Resample::Bicubic;
  bool do_center_crop = false;
  int crop_height = 0;
  int crop_width = 0;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean{0.5, 0.5, 0.5};
  std::array<double, 3> image_std{0.5, 0.5, 0.5};
  bool do_convert_rgb = true;  ///< Informational: our images are always RGB already.

  /// Parses preprocessor_config.json text. `source` names the file in errors.
  /// Throws Error(InvalidModel) for malformed JSON or values (missing size,
  /// unknown resample code, zero std, ...), and Error(Unsupported) for an
  /// image_processor_type this pipeline does not implement.
  static ImageProcessorConfig from_json(const std::string& json_text, const std::string& source);
  /// Reads and parses a file (Error(Io) if it cannot be read).
  static ImageProcessorConfig from_file(const std::string& path);
};

/// HF get_resize_output_image_size(default_to_square=False): the short side
/// becomes `shortest_edge`, the long side int(shortest_edge * long / short)
/// (truncated). Returns {height, width}.
std::array<int, 2> shortest_edge_output_size(int height, int width, int shortest_edge);

/// HF center_crop: the crop_height x crop_width window at offsets
/// top = (height - crop_height) // 2, left = (width - crop_width) // 2 (floor
/// division); where the image is smaller than the crop, the outside is zero
/// (black), exactly as HF's zero padding.
Image center_crop(const Image& image, int crop_height, int crop_width);

/// HF rescale + normalize, channels first:
///   x = float32(double(v) * rescale_factor)        if do_rescale (else float32(v))
///   x = (x - float32(mean[c])) / float32(std[c])   if do_normalize, in float32.
FloatImage rescale_and_normalize(const Image& image, bool do_rescale, double rescale_factor,
                                 bool do_normalize, const std::array<double, 3>& mean,
                                 const std::array<double, 3>& std);

/// The geometric part of the pipeline (resize, then center crop), 8-bit.
Image resize_and_crop(const Image& image, const ImageProcessorConfig& config);

/// The whole pipeline: what the HF processor puts in pixel_values[0], shape
/// [3, height, width].
FloatImage preprocess(const Image& image, const ImageProcessorConfig& config);

}  // namespace imgjudge::image
