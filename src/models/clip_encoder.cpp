#include "models/clip_encoder.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "models/attention.hpp"
#include "runtime/config.hpp"

namespace imgjudge::models {

namespace nn = runtime::nn;

Mlp::Mlp(const runtime::WeightStore& scope, std::int64_t hidden, std::int64_t intermediate, const std::string& act)
    : fc1_weight(scope.get("fc1.weight", {intermediate, hidden})),
      fc1_bias(scope.get("fc1.bias", {intermediate})),
      fc2_weight(scope.get("fc2.weight", {hidden, intermediate})),
      fc2_bias(scope.get("fc2.bias", {hidden})),
      activation(nn::activation(act)) {}

at::Tensor Mlp::operator()(const at::Tensor& x) const {
  return nn::linear(activation(nn::linear(x, fc1_weight, fc1_bias)), fc2_weight, fc2_bias);
}

LayerNorm::LayerNorm(const runtime::WeightStore& scope, std::int64_t hidden, double eps_)
    : weight(scope.get("weight", {hidden})), bias(scope.get("bias", {hidden})), eps(eps_) {}

at::Tensor LayerNorm::operator()(const at::Tensor& x) const { return nn::layer_norm(x, weight, bias, eps); }

ClipEncoder::Layer::Layer(const runtime::WeightStore& scope, const EncoderConfig& config)
    : layer_norm1(scope.scope("layer_norm1"), config.hidden_size, config.layer_norm_eps),
      layer_norm2(scope.scope("layer_norm2"), config.hidden_size, config.layer_norm_eps),
      q_weight(scope.get("self_attn.q_proj.weight", {config.hidden_size, config.hidden_size})),
      q_bias(scope.get("self_attn.q_proj.bias", {config.hidden_size})),
      k_weight(scope.get("self_attn.k_proj.weight", {config.hidden_size, config.hidden_size})),
      k_bias(scope.get("self_attn.k_proj.bias", {config.hidden_size})),
      v_weight(scope.get("self_attn.v_proj.weight", {config.hidden_size, config.hidden_size})),
      v_bias(scope.get("self_attn.v_proj.bias", {config.hidden_size})),
      out_weight(scope.get("self_attn.out_proj.weight", {config.hidden_size, config.hidden_size})),
      out_bias(scope.get("self_attn.out_proj.bias", {config.hidden_size})),
      mlp(scope.scope("mlp"), config.hidden_size, config.intermediate_size, config.hidden_act) {}

ClipEncoder::ClipEncoder(const EncoderConfig& config, const runtime::WeightStore& scope) : config_(config) {
  if (config.num_heads <= 0 || config.hidden_size % config.num_heads != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: hidden_size {} is not divisible by num_attention_heads {}",
                            scope.full_name(""), config.hidden_size, config.num_heads));
  }
  layers_.reserve(static_cast<std::size_t>(config.num_layers));
  for (std::int64_t i = 0; i < config.num_layers; ++i) {
    layers_.emplace_back(scope.scope(fmt::format("layers.{}", i)), config);
  }
}

at::Tensor ClipEncoder::self_attention(const Layer& layer, const at::Tensor& x, const at::Tensor& additive_mask) const {
  const std::int64_t heads = config_.num_heads, head_dim = config_.hidden_size / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  if (additive_mask.defined()) {
    // Text towers (causal and padding masks, a few dozen tokens): one product.
    // [B, L, D] -> [B, H, L, D/H]
    const at::Tensor q = nn::split_heads(nn::linear(x, layer.q_weight, layer.q_bias), heads);
    const at::Tensor k = nn::split_heads(nn::linear(x, layer.k_weight, layer.k_bias), heads);
    const at::Tensor v = nn::split_heads(nn::linear(x, layer.v_weight, layer.v_bias), heads);
    const at::Tensor context = nn::merge_heads(nn::attention(q, k, v, additive_mask, scale));
    return nn::linear(context, layer.out_weight, layer.out_bias);
  }
  // Vision towers (hundreds of patches per image, no mask): each image is a
  // segment of the blocked attention every ViT shares (models/attention.hpp).
  const std::int64_t batch = x.size(0), length = x.size(1), tokens = batch * length;
  const auto heads_first = [&](const at::Tensor& t) {  // [B, L, H*D] -> [H, B*L, D]
    return t.reshape({tokens, heads, head_dim}).transpose(0, 1).contiguous();
  };
  const at::Tensor q = heads_first(nn::linear(x, layer.q_weight, layer.q_bias));
  const at::Tensor k = heads_first(nn::linear(x, layer.k_weight, layer.k_bias));
  const at::Tensor v = heads_first(nn::linear(x, layer.v_weight, layer.v_bias));
  std::vector<std::int64_t> bounds;
  for (std::int64_t b = 0; b <= batch; ++b) bounds.push_back(b * length);
  const at::Tensor context = segment_attention(q, k, v, bounds, scale).reshape({batch, length, config_.hidden_size});
  return nn::linear(context, layer.out_weight, layer.out_bias);
}

at::Tensor ClipEncoder::forward(at::Tensor x, const at::Tensor& additive_mask, std::vector<at::Tensor>* hidden_states,
                                std::int64_t layers, const CallContext* call) const {
  const auto count = layers < 0 ? static_cast<std::int64_t>(layers_.size())
                                : std::min<std::int64_t>(layers, static_cast<std::int64_t>(layers_.size()));
  for (std::int64_t i = 0; i < count; ++i) {
    if (call != nullptr) call->check();
    const Layer& layer = layers_[static_cast<std::size_t>(i)];
    if (hidden_states != nullptr) hidden_states->push_back(x);
    x = x + self_attention(layer, layer.layer_norm1(x), additive_mask);
    x = x + layer.mlp(layer.layer_norm2(x));
  }
  if (hidden_states != nullptr) hidden_states->push_back(x);
  return x;
}

EncoderConfig read_encoder_config(const runtime::HfConfig& tower, const EncoderConfig& defaults) {
  EncoderConfig config;
  config.hidden_size = tower.get_int("hidden_size", defaults.hidden_size);
  config.intermediate_size = tower.get_int("intermediate_size", defaults.intermediate_size);
  config.num_layers = tower.get_int("num_hidden_layers", defaults.num_layers);
  config.num_heads = tower.get_int("num_attention_heads", defaults.num_heads);
  config.hidden_act = tower.get_string("hidden_act", defaults.hidden_act);
  config.layer_norm_eps = tower.get_double("layer_norm_eps", defaults.layer_norm_eps);
  if (config.hidden_size <= 0 || config.intermediate_size <= 0 || config.num_layers < 0 || config.num_heads <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' sizes must be positive", tower.file(), tower.qualified("")));
  }
  return config;
}

}  // namespace imgjudge::models
