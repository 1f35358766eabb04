#include "models/clip.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::models::clip {

namespace nn = runtime::nn;

Config parse_config(const runtime::HfConfig& root) {
  Config config;
  const auto text = root.section("text_config");
  config.text.encoder = read_encoder_config(text, config.text.encoder);
  config.text.vocab_size = text.get_int("vocab_size", config.text.vocab_size);
  config.text.max_position_embeddings = text.get_int("max_position_embeddings", config.text.max_position_embeddings);
  config.text.eos_token_id = text.get_int("eos_token_id", config.text.eos_token_id);
  config.vision = VitConfig::read(root.section("vision_config"), config.vision);
  config.projection_dim = root.get_int("projection_dim", config.projection_dim);
  return config;
}

Config load_config(const std::string& model_dir) {
  return parse_config(runtime::HfConfig::load(util::join_path(model_dir, "config.json")));
}


ClipModel::ClipModel(const Config& config, const runtime::WeightStore& weights)
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
      vision_(config.vision, weights.scope("vision_model")),
      text_projection_(weights.get("text_projection.weight", {config.projection_dim, config.text.encoder.hidden_size})),
      visual_projection_(
          weights.get("visual_projection.weight", {config.projection_dim, config.vision.encoder.hidden_size})),
      logit_scale_(weights.get("logit_scale", {})) {}

TowerOutput ClipModel::encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   bool keep_hidden_states) const {
  if (input_ids.dim() != 2 || input_ids.size(1) < 1 || input_ids.size(1) > config_.text.max_position_embeddings) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("clip text: input_ids must be [batch, 1..{}], got {}", config_.text.max_position_embeddings,
                            runtime::shape_string(input_ids.sizes())));
  }
  const at::Tensor ids = input_ids.to(device_, at::kLong);
  if (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= config_.text.vocab_size) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("clip text: token id outside [0, {})", config_.text.vocab_size));
  }
  const std::int64_t length = ids.size(1);
  // [B, L, D] = token embedding + learned absolute position embedding
  at::Tensor x = at::embedding(token_embedding_, ids) + text_position_embedding_.slice(0, 0, length);

  // Causal mask plus padding mask, summed as HF does.
  at::Tensor mask = nn::causal_mask(length, dtype_, device_);
  if (attention_mask.defined()) mask = mask + nn::padding_mask(attention_mask.to(device_), dtype_);

  TowerOutput out;
  x = text_encoder_.forward(x, mask, keep_hidden_states ? &out.hidden_states : nullptr);
  out.last_hidden_state = final_layer_norm_(x);

  // Pool at the end-of-text token. Original openai configs say eos_token_id=2
  // (wrong) and rely on EOT being the largest id; newer ones give the real id
  // and HF takes its first occurrence (argmax of a 0/1 vector).
  const at::Tensor eos_position = config_.text.eos_token_id == 2
                                      ? ids.to(at::kInt).argmax(-1)
                                      : (ids == config_.text.eos_token_id).to(at::kInt).argmax(-1);
  const at::Tensor rows = at::arange(ids.size(0), ids.options());
  out.pooled = out.last_hidden_state.index({rows, eos_position});
  out.features = nn::linear(out.pooled, text_projection_);
  return out;
}

TowerOutput ClipModel::encode_image(const at::Tensor& pixel_values, bool keep_hidden_states) const {
  std::vector<at::Tensor> states = vision_.hidden_states(pixel_values, -1, nullptr);
  TowerOutput out;
  out.last_hidden_state = states.back();
  out.pooled = vision_.post_layernorm(out.last_hidden_state.select(1, 0));  // CLS token
  out.features = nn::linear(out.pooled, visual_projection_);
  if (keep_hidden_states) out.hidden_states = std::move(states);
  return out;
}

at::Tensor ClipModel::logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const {
  return at::matmul(text_embeds, image_embeds.t()).mul(logit_scale_.exp()).t();
}

std::vector<runtime::ParamSpec> parameter_specs(const Config& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  ClipModel model(config, recorder);
  return recorder.recorded();
}

}  // namespace imgjudge::models::clip
