#include "image/preprocess.hpp"

#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "image/processor_json.hpp"
#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::image {
namespace {

using Json = nlohmann::json;
using namespace processor_json;

constexpr const char* kClip = "CLIPImageProcessor";
constexpr const char* kSiglip = "SiglipImageProcessor";
// LLaVA's anyres processors share the per-tile pipeline: LLaVA-NeXT CLIP's
// (shortest edge, center crop), LLaVA-OneVision a plain resize to height x
// width. Their tiling lives with the family (models/processors).
constexpr const char* kLlavaNext = "LlavaNextImageProcessor";
constexpr const char* kLlavaOnevision = "LlavaOnevisionImageProcessor";
// transformers' OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (CLIP's defaults).
constexpr std::array<double, 3> kOpenAiClipMean = {0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kOpenAiClipStd = {0.26862954, 0.26130258, 0.27577711};

}  // namespace

ImageProcessorConfig ImageProcessorConfig::from_json(const std::string& json_text, const std::string& source) {
  const Json root = util::parse_json(json_text, source, ErrorCode::InvalidModel);
  if (!root.is_object()) throw Error(ErrorCode::InvalidModel, fmt::format("{}: expected a JSON object", source));

  ImageProcessorConfig config;
  config.image_processor_type = processor_type(root);
  const bool is_onevision = config.image_processor_type == kLlavaOnevision;
  const bool is_clip = config.image_processor_type == kClip || config.image_processor_type == kLlavaNext;
  const bool is_siglip = config.image_processor_type == kSiglip || is_onevision;
  if (!is_clip && !is_siglip) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: image_processor_type '{}' is not supported by this pipeline "
                            "(supported: {}, {}, {}, {})",
                            source, config.image_processor_type, kClip, kSiglip, kLlavaNext, kLlavaOnevision));
  }
  // LLaVA-OneVision: SigLIP's geometry, CLIP's normalization by default.
  const bool clip_statistics = is_clip || is_onevision;
  const int default_size = is_onevision ? 384 : 224;

  // Defaults are each processor's constructor defaults in transformers.
  config.do_resize = read_bool(root, "do_resize", true, source);
  // LlavaOnevisionImageProcessor has no crop step, whatever its file says.
  config.do_center_crop = !is_onevision && read_bool(root, "do_center_crop", is_clip, source);
  config.do_rescale = read_bool(root, "do_rescale", true, source);
  config.do_normalize = read_bool(root, "do_normalize", true, source);
  config.do_convert_rgb = read_bool(root, "do_convert_rgb", clip_statistics, source);
  config.image_mean =
      read_channels(root, "image_mean", clip_statistics ? kOpenAiClipMean : std::array<double, 3>{0.5, 0.5, 0.5}, source);
  config.image_std =
      read_channels(root, "image_std", clip_statistics ? kOpenAiClipStd : std::array<double, 3>{0.5, 0.5, 0.5}, source);
  for (double s : config.image_std) {
    if (!(std::isfinite(s) && s != 0.0)) bad_value(source, "image_std", "must be finite and non-zero");
  }
  for (double m : config.image_mean) {
    if (!std::isfinite(m)) bad_value(source, "image_mean", "must be finite");
  }

  if (const Json* resample = find(root, "resample"); resample != nullptr) {
    if (!resample->is_number_integer()) bad_value(source, "resample", "must be an integer PIL filter code");
    try {
      config.resample = resample_from_pil_code(resample->get<int>());
    } catch (const Error& e) {
      bad_value(source, "resample", e.what());
    }
  }

  if (const Json* factor = find(root, "rescale_factor"); factor != nullptr) {
    if (!factor->is_number() || !std::isfinite(factor->get<double>()) || factor->get<double>() <= 0) {
      bad_value(source, "rescale_factor", fmt::format("must be a positive number, found {}", factor->dump()));
    }
    config.rescale_factor = factor->get<double>();
  }

  // size: {"shortest_edge": n} or {"height": h, "width": w}; a bare integer
  // means shortest_edge for CLIP (HF get_size_dict with default_to_square=False).
  const Json* size = find(root, "size");
  if (size == nullptr) {
    if (is_clip) config.shortest_edge = default_size;
    else config.size_height = config.size_width = default_size;
  } else if (size->is_number_integer() && is_clip) {
    config.shortest_edge = read_positive_int(*size, "size", source);
  } else if (size->is_object() && size->size() == 1 && size->contains("shortest_edge") && is_clip) {
    config.shortest_edge = read_positive_int(size->at("shortest_edge"), "size.shortest_edge", source);
  } else if (size->is_object() && size->size() == 2 && size->contains("height") && size->contains("width")) {
    config.size_height = read_positive_int(size->at("height"), "size.height", source);
    config.size_width = read_positive_int(size->at("width"), "size.width", source);
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: 'size' {} is not supported for {} (expected {})", source, size->dump(),
                            config.image_processor_type,
                            is_clip ? "{\"shortest_edge\": n} or {\"height\": h, \"width\": w}"
                                    : "{\"height\": h, \"width\": w}"));
  }

  if (config.do_center_crop) {
    const Json* crop = find(root, "crop_size");
    if (crop == nullptr) {
      config.crop_height = config.crop_width = 224;
    } else if (crop->is_number_integer()) {
      config.crop_height = config.crop_width = read_positive_int(*crop, "crop_size", source);
    } else if (crop->is_object() && crop->contains("height") && crop->contains("width")) {
      config.crop_height = read_positive_int(crop->at("height"), "crop_size.height", source);
      config.crop_width = read_positive_int(crop->at("width"), "crop_size.width", source);
    } else {
      bad_value(source, "crop_size", fmt::format("must be an integer or {{\"height\", \"width\"}}, found {}",
                                                 crop->dump()));
    }
  }
  return config;
}

ImageProcessorConfig ImageProcessorConfig::from_file(const std::string& path) {
  return from_json(util::read_file_text(path, 1u << 20), path);
}

std::array<int, 2> shortest_edge_output_size(int height, int width, int shortest_edge) {
  if (height < 1 || width < 1 || shortest_edge < 1) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("shortest_edge_output_size: bad sizes {}x{} -> {}", width, height, shortest_edge));
  }
  const bool portrait = width <= height;
  const int short_side = portrait ? width : height;
  const int long_side = portrait ? height : width;
  // Python: int(size * long / short): exact integer product, one correctly
  // rounded division, truncation. The same in double.
  const int new_long = static_cast<int>(double(std::int64_t(shortest_edge) * long_side) / short_side);
  return portrait ? std::array<int, 2>{new_long, shortest_edge} : std::array<int, 2>{shortest_edge, new_long};
}

Image center_crop(const Image& image, int crop_height, int crop_width) {
  if (image.empty() || crop_height < 1 || crop_width < 1) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("center_crop: cannot crop a {}x{} image to {}x{}", image.width, image.height,
                            crop_width, crop_height));
  }
  // Python floor division: negative when the crop is larger than the image.
  auto floor_half = [](int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  const int top = floor_half(image.height - crop_height);
  const int left = floor_half(image.width - crop_width);
  Image out;
  out.width = crop_width;
  out.height = crop_height;
  out.rgb.assign(std::size_t(crop_width) * crop_height * 3, 0);
  for (int y = 0; y < crop_height; ++y) {
    const int source_y = y + top;
    if (source_y < 0 || source_y >= image.height) continue;
    for (int x = 0; x < crop_width; ++x) {
      const int source_x = x + left;
      if (source_x < 0 || source_x >= image.width) continue;
      std::memcpy(&out.rgb[(std::size_t(y) * crop_width + x) * 3],
                  &image.rgb[(std::size_t(source_y) * image.width + source_x) * 3], 3);
    }
  }
  return out;
}

FloatImage rescale_and_normalize(const Image& image, bool do_rescale, double rescale_factor, bool do_normalize,
                                 const std::array<double, 3>& mean, const std::array<double, 3>& std) {
  FloatImage out;
  out.channels = 3;
  out.height = image.height;
  out.width = image.width;
  const std::size_t plane = std::size_t(image.width) * image.height;
  out.chw.resize(plane * 3);
  for (int c = 0; c < 3; ++c) {
    // numpy: np.array(mean, dtype=float32), then float32 arithmetic.
    const float mean_c = static_cast<float>(mean[std::size_t(c)]);
    const float std_c = static_cast<float>(std[std::size_t(c)]);
    float* dst = &out.chw[plane * std::size_t(c)];
    for (std::size_t i = 0; i < plane; ++i) {
      const std::uint8_t v = image.rgb[i * 3 + std::size_t(c)];
      // HF rescales in float64 and casts to float32 once at the end.
      float x = do_rescale ? static_cast<float>(double(v) * rescale_factor) : static_cast<float>(v);
      if (do_normalize) x = (x - mean_c) / std_c;
      dst[i] = x;
    }
  }
  return out;
}

Image resize_and_crop(const Image& image, const ImageProcessorConfig& config) {
  Image current = image;
  if (config.do_resize) {
    if (config.shortest_edge > 0) {
      const auto [height, width] = shortest_edge_output_size(image.height, image.width, config.shortest_edge);
      current = resize(current, width, height, config.resample);
    } else {
      current = resize(current, config.size_width, config.size_height, config.resample);
    }
  }
  if (config.do_center_crop) current = center_crop(current, config.crop_height, config.crop_width);
  return current;
}

FloatImage preprocess(const Image& image, const ImageProcessorConfig& config) {
  return rescale_and_normalize(resize_and_crop(image, config), config.do_rescale, config.rescale_factor,
                               config.do_normalize, config.image_mean, config.image_std);
}

}  // namespace imgjudge::image
