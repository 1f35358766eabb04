#include "models/internvl.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/internlm2.hpp"
#include "models/llama.hpp"
#include "models/qwen2.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/safetensors.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

using LanguageModel = InternVLConfig::LanguageModel;

// The weight names of the three language models inside an InternVL checkpoint.
struct LanguageModelLayout {
  std::string transformer, lm_head;
};
LanguageModelLayout layout_of(LanguageModel lm) {
  if (lm == LanguageModel::InternLM2) return {"language_model.model", "language_model.output.weight"};
  return {"language_model.model", "language_model.lm_head.weight"};
}

std::unique_ptr<const Decoder> language_model(const InternVLConfig& config, const runtime::HfConfig& root,
                                              const runtime::WeightStore& weights) {
  const runtime::HfConfig llm = root.section("llm_config");
  const LanguageModelLayout layout = layout_of(config.language_model);
  const runtime::WeightStore transformer = weights.scope(layout.transformer);
  DecoderConfig decoder;
  switch (config.language_model) {
    case LanguageModel::Qwen2: decoder = qwen2_decoder_config(llm); break;
    case LanguageModel::Llama: decoder = llama_decoder_config(llm); break;
    case LanguageModel::InternLM2: decoder = internlm2_decoder_config(llm); break;
  }
  // InternVLChatConfig sets tie_word_embeddings = False for the whole model
  // and its LLM, whatever llm_config says: the head is always its own tensor.
  decoder.tie_word_embeddings = false;
  switch (config.language_model) {
    case LanguageModel::Qwen2: return load_qwen2_decoder(decoder, transformer, weights, layout.lm_head);
    case LanguageModel::Llama: return load_llama_decoder(decoder, llm, transformer, weights, layout.lm_head);
    case LanguageModel::InternLM2: return load_internlm2_decoder(decoder, llm, transformer, weights, layout.lm_head);
  }
  throw Error(ErrorCode::Internal, "unknown InternVL language model");
}

std::int64_t required_token(const tokenizer::Tokenizer& tokenizer, const std::string& token, const std::string& dir) {
  const auto id = tokenizer.token_to_id(token);
  if (!id) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the tokenizer has no token {}, which InternVL prompts need", dir, token));
  }
  return *id;
}

// Python's str.strip() over ASCII whitespace (the template's sep.strip()).
std::string strip(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace

InternVLConfig InternVLConfig::from_config(const runtime::HfConfig& config) {
  InternVLConfig c;
  const std::string where = config.file();
  if (config.get_string("model_type") != "internvl_chat") {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: model_type \"{}\" is not internvl_chat", where,
                                                    config.get_string("model_type")));
  }
  for (const char* lora : {"use_backbone_lora", "use_llm_lora"}) {
    if (config.get_int(lora, 0) != 0) {
      throw Error(ErrorCode::Unsupported,
                  fmt::format("{}: '{}' is set: LoRA-wrapped InternVL checkpoints are not supported (merge the "
                              "adapters first)",
                              where, lora));
    }
  }
  const runtime::HfConfig llm = config.section("llm_config");
  const auto architectures = llm.json().find("architectures");
  if (architectures == llm.json().end() || !architectures->is_array() || architectures->empty() ||
      !(*architectures)[0].is_string()) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' must list the language model class", where, llm.qualified("architectures")));
  }
  c.llm_architecture = (*architectures)[0].get<std::string>();
  if (c.llm_architecture == "Qwen2ForCausalLM") {
    c.language_model = LanguageModel::Qwen2;
  } else if (c.llm_architecture == "LlamaForCausalLM") {
    c.language_model = LanguageModel::Llama;
  } else if (c.llm_architecture == "InternLM2ForCausalLM") {
    c.language_model = LanguageModel::InternLM2;
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: InternVL with a {} language model is not supported (Qwen2ForCausalLM, "
                            "LlamaForCausalLM, InternLM2ForCausalLM)",
                            where, c.llm_architecture));
  }

  c.vision = InternVitConfig::read(config.section("vision_config"));
  c.processor = InternVLProcessorConfig::from_config(config);
  c.select_layer = config.get_int("select_layer", -1);
  hidden_state_index(c.select_layer, c.vision.vit.encoder.num_layers);  // Error(InvalidModel) when out of range

  // pixel_shuffle merges 1/r x 1/r patches: r must be 1/k for an integer k
  // dividing the patch grid (the reference's views need it).
  const double ratio = config.get_double("downsample_ratio", 0.5);
  const double inverse = ratio > 0 ? 1.0 / ratio : 0.0;
  c.shuffle = static_cast<std::int64_t>(std::llround(inverse));
  if (!(ratio > 0) || c.shuffle < 1 || std::abs(inverse - static_cast<double>(c.shuffle)) > 1e-9) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: 'downsample_ratio' {} is not 1/k for an integer k", where, ratio));
  }
  if (c.grid() < 1 || c.grid() % c.shuffle != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: a {} px tile is {} patches of {} px per side, which pixel shuffle cannot split by {}",
                            where, c.processor.tile_size, c.grid(), c.vision.vit.patch_size, c.shuffle));
  }
  c.ps_v1 = config.get_string("ps_version", "v1") == "v1";  // any other string behaves as v2
  c.template_name = config.get_string("template", "");
  if (config.has("system_message")) c.system_message = config.get_string("system_message");
  return c;
}

std::shared_ptr<const InternVLModel> InternVLModel::load(const std::string& dir, const LoadOptions& options,
                                                         std::int64_t image_token_id) {
  const runtime::HfConfig root = runtime::HfConfig::load(util::join_path(dir, "config.json"));
  const InternVLConfig config = InternVLConfig::from_config(root);
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                                     options.target.device, options.target.linear_format);
  Parts parts;
  parts.model_type = "internvl_chat";
  parts.model_dir = dir;
  parts.image_token_id = image_token_id;
  if (options.with_processors) {
    if (config.template_name.empty()) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}/config.json: 'template' names no conversation template", dir));
    }
    parts.chat = tokenizer::ChatTemplate::internvl_conversation(config.template_name, config.system_message);
    parts.tokenizer = tokenizer::Tokenizer::load(dir);
    // chat() resolves the placeholder through the tokenizer; it is in no config.
    parts.image_token_id = required_token(*parts.tokenizer, "<IMG_CONTEXT>", dir);
    required_token(*parts.tokenizer, "<img>", dir);
    required_token(*parts.tokenizer, "</img>", dir);
    // chat() stops at the template's separator token only (sep.strip()).
    const std::string turn_end = strip(parts.chat->variant().separator);
    parts.stop_token_ids = {static_cast<std::int32_t>(required_token(*parts.tokenizer, turn_end, dir))};
  }
  return std::make_shared<const InternVLModel>(config, root, weights, std::move(parts));
}

InternVLModel::InternVLModel(InternVLConfig config, const runtime::HfConfig& root, const runtime::WeightStore& weights,
                             Parts parts)
    : MultimodalLM(with_decoder(std::move(parts), language_model(config, root, weights))),
      config_(std::move(config)) {
  tower_ = std::make_unique<const InternVisionTower>(config_.vision, weights.scope("vision_model"));
  const std::int64_t merged = config_.vision.vit.encoder.hidden_size * config_.shuffle * config_.shuffle;
  const std::int64_t hidden = decoder().config().hidden_size;
  norm_weight_ = weights.get("mlp1.0.weight", {merged});
  norm_bias_ = weights.get("mlp1.0.bias", {merged});
  projector_1_ = weights.linear("mlp1.1", hidden, merged, true);
  projector_2_ = weights.linear("mlp1.3", hidden, hidden, true);
}

std::vector<at::Tensor> InternVLModel::vision_hidden_states(const at::Tensor& tiles) const {
  return tower_->hidden_states(tiles, -1, nullptr);
}

at::Tensor InternVLModel::pixel_shuffle(const at::Tensor& x) const {
  // The reference's views, its dims named (n, w, h, c) for (tiles, rows, columns, channels).
  const std::int64_t n = x.size(0), rows = x.size(1), columns = x.size(2), c = x.size(3), k = config_.shuffle;
  // Merge k adjacent columns into the channels, swap, merge k adjacent rows.
  at::Tensor y = x.reshape({n, rows, columns / k, c * k}).permute({0, 2, 1, 3}).contiguous();
  y = y.view({n, columns / k, rows / k, c * k * k});  // [n, columns/k, rows/k, C k^2]: tokens column-major
  if (!config_.ps_v1) y = y.permute({0, 2, 1, 3}).contiguous();  // v2: back to row-major
  return y.reshape({n, -1, c * k * k});
}

at::Tensor InternVLModel::tile_features(const at::Tensor& tiles, const CallContext* call) const {
  const std::int64_t layers = config_.vision.vit.encoder.num_layers;
  // Only the layers up to the selected one run.
  const std::vector<at::Tensor> states = tower_->hidden_states(tiles, config_.select_layer, call);
  const at::Tensor selected = states[static_cast<std::size_t>(hidden_state_index(config_.select_layer, layers))];
  const std::int64_t patches = selected.size(1) - 1;  // the class token is dropped
  const auto side = static_cast<std::int64_t>(std::sqrt(static_cast<double>(patches)));
  if (side * side != patches || side % config_.shuffle != 0) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("InternVL: {} patches per tile are not a square grid divisible by {}", patches,
                            config_.shuffle));
  }
  const at::Tensor grid = selected.narrow(1, 1, patches).reshape({selected.size(0), side, side, selected.size(2)});
  const at::Tensor merged = pixel_shuffle(grid);  // [T, tokens, C k^2]
  // mlp1: LayerNorm (PyTorch's default eps 1e-5), Linear, GELU (erf), Linear.
  const at::Tensor normed = runtime::nn::layer_norm(merged, norm_weight_, norm_bias_, 1e-5);
  return projector_2_(at::gelu(projector_1_(normed)));
}

EncodedImage InternVLModel::encode_image(const Image& image, const CallContext* call) const {
  const at::Tensor tiles = internvl_preprocess(image, config_.processor);  // [T, 3, S, S]
  const at::Tensor features = tile_features(tiles, call);                 // [T, tokens, hidden]
  EncodedImage encoded;
  // Tile-major rows, as the reference fills the <IMG_CONTEXT> run.
  encoded.features = features.reshape({-1, features.size(2)}).to(decoder().dtype());
  return encoded;
}

std::optional<ImageFootprint> InternVLModel::image_footprint(const Image& image) const {
  std::int64_t tiles = 1;
  if (config_.processor.dynamic) {
    const auto grid = internvl_tile_grid(image.width, image.height, config_.processor);
    tiles = grid[0] * grid[1];
    if (config_.processor.use_thumbnail && tiles > 1) ++tiles;
  }
  const std::int64_t side = config_.processor.tile_size;
  ImageFootprint footprint;
  footprint.pixel_values = tiles * 3 * side * side;
  footprint.vision_tokens = tiles * (config_.grid() * config_.grid() + 1);  // + the class token
  footprint.vision_hidden = config_.vision.vit.encoder.hidden_size;
  footprint.vision_intermediate = config_.vision.vit.encoder.intermediate_size;
  footprint.lm_tokens = tiles * config_.tokens_per_tile();
  return footprint;
}

std::vector<std::int32_t> InternVLModel::answer_tokens(const std::string& spelling) const {
  const tokenizer::Tokenizer& tok = tokenizer();
  const std::string& opening = chat_template().variant().assistant_role;  // "<|im_start|>assistant\n"
  const std::vector<std::int32_t> role = tok.encode(opening, false);
  const std::vector<std::int32_t> both = tok.encode(opening + spelling, false);
  // The answer's tokens are what the role's tokens are followed by; when the
  // two merge into other tokens, the spelling on its own is the best guess.
  if (both.size() <= role.size() || !std::equal(role.begin(), role.end(), both.begin())) {
    return tok.encode(spelling, false);
  }
  return {both.begin() + static_cast<std::ptrdiff_t>(role.size()), both.end()};
}

std::vector<runtime::ParamSpec> internvl_parameter_specs(const runtime::HfConfig& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  MultimodalLM::Parts parts;
  parts.model_dir = config.file();
  const InternVLModel model(InternVLConfig::from_config(config), config, recorder, std::move(parts));
  return recorder.recorded();
}

}  // namespace imgjudge::models
