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
  config.vision.encoder = read_encoder_config(vision, config.vision.encoder);
  config.vision.num_channels = vision.get_int("num_channels", config.vision.num_channels);
  config.vision.image_size = vision.get_int("image_size", config.vision.image_size);
  config.vision.patch_size = vision.get_int("patch_size", config.vision.patch_size);
  config.vision.use_head = vision.get_bool("vision_use_head", true);
  if (config.vision.patch_size <= 0 || config.vision.image_size < config.vision.patch_size) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: vision_config image_size {} / patch_size {} are invalid",
                                                     root.file(), config.vision.image_size, config.vision.patch_size));
  }
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
      patch_weight_(weights.get("vision_model.embeddings.patch_embedding.weight",
                                {config.vision.encoder.hidden_size, config.vision.num_channels,
                                 config.vision.patch_size, config.vision.patch_size})),
      patch_bias_(weights.get("vision_model.embeddings.patch_embedding.bias", {config.vision.encoder.hidden_size})),
      vision_position_embedding_(weights.get(
          "vision_model.embeddings.position_embedding.weight",
          {(config.vision.image_size / config.vision.patch_size) * (config.vision.image_size / config.vision.patch_size),
           config.vision.encoder.hidden_size})),
      vision_encoder_(config.vision.encoder, weights.scope("vision_model.encoder")),
      post_layernorm_(weights.scope("vision_model.post_layernorm"), config.vision.encoder.hidden_size,
                      config.vision.encoder.layer_norm_eps),
      logit_scale_(weights.get("logit_scale", {1})),
      logit_bias_(weights.get("logit_bias", {1})) {
  if (config.vision.use_head) {
    const auto head = weights.scope("vision_model.head");
    const std::int64_t d = config.vision.encoder.hidden_size;
    head_.probe = head.get("probe", {1, 1, d});
    head_.in_proj_weight = head.get("attention.in_proj_weight", {3 * d, d});
    head_.in_proj_bias = head.get("attention.in_proj_bias", {3 * d});
    head_.out_weight = head.get("attention.out_proj.weight", {d, d});
    head_.out_bias = head.get("attention.out_proj.bias", {d});
    head_.layernorm.emplace(head.scope("layernorm"), d, config.vision.encoder.layer_norm_eps);
    head_.mlp.emplace(head.scope("mlp"), d, config.vision.encoder.intermediate_size, config.vision.encoder.hidden_act);
  }
}

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

at::Tensor SiglipModel::attention_pool(const at::Tensor& patches) const {
  const std::int64_t batch = patches.size(0), d = patches.size(2), heads = config_.vision.encoder.num_heads;
  // nn.MultiheadAttention packs the q, k, v projections in one [3D, D] matrix.
  const auto w = head_.in_proj_weight.chunk(3, 0);
  const auto b = head_.in_proj_bias.chunk(3, 0);
  const at::Tensor probe = head_.probe.expand({batch, 1, d});
  const at::Tensor q = nn::split_heads(nn::linear(probe, w[0], b[0]), heads);    // [B, H, 1, D/H]
  const at::Tensor k = nn::split_heads(nn::linear(patches, w[1], b[1]), heads);  // [B, H, N, D/H]
  const at::Tensor v = nn::split_heads(nn::linear(patches, w[2], b[2]), heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
  at::Tensor x = nn::linear(nn::merge_heads(nn::attention(q, k, v, {}, scale)), head_.out_weight, head_.out_bias);
  x = x + (*head_.mlp)((*head_.layernorm)(x));
  return x.select(1, 0);  // [B, D]
}

TowerOutput SiglipModel::encode_image(const at::Tensor& pixel_values, bool keep_hidden_states) const {
  const auto& v = config_.vision;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != v.num_channels || pixel_values.size(2) != v.image_size ||
      pixel_values.size(3) != v.image_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("siglip vision: pixel_values must be [batch, {}, {}, {}], got {}", v.num_channels,
                            v.image_size, v.image_size, runtime::shape_string(pixel_values.sizes())));
  }
  const at::Tensor pixels = pixel_values.to(device_, dtype_);
  // [B, D, g, g] -> [B, g*g, D]; no CLS token in SigLIP.
  at::Tensor x = at::conv2d(pixels, patch_weight_, patch_bias_, {v.patch_size, v.patch_size}).flatten(2).transpose(1, 2);
  x = x + vision_position_embedding_.unsqueeze(0);

  TowerOutput out;
  x = vision_encoder_.forward(x, {}, keep_hidden_states ? &out.hidden_states : nullptr);
  out.last_hidden_state = post_layernorm_(x);
  if (v.use_head) {
    out.pooled = attention_pool(out.last_hidden_state);
    out.features = out.pooled;
  }
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
