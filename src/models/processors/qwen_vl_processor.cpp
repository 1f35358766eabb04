#include "models/processors/qwen_vl_processor.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "image/preprocess.hpp"
#include "image/resize.hpp"
#include "imgjudge/error.hpp"
#include "runtime/config.hpp"

namespace imgjudge::models {

QwenImageProcessorConfig QwenImageProcessorConfig::from_file(const std::string& path) {
  const runtime::HfConfig json = runtime::HfConfig::load(path);
  QwenImageProcessorConfig c;
  const runtime::HfConfig size = json.section("size");
  // 4.50 writes min_pixels/max_pixels and size {shortest_edge, longest_edge}; older files size {min_pixels, max_pixels}.
  c.min_pixels = json.get_int("min_pixels", size.get_int("shortest_edge", size.get_int("min_pixels", c.min_pixels)));
  c.max_pixels = json.get_int("max_pixels", size.get_int("longest_edge", size.get_int("max_pixels", c.max_pixels)));
  c.patch_size = json.get_int("patch_size", c.patch_size);
  c.temporal_patch_size = json.get_int("temporal_patch_size", c.temporal_patch_size);
  c.merge_size = json.get_int("merge_size", c.merge_size);
  c.resample = static_cast<int>(json.get_int("resample", c.resample));
  c.do_resize = json.get_bool("do_resize", c.do_resize);
  c.do_rescale = json.get_bool("do_rescale", c.do_rescale);
  c.do_normalize = json.get_bool("do_normalize", c.do_normalize);
  c.rescale_factor = json.get_double("rescale_factor", c.rescale_factor);
  const auto mean = json.get_doubles("image_mean", {c.image_mean.begin(), c.image_mean.end()});
  const auto std = json.get_doubles("image_std", {c.image_std.begin(), c.image_std.end()});
  if (mean.size() != 3 || std.size() != 3) {
    throw Error(ErrorCode::InvalidModel, path + ": image_mean and image_std must have 3 values");
  }
  for (std::size_t i = 0; i < 3; ++i) {
    c.image_mean[i] = mean[i];
    c.image_std[i] = std[i];
    if (std[i] == 0) throw Error(ErrorCode::InvalidModel, path + ": image_std has a zero");
  }
  if (c.patch_size <= 0 || c.temporal_patch_size <= 0 || c.merge_size <= 0 || c.min_pixels <= 0 ||
      c.max_pixels < c.min_pixels) {
    throw Error(ErrorCode::InvalidModel, path + ": patch/merge sizes must be positive and min_pixels <= max_pixels");
  }
  image::resample_from_pil_code(c.resample);  // validates the code
  return c;
}

std::array<std::int64_t, 2> qwen_smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                              std::int64_t min_pixels, std::int64_t max_pixels) {
  if (height < 10 || width < 10) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("image {}x{} is too small for Qwen2-VL (sides must be >= 10 px)", width, height));
  }
  if (static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width)) > 200) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("image {}x{}: aspect ratio above 200 is not supported by Qwen2-VL", width, height));
  }
  const double h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  // Python's round() rounds halves to even, as std::nearbyint in the default mode.
  std::int64_t h_bar = std::max<std::int64_t>(factor, static_cast<std::int64_t>(std::nearbyint(h / f)) * factor);
  std::int64_t w_bar = std::max<std::int64_t>(factor, static_cast<std::int64_t>(std::nearbyint(w / f)) * factor);
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(h * w / static_cast<double>(max_pixels));
    h_bar = std::max<std::int64_t>(factor, static_cast<std::int64_t>(std::floor(h / beta / f)) * factor);
    w_bar = std::max<std::int64_t>(factor, static_cast<std::int64_t>(std::floor(w / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (h * w));
    h_bar = static_cast<std::int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<std::int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {h_bar, w_bar};
}

ProcessedImage qwen_preprocess_image(const Image& image, const QwenImageProcessorConfig& config) {
  if (image.empty()) throw Error(ErrorCode::InvalidImage, "Qwen2-VL image processor: empty image");
  const std::int64_t factor = config.patch_size * config.merge_size;
  std::int64_t height = image.height, width = image.width;
  if (config.do_resize) {
    const auto size = qwen_smart_resize(height, width, factor, config.min_pixels, config.max_pixels);
    height = size[0];
    width = size[1];
  }
  if (height % factor != 0 || width % factor != 0) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("image {}x{} is not a multiple of {} and do_resize is off", width, height, factor));
  }
  // PIL returns a copy when the size does not change, so no resampling then.
  const Image resized = (height == image.height && width == image.width)
                            ? image
                            : image::resize(image, static_cast<int>(width), static_cast<int>(height),
                                            image::resample_from_pil_code(config.resample));
  image::FloatImage chw = image::rescale_and_normalize(resized, config.do_rescale, config.rescale_factor,
                                                       config.do_normalize, config.image_mean, config.image_std);
  const std::int64_t p = config.patch_size, m = config.merge_size, tp = config.temporal_patch_size;
  const std::int64_t grid_h = height / p, grid_w = width / p;
  at::Tensor pixels = at::from_blob(chw.chw.data(), {3, height, width}, at::kFloat);
  // A still image is its own frame repeated temporal_patch_size times; patches
  // are flattened as (C, T, P, P), ordered merge window by merge window.
  at::Tensor flat = pixels.unsqueeze(0)
                        .expand({tp, 3, height, width})
                        .reshape({1, tp, 3, grid_h / m, m, p, grid_w / m, m, p})
                        .permute({0, 3, 6, 4, 7, 2, 1, 5, 8})
                        .reshape({grid_h * grid_w, 3 * tp * p * p})
                        .clone();
  return ProcessedImage{flat, ImageGrid{1, grid_h, grid_w}};
}

nlohmann::json QwenImageProcessorConfig::to_json() const {
  return {{"image_processor_type", "Qwen2VLImageProcessor"}, {"do_resize", do_resize}, {"resample", resample},
          {"do_rescale", do_rescale}, {"rescale_factor", rescale_factor}, {"do_normalize", do_normalize},
          {"image_mean", image_mean}, {"image_std", image_std}, {"do_convert_rgb", true},
          {"min_pixels", min_pixels}, {"max_pixels", max_pixels},
          {"size", {{"shortest_edge", min_pixels}, {"longest_edge", max_pixels}}}, {"patch_size", patch_size},
          {"temporal_patch_size", temporal_patch_size}, {"merge_size", merge_size}};
}

}  // namespace imgjudge::models
