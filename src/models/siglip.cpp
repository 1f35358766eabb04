#include "models/siglip.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::models::siglip {

namespace nn = runtime::nn;

Config parse_config(const runtime::HfConfig& root) {
  Config config;
  const auto text = root.section("text_config");
  config.text.encoder = read_encoder_config(text, config.text.encoder);
  config.text.vocab_size = text.get_int("vocab_size", config.text.vocab_size);
  config.text.max_position_embeddings = text.get_int("max_position_embeddings", config.text.max_position_embeddings);
  config.text.projection_size = text.get_int("projection_size", config.text.encoder.hidden_size);
  const auto vision = root.section("vision_config");
  static_cast<VitConfig&>(config.vision) = VitConfig::read(vision, config.vision);
  config.vision.use_head = vision.get_bool("vision_use_head", true);
  return config;
}

Config load_config(const std::string& model_dir) {
  return parse_config(runtime::HfConfig::load(util::join_path(model_dir, "config.json")));
}

SiglipModel::SiglipModel(const Config& config, const runtime::WeightStore& weights)
    : config_(config),
      dtype_(weights.dtype()),
      device_(weights.device()),
      token_embedding_(weights.get("text_model.embeddings.token_embedding.weight",
                                   {config.text.vocab_size, config.text.encoder.hidden_size})),
      text_position_embedding_(weights.get("text_model.embeddings.position_embedding.weight",
                                           {config.text.max_position_embeddings, config.text.encoder.hidden_size})),
      text_encoder_(config.text.encoder, weights.scope("text_model.encoder")),
      final_layer_norm_(weights.scope("text_model.final_layer_norm"), config.text.encoder.hidden_size,
                        config.text.encoder.layer_norm_eps),
      text_head_weight_(weights.get("text_model.head.weight",
                                    {config.text.projection_size, config.text.encoder.hidden_size})),
      text_head_bias_(weights.get("text_model.head.bias", {config.text.projection_size})),
      vision_(config.vision, weights.scope("vision_model"), config.vision.use_head),
      logit_scale_(weights.get("logit_scale", {1})),
      logit_bias_(weights.get("logit_bias", {1})) {}

TowerOutput SiglipModel::encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     bool keep_hidden_states) const {
  if (input_ids.dim() != 2 || input_ids.size(1) < 1 || input_ids.size(1) > config_.text.max_position_embeddings) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("siglip text: input_ids must be [batch, 1..{}], got {}",
                            config_.text.max_position_embeddings, runtime::shape_string(input_ids.sizes())));
  }
  const at::Tensor ids = input_ids.to(device_, at::kLong);
  if (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= config_.text.vocab_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("siglip text: token id outside [0, {})", config_.text.vocab_size));
  }
  const std::int64_t length = ids.size(1);
  at::Tensor x = at::embedding(token_embedding_, ids) + text_position_embedding_.slice(0, 0, length);
  // Bidirectional: only an explicit padding mask hides anything.
  const at::Tensor mask = attention_mask.defined() ? nn::padding_mask(attention_mask.to(device_), dtype_) : at::Tensor();

  TowerOutput out;
  x = text_encoder_.forward(x, mask, keep_hidden_states ? &out.hidden_states : nullptr);
  out.last_hidden_state = final_layer_norm_(x);
  // HF pools the last position (inputs are padded to max_length).
  const at::Tensor last = out.last_hidden_state.select(1, length - 1);
  out.pooled = nn::linear(last, text_head_weight_, text_head_bias_);
  out.features = out.pooled;
  return out;
}

TowerOutput SiglipModel::encode_image(const at::Tensor& pixel_values, bool keep_hidden_states) const {
  std::vector<at::Tensor> states = vision_.hidden_states(pixel_values, -1, nullptr);
  TowerOutput out;
  out.last_hidden_state = vision_.post_layernorm(states.back());
  if (vision_.has_head()) {
    out.pooled = vision_.attention_pool(out.last_hidden_state);
    out.features = out.pooled;
  }
  if (keep_hidden_states) out.hidden_states = std::move(states);
  return out;
}

at::Tensor SiglipModel::logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const {
  const at::Tensor logits_per_text = at::matmul(text_embeds, image_embeds.t()) * logit_scale_.exp() + logit_bias_;
  return logits_per_text.t();
}

std::vector<runtime::ParamSpec> parameter_specs(const Config& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  SiglipModel model(config, recorder);
  return recorder.recorded();
}

}  // namespace imgjudge::models::siglip
