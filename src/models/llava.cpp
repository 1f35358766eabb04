#include "models/llava.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/safetensors.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

using Variant = LlavaConfig::Variant;

Variant variant_of(const std::string& model_type, const std::string& where) {
  if (model_type == "llava") return Variant::Llava;
  if (model_type == "llava_next") return Variant::Next;
  if (model_type == "llava_onevision") return Variant::OneVision;
  throw Error(ErrorCode::Unsupported, fmt::format("{}: model_type \"{}\" is not a LLaVA family", where, model_type));
}

// The section with its model_type spelled out: save_pretrained leaves it out
// when it is the family's default text model.
runtime::HfConfig with_model_type(const runtime::HfConfig& section, const std::string& fallback) {
  if (section.has("model_type")) return section;
  nlohmann::json json = section.json();
  json["model_type"] = fallback;
  return runtime::HfConfig(json, section.file(), section.qualified(""));
}

// "anyres_max_9" -> 9: Python's str.strip("anyres_max_") strips those
// characters from both ends, then int().
std::int64_t anyres_max(const std::string& value, const std::string& where) {
  const std::string stripped_chars = "anyres_max_";
  const auto first = value.find_first_not_of(stripped_chars);
  const auto last = value.find_last_not_of(stripped_chars);
  const std::string digits = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 6 ||
      std::stoll(digits) <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: vision_aspect_ratio \"{}\" is not anyres_max_<N>", where, value));
  }
  return std::stoll(digits);
}

// Checkpoints of transformers >= 4.52 nest the parts under "model.".
struct Layout {
  std::string transformer, lm_head, tower, projector, newline;
};
Layout layout_of(const runtime::WeightStore& weights) {
  if (weights.contains("model.language_model.embed_tokens.weight")) {
    return {"model.language_model", "lm_head.weight", "model.vision_tower.vision_model", "model.multi_modal_projector",
            "model.image_newline"};
  }
  return {"language_model.model", "language_model.lm_head.weight", "vision_tower.vision_model",
          "multi_modal_projector", "image_newline"};
}

std::unique_ptr<const Decoder> text_decoder(const runtime::HfConfig& root, const LlavaConfig& config,
                                            const runtime::WeightStore& weights) {
  const Layout layout = layout_of(weights);
  return load_text_decoder(with_model_type(root.section("text_config"), config.text_model_type),
                           weights.scope(layout.transformer), weights, layout.lm_head, root.file());
}

}  // namespace

LlavaConfig LlavaConfig::from_config(const runtime::HfConfig& config) {
  LlavaConfig c;
  const std::string where = config.file();
  c.variant = variant_of(config.get_string("model_type"), where);
  const bool onevision = c.variant == Variant::OneVision;

  c.text_model_type = config.section("text_config").get_string("model_type", onevision ? "qwen2" : "llama");
  const runtime::HfConfig vision = config.section("vision_config");
  const std::string tower = vision.get_string("model_type", onevision ? "siglip_vision_model" : "clip_vision_model");
  if (tower != "clip_vision_model" && tower != "siglip_vision_model") {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: vision tower \"{}\" is not supported (clip_vision_model, siglip_vision_model)", where,
                            tower));
  }
  c.siglip_tower = tower == "siglip_vision_model";
  // The config classes' defaults; with no vision_config at all, LLaVA's own
  // (CLIP ViT-L/14 at 336 px, SigLIP so400m at 384 px).
  VitConfig defaults = c.siglip_tower ? VitConfig{EncoderConfig{768, 3072, 12, 12, "gelu_pytorch_tanh", 1e-6}, 3, 224, 16}
                                      : VitConfig{EncoderConfig{768, 3072, 12, 12, "quick_gelu", 1e-5}, 3, 224, 32};
  if (!config.has("vision_config")) {
    defaults = c.siglip_tower ? VitConfig{EncoderConfig{1152, 4304, 26, 14, "gelu_pytorch_tanh", 1e-6}, 3, 384, 14}
                              : VitConfig{EncoderConfig{1024, 4096, 24, 16, "quick_gelu", 1e-5}, 3, 336, 14};
  }
  c.vision = VitConfig::read(vision, defaults);

  const std::int64_t default_layer = onevision ? -1 : -2;
  if (config.has("vision_feature_layer") && config.json().at("vision_feature_layer").is_array()) {
    for (double layer : config.get_doubles("vision_feature_layer", {})) c.feature_layers.push_back(std::int64_t(layer));
    if (c.feature_layers.empty()) throw Error(ErrorCode::InvalidModel, where + ": vision_feature_layer is an empty list");
  } else {
    c.feature_layers = {config.get_int("vision_feature_layer", default_layer)};
  }
  for (std::int64_t layer : c.feature_layers) hidden_state_index(layer, c.vision.encoder.num_layers);
  const std::string strategy = config.get_string("vision_feature_select_strategy", onevision ? "full" : "default");
  if (strategy != "default" && strategy != "full") {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: vision_feature_select_strategy \"{}\" must be default or full", where, strategy));
  }
  c.drop_class_token = strategy == "default";
  c.projector_act = config.get_string("projector_hidden_act", "gelu");
  runtime::nn::activation(c.projector_act);  // Error(Unsupported) now
  c.projector_bias = config.get_bool("multimodal_projector_bias", true);
  c.image_token_id = config.get_int("image_token_index", config.get_int("image_token_id", onevision ? 151646 : 32000));

  if (c.variant != Variant::Llava) {
    if (config.has("image_grid_pinpoints")) {
      c.pinpoints = read_grid_pinpoints(config.json().at("image_grid_pinpoints"), where);
    } else if (onevision) {
      for (std::int64_t h = 384; h <= 2304; h += 384) {
        for (std::int64_t w = 384; w <= 2304; w += 384) c.pinpoints.push_back({h, w});
      }
    } else {
      c.pinpoints = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
    }
  }
  if (onevision) c.max_tiles = anyres_max(config.get_string("vision_aspect_ratio", "anyres_max_9"), where);
  return c;
}

std::shared_ptr<const LlavaModel> LlavaModel::load(const std::string& dir, const LoadOptions& options) {
  const runtime::HfConfig root = runtime::HfConfig::load(util::join_path(dir, "config.json"));
  const LlavaConfig config = LlavaConfig::from_config(root);
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                                     options.target.device, options.target.linear_format);
  Parts parts;
  parts.model_type = root.get_string("model_type");
  parts.model_dir = dir;
  parts.image_token_id = config.image_token_id;
  std::optional<LlavaImageProcessorConfig> processor;
  if (options.with_processors) {
    parts.tokenizer = tokenizer::Tokenizer::load(dir);
    // Folders without a template get the one the family's checkpoints ship.
    std::optional<tokenizer::ChatTemplate> fallback;
    if (config.variant == Variant::Llava) fallback = tokenizer::ChatTemplate(tokenizer::ChatStyle::LlavaVicuna);
    if (config.variant == Variant::OneVision) {
      tokenizer::ChatVariant onevision;
      onevision.role_separator = " ";
      onevision.text_prefix = "\n";
      onevision.turn_end = "<|im_end|>";
      fallback = tokenizer::ChatTemplate(tokenizer::ChatStyle::LlavaChatML, onevision);
    }
    parts.chat = tokenizer::ChatTemplate::for_folder(dir, fallback);
    parts.stop_token_ids = turn_end_token_ids(*parts.tokenizer, dir);
    const auto image_token = parts.tokenizer->token_to_id("<image>");
    if (!image_token || *image_token != config.image_token_id) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: the tokenizer's <image> token is not config.json's image_token_index {}", dir,
                              config.image_token_id));
    }
    processor = LlavaImageProcessorConfig::from_file(util::join_path(dir, "preprocessor_config.json"));
    if (processor->tile_size() != config.vision.image_size) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: preprocessor_config.json makes {} px tiles, the vision tower takes {} px", dir,
                              processor->tile_size(), config.vision.image_size));
    }
    if (config.variant != Variant::Llava && processor->pinpoints != config.pinpoints) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: image_grid_pinpoints differ between config.json and preprocessor_config.json", dir));
    }
  }
  return std::make_shared<const LlavaModel>(config, root, weights, std::move(parts), std::move(processor));
}

LlavaModel::LlavaModel(LlavaConfig config, const runtime::HfConfig& root, const runtime::WeightStore& weights,
                       Parts parts, std::optional<LlavaImageProcessorConfig> processor)
    : MultimodalLM(with_decoder(std::move(parts), text_decoder(root, config, weights))),
      config_(std::move(config)),
      projector_act_(runtime::nn::activation(config_.projector_act)),
      processor_(std::move(processor)) {
  const Layout layout = layout_of(weights);
  const runtime::WeightStore tower = weights.scope(layout.tower);
  if (config_.siglip_tower) {
    // SigLIP's pooling head (present unless vision_use_head is false) is never used here.
    tower_ = std::make_unique<const SiglipVisionTower>(config_.vision, tower, false);
  } else {
    tower_ = std::make_unique<const ClipVisionTower>(config_.vision, tower);
  }
  const std::int64_t text_hidden = decoder().config().hidden_size;
  const std::int64_t projector_in = config_.vision.encoder.hidden_size * std::int64_t(config_.feature_layers.size());
  const runtime::WeightStore projector = weights.scope(layout.projector);
  projector_1_ = projector.linear("linear_1", text_hidden, projector_in, config_.projector_bias);
  projector_2_ = projector.linear("linear_2", text_hidden, text_hidden, config_.projector_bias);
  if (config_.variant != Variant::Llava) image_newline_ = weights.get(layout.newline, {text_hidden});
}

std::vector<at::Tensor> LlavaModel::vision_hidden_states(const at::Tensor& tiles) const {
  return tower_->hidden_states(tiles, -1, nullptr);
}

at::Tensor LlavaModel::tile_features(const at::Tensor& tiles, const CallContext* call) const {
  const std::int64_t layers = config_.vision.encoder.num_layers;
  std::int64_t through = 0;
  for (std::int64_t layer : config_.feature_layers) through = std::max(through, hidden_state_index(layer, layers));
  // Only the layers up to the deepest one read are run.
  const std::vector<at::Tensor> states = tower_->hidden_states(tiles, through, call);
  std::vector<at::Tensor> selected;
  for (std::int64_t layer : config_.feature_layers) selected.push_back(states[std::size_t(hidden_state_index(layer, layers))]);
  at::Tensor features = selected.size() == 1 ? selected.front() : at::cat(selected, -1);  // [T, tokens, Dv * layers]
  if (config_.drop_class_token) features = features.narrow(1, 1, features.size(1) - 1);
  return projector_2_(projector_act_(projector_1_(features)));  // [T, tokens, Dt]
}

at::Tensor LlavaModel::pack(const at::Tensor& features, std::int64_t height, std::int64_t width) const {
  const std::int64_t tiles = features.size(0), tokens = features.size(1), hidden = features.size(2);
  if (config_.variant == Variant::Llava) {
    if (tiles != 1) throw Error(ErrorCode::Internal, "LLaVA-1.5 takes one tile per image");
    return features[0];
  }
  const at::Tensor newline = image_newline_.to(features.scalar_type());
  if (tiles == 1) return at::cat({features[0], newline.unsqueeze(0)});
  const std::int64_t side = config_.vision.grid();  // tokens per tile side
  if (side * side != tokens) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: {} image tokens per tile do not form a {}x{} grid (vision_feature_select_strategy)",
                            model_dir(), tokens, side, side));
  }
  const auto best = select_best_resolution(height, width, config_.pinpoints);
  const std::int64_t grid_h = best[0] / config_.vision.image_size, grid_w = best[1] / config_.vision.image_size;
  if (grid_h * grid_w != tiles - 1) {
    throw Error(ErrorCode::Internal, fmt::format("{} grid tiles for a {}x{} grid", tiles - 1, grid_h, grid_w));
  }
  // [gh*gw, g*g, D] -> feature map [D, gh*g, gw*g], tiles row-major.
  at::Tensor map = features.narrow(0, 1, tiles - 1)
                       .reshape({grid_h, grid_w, side, side, hidden})
                       .permute({4, 0, 2, 1, 3})
                       .reshape({hidden, grid_h * side, grid_w * side});
  map = unpad_image(map, height, width);  // [D, h, w]
  if (config_.variant == Variant::OneVision) {
    const std::int64_t h = map.size(1), w = map.size(2);
    const double ratio = std::sqrt(double(h * w) / double(config_.max_tiles * side * side));
    if (ratio > 1.1) {
      const auto new_h = static_cast<std::int64_t>(python_floordiv(double(h), ratio));
      const auto new_w = static_cast<std::int64_t>(python_floordiv(double(w), ratio));
      // In float32 (CPU bfloat16 has no bilinear kernel in every libtorch).
      map = at::upsample_bilinear2d(map.to(at::kFloat).unsqueeze(0), {new_h, new_w}, /*align_corners=*/false)[0]
                .to(features.scalar_type());
    }
  }
  const std::int64_t rows = map.size(1);
  // One image_newline after every row: [D, h, w + 1] -> [h * (w + 1), D].
  map = at::cat({map, newline.view({hidden, 1, 1}).expand({hidden, rows, 1})}, -1).flatten(1, 2).transpose(0, 1);
  return at::cat({features[0], map});
}

EncodedImage LlavaModel::encode_image(const Image& image, const CallContext* call) const {
  if (!processor_) throw Error(ErrorCode::InvalidArgument, model_dir() + " was loaded without its image processor");
  const LlavaProcessedImage processed = llava_preprocess(image, *processor_);
  EncodedImage encoded;
  encoded.features =
      pack(tile_features(processed.pixel_values, call), processed.height, processed.width).to(decoder().dtype());
  return encoded;
}

std::optional<ImageFootprint> LlavaModel::image_footprint(const Image& image) const {
  if (!processor_) return std::nullopt;
  std::int64_t tiles = 1;
  if (processor_->kind != LlavaImageProcessorConfig::Kind::Clip) {
    const auto best = select_best_resolution(image.height, image.width, processor_->pinpoints);
    const std::int64_t tile = processor_->tile_size();
    tiles += ((best[0] + tile - 1) / tile) * ((best[1] + tile - 1) / tile);
  }
  const std::int64_t side = processor_->tile_size();
  const std::int64_t per_tile = config_.vision.grid() * config_.vision.grid();
  ImageFootprint footprint;
  footprint.pixel_values = tiles * 3 * side * side;
  footprint.vision_tokens = tiles * (per_tile + 1);  // + the class token
  footprint.vision_hidden = config_.vision.encoder.hidden_size;
  footprint.vision_intermediate = config_.vision.encoder.intermediate_size;
  // Every patch of every tile, plus a newline per row: an upper bound of what
  // unpadding and OneVision's pooling leave.
  footprint.lm_tokens = tiles * (per_tile + config_.vision.grid());
  return footprint;
}

std::vector<runtime::ParamSpec> llava_parameter_specs(const runtime::HfConfig& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  MultimodalLM::Parts parts;
  parts.model_dir = config.file();
  const LlavaModel model(LlavaConfig::from_config(config), config, recorder, std::move(parts), std::nullopt);
  return recorder.recorded();
}

nlohmann::json llava_processor_config(const runtime::HfConfig& config) {
  const LlavaConfig c = LlavaConfig::from_config(config);
  const std::int64_t size = c.vision.image_size;
  nlohmann::json pinpoints = nlohmann::json::array();
  for (const auto& [h, w] : c.pinpoints) pinpoints.push_back({h, w});
  const std::vector<double> clip_mean{0.48145466, 0.4578275, 0.40821073}, clip_std{0.26862954, 0.26130258, 0.27577711};
  nlohmann::json json = {{"do_resize", true}, {"resample", 3}, {"do_rescale", true}, {"rescale_factor", 1.0 / 255.0},
                         {"do_normalize", true}, {"do_convert_rgb", true}};
  switch (c.variant) {
    case Variant::Llava:
    case Variant::Next:
      json["image_processor_type"] = c.variant == Variant::Llava ? "CLIPImageProcessor" : "LlavaNextImageProcessor";
      json["size"] = {{"shortest_edge", size}};
      json["do_center_crop"] = true;
      json["crop_size"] = {{"height", size}, {"width", size}};
      json["image_mean"] = clip_mean;
      json["image_std"] = clip_std;
      if (c.variant == Variant::Next) {
        json["image_grid_pinpoints"] = pinpoints;
        json["do_pad"] = true;
      }
      break;
    case Variant::OneVision:
      json["image_processor_type"] = "LlavaOnevisionImageProcessor";
      json["size"] = {{"height", size}, {"width", size}};
      json["image_mean"] = {0.5, 0.5, 0.5};
      json["image_std"] = {0.5, 0.5, 0.5};
      json["image_grid_pinpoints"] = pinpoints;
      json["do_pad"] = true;
      break;
  }
  return json;
}

}  // namespace imgjudge::models
