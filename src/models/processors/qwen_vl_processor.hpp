// Qwen2VLImageProcessor (Qwen2-VL and Qwen2.5-VL; transformers 4.50.3
// image_processing_qwen2_vl.py): smart_resize to multiples of patch x merge
// within [min_pixels, max_pixels], PIL resize, rescale and normalize, then
// the image cut into (C, T, P, P) patches, merge window by merge window.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "imgjudge/image.hpp"

namespace imgjudge::models {

/// One image's patch grid: t frames (1 for a still image) x h x w patches.
struct ImageGrid {
  std::int64_t t = 1, h = 0, w = 0;
  std::int64_t patches() const { return t * h * w; }
};

/// Settings of preprocessor_config.json.
struct QwenImageProcessorConfig {
  std::int64_t min_pixels = 56 * 56;
  std::int64_t max_pixels = 28 * 28 * 1280;
  std::int64_t patch_size = 14;
  std::int64_t temporal_patch_size = 2;
  std::int64_t merge_size = 2;
  int resample = 3;  ///< PIL code (bicubic).
  bool do_resize = true, do_rescale = true, do_normalize = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};
  static QwenImageProcessorConfig from_file(const std::string& path);
  /// What the published Qwen2-VL / Qwen2.5-VL checkpoints ship (max_pixels 12845056).
  nlohmann::json to_json() const;
};

/// smart_resize: {height, width}, both multiples of `factor`, area within
/// [min_pixels, max_pixels], aspect kept (Python round = half to even).
/// Error(InvalidImage) for an aspect ratio above 200 or a side below 10 px.
std::array<std::int64_t, 2> qwen_smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                              std::int64_t min_pixels, std::int64_t max_pixels);

struct ProcessedImage {
  at::Tensor pixel_values;  ///< [grid.patches(), patch_dim] float32, processor order.
  ImageGrid grid;
};

/// What Qwen2VLImageProcessor()(images=image) returns for one still image.
ProcessedImage qwen_preprocess_image(const Image& image, const QwenImageProcessorConfig& config);

}  // namespace imgjudge::models
