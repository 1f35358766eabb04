#include "models/processors/llava_processor.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::models {
namespace {

// rows [top, top + height) x columns [left, left + width) of `image`.
Image crop(const Image& image, int top, int left, int height, int width) {
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  for (int y = 0; y < height; ++y) {
    const auto* from = image.rgb.data() + (static_cast<std::size_t>(top + y) * image.width + left) * 3;
    std::copy(from, from + static_cast<std::size_t>(width) * 3, out.rgb.data() + static_cast<std::size_t>(y) * width * 3);
  }
  return out;
}

// `image` inside zeros: `vertical` rows above and below, `horizontal` columns
// left and right (HF pads both sides by the same floor((target - size) / 2)).
Image pad(const Image& image, int vertical, int horizontal) {
  Image out;
  out.width = image.width + 2 * horizontal;
  out.height = image.height + 2 * vertical;
  out.rgb.assign(static_cast<std::size_t>(out.width) * static_cast<std::size_t>(out.height) * 3, 0);
  for (int y = 0; y < image.height; ++y) {
    const auto* from = image.rgb.data() + static_cast<std::size_t>(y) * image.width * 3;
    std::copy(from, from + static_cast<std::size_t>(image.width) * 3,
              out.rgb.data() + (static_cast<std::size_t>(y + vertical) * out.width + horizontal) * 3);
  }
  return out;
}

at::Tensor to_tensor(image::FloatImage processed) {
  return at::from_blob(processed.chw.data(), {processed.channels, processed.height, processed.width}, at::kFloat).clone();
}

}  // namespace

GridPinpoints read_grid_pinpoints(const nlohmann::json& value, const std::string& where) {
  GridPinpoints pinpoints;
  if (!value.is_array() || value.empty()) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: image_grid_pinpoints must be a non-empty list", where));
  }
  for (const auto& entry : value) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_number_integer() || !entry[1].is_number_integer() ||
        entry[0].get<std::int64_t>() <= 0 || entry[1].get<std::int64_t>() <= 0) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: image_grid_pinpoints entries must be [height, width] > 0, found {}", where,
                              entry.dump()));
    }
    pinpoints.push_back({entry[0].get<std::int64_t>(), entry[1].get<std::int64_t>()});
  }
  return pinpoints;
}

LlavaImageProcessorConfig LlavaImageProcessorConfig::from_file(const std::string& path) {
  const std::string text = util::read_file_text(path, 1u << 20);
  LlavaImageProcessorConfig config;
  config.tile = image::ImageProcessorConfig::from_json(text, path);
  const std::string& type = config.tile.image_processor_type;
  if (type == "LlavaNextImageProcessor") {
    config.kind = Kind::Next;
  } else if (type == "LlavaOnevisionImageProcessor") {
    config.kind = Kind::OneVision;
  } else if (type != "CLIPImageProcessor") {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: image_processor_type '{}' is not a LLaVA processor", path, type));
  }
  if (config.kind != Kind::Clip) {
    const auto json = util::parse_json(text, path, ErrorCode::InvalidModel);
    if (!json.contains("image_grid_pinpoints")) {
      throw Error(ErrorCode::InvalidModel, fmt::format("{}: missing image_grid_pinpoints", path));
    }
    config.pinpoints = read_grid_pinpoints(json["image_grid_pinpoints"], path);
  }
  if (config.tile_size() <= 0 || (config.kind == Kind::OneVision && config.tile.size_height != config.tile.size_width)) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: the tiles must be square", path));
  }
  return config;
}

std::int64_t LlavaImageProcessorConfig::tile_size() const {
  if (kind == Kind::OneVision) return tile.size_height;
  return tile.do_center_crop ? tile.crop_height : (tile.shortest_edge > 0 ? tile.shortest_edge : tile.size_height);
}

std::array<std::int64_t, 2> select_best_resolution(std::int64_t height, std::int64_t width,
                                                   const GridPinpoints& pinpoints) {
  std::array<std::int64_t, 2> best{0, 0};
  std::int64_t max_effective = 0;
  double min_wasted = std::numeric_limits<double>::infinity();
  for (const auto& [h, w] : pinpoints) {
    const double scale = std::min(double(w) / double(width), double(h) / double(height));
    const auto downscaled_w = static_cast<std::int64_t>(double(width) * scale);
    const auto downscaled_h = static_cast<std::int64_t>(double(height) * scale);
    const std::int64_t effective = std::min(downscaled_w * downscaled_h, width * height);
    const double wasted = double(w * h - effective);
    if (effective > max_effective || (effective == max_effective && wasted < min_wasted)) {
      max_effective = effective;
      min_wasted = wasted;
      best = {h, w};
    }
  }
  return best;
}

std::array<std::int64_t, 2> patch_output_size(std::int64_t height, std::int64_t width,
                                              std::array<std::int64_t, 2> target) {
  const double scale_w = double(target[1]) / double(width);
  const double scale_h = double(target[0]) / double(height);
  if (scale_w < scale_h) {
    return {std::min(static_cast<std::int64_t>(std::ceil(double(height) * scale_w)), target[0]), target[1]};
  }
  return {target[0], std::min(static_cast<std::int64_t>(std::ceil(double(width) * scale_h)), target[1])};
}

double python_round7(double x) {
  // Python formats the exact binary value correctly rounded; glibc's printf does too.
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.7f", x);
  return std::strtod(buffer, nullptr);
}

double python_floordiv(double a, double b) {
  // CPython float_floor_div: floor of the true quotient via fmod, snapped.
  const double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double floored = std::floor(div);
  if (div - floored > 0.5) floored += 1.0;
  return floored;
}

at::Tensor unpad_image(const at::Tensor& features, std::int64_t height, std::int64_t width) {
  const std::int64_t current_h = features.size(1), current_w = features.size(2);
  if (double(width) / double(height) > double(current_w) / double(current_h)) {
    const auto new_h = static_cast<std::int64_t>(python_round7(double(height) * (double(current_w) / double(width))));
    const std::int64_t padding = (current_h - new_h) / 2;
    return features.narrow(1, padding, current_h - 2 * padding);
  }
  const auto new_w = static_cast<std::int64_t>(python_round7(double(width) * (double(current_h) / double(height))));
  const std::int64_t padding = (current_w - new_w) / 2;
  return features.narrow(2, padding, current_w - 2 * padding);
}

LlavaProcessedImage llava_preprocess(const Image& image, const LlavaImageProcessorConfig& config) {
  if (image.empty()) throw Error(ErrorCode::InvalidImage, "LLaVA image processor: empty image");
  LlavaProcessedImage out;
  out.height = image.height;
  out.width = image.width;
  if (config.kind == LlavaImageProcessorConfig::Kind::Clip) {
    out.pixel_values = to_tensor(image::preprocess(image, config.tile)).unsqueeze(0);
    return out;
  }
  // The grid: resized into the best pinpoint, zero-padded around, cut into tiles.
  const auto best = select_best_resolution(image.height, image.width, config.pinpoints);
  const auto [resized_h, resized_w] = patch_output_size(image.height, image.width, best);
  const Image resized = (resized_h == image.height && resized_w == image.width)
                            ? image
                            : image::resize(image, static_cast<int>(resized_w), static_cast<int>(resized_h),
                                            config.tile.resample);
  // Symmetric padding: with an odd remainder the canvas is one pixel short and
  // the last row (column) of tiles is narrower, as in HF.
  const Image canvas = pad(resized, static_cast<int>((best[0] - resized_h) / 2), static_cast<int>((best[1] - resized_w) / 2));
  const auto tile = static_cast<int>(config.tile_size());
  // The base tile: the whole image squashed to the tile's size.
  const int base_h = config.kind == LlavaImageProcessorConfig::Kind::OneVision
                         ? config.tile.size_height
                         : (config.tile.shortest_edge > 0 ? config.tile.shortest_edge
                                                          : std::min(config.tile.size_height, config.tile.size_width));
  const int base_w = config.kind == LlavaImageProcessorConfig::Kind::OneVision ? config.tile.size_width : base_h;
  std::vector<at::Tensor> tiles{to_tensor(image::preprocess(
      image::resize(image, base_w, base_h, config.tile.resample), config.tile))};
  for (int top = 0; top < canvas.height; top += tile) {
    for (int left = 0; left < canvas.width; left += tile) {
      const Image part = crop(canvas, top, left, std::min(tile, canvas.height - top), std::min(tile, canvas.width - left));
      tiles.push_back(to_tensor(image::preprocess(part, config.tile)));
    }
  }
  out.pixel_values = at::stack(tiles);
  return out;
}

}  // namespace imgjudge::models
