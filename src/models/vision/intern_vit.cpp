#include "models/vision/intern_vit.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "models/attention.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"

namespace imgjudge::models {

namespace nn = runtime::nn;

InternVitConfig InternVitConfig::read(const runtime::HfConfig& vision) {
  // InternVisionConfig's defaults are InternViT-6B's (configuration_intern_vit.py).
  const VitConfig defaults{EncoderConfig{3200, 12800, 48, 25, "gelu", 1e-6}, 3, 224, 14};
  InternVitConfig c;
  c.vit = VitConfig::read(vision, defaults);
  // The patch convolution is built with 3 input channels whatever num_channels says.
  c.vit.num_channels = 3;
  const std::string norm_type = vision.get_string("norm_type", "rms_norm");
  if (norm_type != "rms_norm" && norm_type != "layer_norm") {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: '{}' must be rms_norm or layer_norm, found \"{}\"",
                                                     vision.file(), vision.qualified("norm_type"), norm_type));
  }
  c.rms_norm = norm_type == "rms_norm";
  c.qk_normalization = vision.get_bool("qk_normalization", true);
  c.qkv_bias = vision.get_bool("qkv_bias", false);
  if (c.vit.encoder.hidden_size % c.vit.encoder.num_heads != 0) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: vision hidden_size {} is not a multiple of "
                                                     "num_attention_heads {}",
                                                     vision.file(), c.vit.encoder.hidden_size,
                                                     c.vit.encoder.num_heads));
  }
  nn::activation(c.vit.encoder.hidden_act);  // Error(Unsupported) now
  return c;
}

InternVisionTower::Norm InternVisionTower::norm(const runtime::WeightStore& scope, const char* name) const {
  const std::int64_t c = config_.vit.encoder.hidden_size;
  Norm n{scope.get(fmt::format("{}.weight", name), {c}), std::nullopt};
  if (!config_.rms_norm) n.bias = scope.get(fmt::format("{}.bias", name), {c});
  return n;
}

at::Tensor InternVisionTower::apply(const Norm& n, const at::Tensor& x) const {
  const double eps = config_.vit.encoder.layer_norm_eps;
  return n.bias ? nn::layer_norm(x, n.weight, *n.bias, eps) : nn::rms_norm(x, n.weight, eps);
}

InternVisionTower::InternVisionTower(const InternVitConfig& config, const runtime::WeightStore& scope)
    : config_(config), act_(nn::activation(config.vit.encoder.hidden_act)) {
  const std::int64_t c = config.vit.encoder.hidden_size, inner = config.vit.encoder.intermediate_size;
  const std::int64_t p = config.vit.patch_size, g0 = config.vit.grid();
  class_embedding_ = scope.get("embeddings.class_embedding", {1, 1, c});
  patch_weight_ = scope.get("embeddings.patch_embedding.weight", {c, 3, p, p});
  patch_bias_ = scope.get("embeddings.patch_embedding.bias", {c});
  position_embedding_ = scope.get("embeddings.position_embedding", {1, 1 + g0 * g0, c});
  for (std::int64_t i = 0; i < config.vit.encoder.num_layers; ++i) {
    const runtime::WeightStore l = scope.scope(fmt::format("encoder.layers.{}", i));
    Layer layer;
    layer.norm1 = norm(l, "norm1");
    layer.norm2 = norm(l, "norm2");
    layer.qkv = l.linear("attn.qkv", 3 * c, c, config.qkv_bias);
    layer.proj = l.linear("attn.proj", c, c, true);
    if (config.qk_normalization) {
      layer.q_norm = l.get("attn.q_norm.weight", {c});
      layer.k_norm = l.get("attn.k_norm.weight", {c});
    }
    layer.fc1 = l.linear("mlp.fc1", inner, c, true);
    layer.fc2 = l.linear("mlp.fc2", c, inner, true);
    layer.ls1 = l.get("ls1", {c});
    layer.ls2 = l.get("ls2", {c});
    layers_.push_back(std::move(layer));
  }
}

at::Tensor InternVisionTower::patch_positions(std::int64_t grid) const {
  const std::int64_t c = config_.vit.encoder.hidden_size, g0 = config_.vit.grid();
  const at::Tensor learned = position_embedding_[0].narrow(0, 1, g0 * g0);  // [G0*G0, C]
  // F.interpolate at the same size is the identity (and PyTorch skips it).
  if (grid == g0) return learned;
  // [G0*G0, C] -> [1, C, G0, G0] in float32 -> bicubic -> [grid*grid, C]
  const at::Tensor map = learned.to(at::kFloat).reshape({1, g0, g0, c}).permute({0, 3, 1, 2});
  const at::Tensor resized = at::upsample_bicubic2d(map, {grid, grid}, /*align_corners=*/false);
  return resized.reshape({c, grid * grid}).t().to(learned.scalar_type());
}

at::Tensor InternVisionTower::embed(const at::Tensor& pixel_values) const {
  const std::int64_t p = config_.vit.patch_size, c = config_.vit.encoder.hidden_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != 3 || pixel_values.size(2) != pixel_values.size(3) ||
      pixel_values.size(2) < p) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("InternViT: pixel_values must be square tiles [batch, 3, S, S] with S >= {}, got {}", p,
                            runtime::shape_string(pixel_values.sizes())));
  }
  const at::Tensor pixels = pixel_values.to(patch_weight_.device(), patch_weight_.scalar_type());
  const std::int64_t batch = pixels.size(0);
  // Conv with stride = kernel = patch: [B, C, g, g] -> [B, g*g, C], patches row-major.
  const at::Tensor conv = at::conv2d(pixels, patch_weight_, patch_bias_, {p, p});
  const std::int64_t grid = conv.size(2);
  const at::Tensor patches = conv.flatten(2).transpose(1, 2);
  const at::Tensor cls = class_embedding_.expand({batch, 1, c});
  // The class position is never interpolated.
  const at::Tensor positions = at::cat({position_embedding_[0].narrow(0, 0, 1), patch_positions(grid)});  // [1+g*g, C]
  return at::cat({cls, patches}, 1) + positions.unsqueeze(0);
}

at::Tensor InternVisionTower::attention(const Layer& layer, const at::Tensor& x) const {
  const std::int64_t batch = x.size(0), length = x.size(1), c = config_.vit.encoder.hidden_size;
  const std::int64_t heads = config_.vit.encoder.num_heads, dim = c / heads, tokens = batch * length;
  at::Tensor qkv = layer.qkv(x).view({tokens, 3 * c});  // out feature s*C + head*D + d, s in {q, k, v}
  at::Tensor q = qkv.narrow(1, 0, c), k = qkv.narrow(1, c, c), v = qkv.narrow(1, 2 * c, c);
  if (config_.qk_normalization) {
    // Over all C = H*D channels of a token, not per head.
    const double eps = config_.vit.encoder.layer_norm_eps;
    q = nn::rms_norm(q, layer.q_norm, eps);
    k = nn::rms_norm(k, layer.k_norm, eps);
  }
  // [B*N, C] -> [H, B*N, D]; q is scaled before the product, as the reference does.
  const auto heads_first = [&](const at::Tensor& t) { return t.reshape({tokens, heads, dim}).transpose(0, 1).contiguous(); };
  const double scale = std::pow(static_cast<double>(dim), -0.5);
  std::vector<std::int64_t> bounds;  // each tile attends within itself
  for (std::int64_t b = 0; b <= batch; ++b) bounds.push_back(b * length);
  const at::Tensor context = segment_attention(heads_first(q * scale), heads_first(k), heads_first(v), bounds, 1.0);
  return layer.proj(context.reshape({batch, length, c}));  // [N, H, D] -> [B, N, C]
}

std::vector<at::Tensor> InternVisionTower::hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                                         const CallContext* call) const {
  const auto layers = hidden_state_index(through, static_cast<std::int64_t>(layers_.size()));
  std::vector<at::Tensor> states{embed(pixel_values)};
  at::Tensor x = states.front();
  for (std::int64_t i = 0; i < layers; ++i) {
    if (call != nullptr) call->check();
    const Layer& layer = layers_[static_cast<std::size_t>(i)];
    x = x + attention(layer, apply(layer.norm1, x)) * layer.ls1;
    x = x + layer.fc2(act_(layer.fc1(apply(layer.norm2, x)))) * layer.ls2;
    states.push_back(x);
  }
  return states;
}

}  // namespace imgjudge::models
