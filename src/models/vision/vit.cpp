#include "models/vision/vit.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"

namespace imgjudge::models {

namespace nn = runtime::nn;

namespace {

void check_pixels(const at::Tensor& pixel_values, const VitConfig& v, const char* tower) {
  if (pixel_values.dim() != 4 || pixel_values.size(1) != v.num_channels || pixel_values.size(2) != v.image_size ||
      pixel_values.size(3) != v.image_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} vision: pixel_values must be [batch, {}, {}, {}], got {}", tower, v.num_channels,
                            v.image_size, v.image_size, runtime::shape_string(pixel_values.sizes())));
  }
}

}  // namespace

std::int64_t hidden_state_index(std::int64_t layer, std::int64_t layers) {
  const std::int64_t index = layer < 0 ? layers + 1 + layer : layer;
  if (index < 0 || index > layers) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("vision feature layer {} is outside the tower's {} hidden states", layer, layers + 1));
  }
  return index;
}

VitConfig VitConfig::read(const runtime::HfConfig& vision, const VitConfig& defaults) {
  VitConfig config;
  config.encoder = read_encoder_config(vision, defaults.encoder);
  config.num_channels = vision.get_int("num_channels", defaults.num_channels);
  config.image_size = vision.get_int("image_size", defaults.image_size);
  config.patch_size = vision.get_int("patch_size", defaults.patch_size);
  // image_size need not be a multiple of patch_size: the patch convolution
  // drops the remainder (SigLIP so400m: 384 px in 14 px patches, 27 x 27).
  if (config.patch_size <= 0 || config.image_size < config.patch_size || config.num_channels <= 0) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: vision image_size {} / patch_size {} are invalid",
                                                     vision.file(), config.image_size, config.patch_size));
  }
  return config;
}

ClipVisionTower::ClipVisionTower(const VitConfig& config, const runtime::WeightStore& scope,
                                 const std::string& pre_layernorm_name)
    : config_(config),
      class_embedding_(scope.get("embeddings.class_embedding", {config.encoder.hidden_size})),
      patch_embedding_(scope.get("embeddings.patch_embedding.weight", {config.encoder.hidden_size, config.num_channels,
                                                                       config.patch_size, config.patch_size})),
      position_embedding_(scope.get("embeddings.position_embedding.weight",
                                    {config.grid() * config.grid() + 1, config.encoder.hidden_size})),
      pre_layernorm_(scope.scope(pre_layernorm_name), config.encoder.hidden_size, config.encoder.layer_norm_eps),
      post_layernorm_(scope.scope("post_layernorm"), config.encoder.hidden_size, config.encoder.layer_norm_eps),
      encoder_(config.encoder, scope.scope("encoder")) {}

at::Tensor ClipVisionTower::embed(const at::Tensor& pixel_values) const {
  check_pixels(pixel_values, config_, "clip");
  const at::Tensor pixels = pixel_values.to(class_embedding_.device(), class_embedding_.scalar_type());
  const std::int64_t batch = pixels.size(0);
  // Conv with stride = kernel = patch: [B, D, g, g] -> [B, g*g, D]
  const at::Tensor patches =
      at::conv2d(pixels, patch_embedding_, {}, {config_.patch_size, config_.patch_size}).flatten(2).transpose(1, 2);
  const at::Tensor cls = class_embedding_.view({1, 1, -1}).expand({batch, 1, config_.encoder.hidden_size});
  return pre_layernorm_(at::cat({cls, patches}, 1) + position_embedding_.unsqueeze(0));
}

std::vector<at::Tensor> ClipVisionTower::hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                                       const CallContext* call) const {
  const std::int64_t layers = hidden_state_index(through, encoder_.num_layers());
  std::vector<at::Tensor> states;
  encoder_.forward(embed(pixel_values), {}, &states, layers, call);
  return states;
}

at::Tensor ClipVisionTower::last_hidden_state(const at::Tensor& pixel_values, const CallContext* call) const {
  return encoder_.forward(embed(pixel_values), {}, nullptr, -1, call);
}

SiglipVisionTower::SiglipVisionTower(const VitConfig& config, const runtime::WeightStore& scope, bool use_head)
    : config_(config),
      patch_weight_(scope.get("embeddings.patch_embedding.weight",
                              {config.encoder.hidden_size, config.num_channels, config.patch_size, config.patch_size})),
      patch_bias_(scope.get("embeddings.patch_embedding.bias", {config.encoder.hidden_size})),
      position_embedding_(
          scope.get("embeddings.position_embedding.weight", {config.grid() * config.grid(), config.encoder.hidden_size})),
      encoder_(config.encoder, scope.scope("encoder")),
      post_layernorm_(scope.scope("post_layernorm"), config.encoder.hidden_size, config.encoder.layer_norm_eps) {
  if (use_head) {
    const auto head = scope.scope("head");
    const std::int64_t d = config.encoder.hidden_size;
    head_.emplace(PoolingHead{head.get("probe", {1, 1, d}), head.get("attention.in_proj_weight", {3 * d, d}),
                              head.get("attention.in_proj_bias", {3 * d}), head.get("attention.out_proj.weight", {d, d}),
                              head.get("attention.out_proj.bias", {d}),
                              LayerNorm(head.scope("layernorm"), d, config.encoder.layer_norm_eps),
                              Mlp(head.scope("mlp"), d, config.encoder.intermediate_size, config.encoder.hidden_act)});
  }
}

std::vector<at::Tensor> SiglipVisionTower::hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                                         const CallContext* call) const {
  check_pixels(pixel_values, config_, "siglip");
  const std::int64_t layers = hidden_state_index(through, encoder_.num_layers());
  const at::Tensor pixels = pixel_values.to(patch_weight_.device(), patch_weight_.scalar_type());
  // [B, D, g, g] -> [B, g*g, D]; no class token in SigLIP.
  at::Tensor x =
      at::conv2d(pixels, patch_weight_, patch_bias_, {config_.patch_size, config_.patch_size}).flatten(2).transpose(1, 2);
  x = x + position_embedding_.unsqueeze(0);
  std::vector<at::Tensor> states;
  encoder_.forward(x, {}, &states, layers, call);
  return states;
}

at::Tensor SiglipVisionTower::attention_pool(const at::Tensor& patches) const {
  if (!head_) throw Error(ErrorCode::Internal, "SigLIP attention pooling without a head");
  const std::int64_t batch = patches.size(0), d = patches.size(2), heads = config_.encoder.num_heads;
  // nn.MultiheadAttention packs the q, k, v projections in one [3D, D] matrix.
  const auto w = head_->in_proj_weight.chunk(3, 0);
  const auto b = head_->in_proj_bias.chunk(3, 0);
  const at::Tensor probe = head_->probe.expand({batch, 1, d});
  const at::Tensor q = nn::split_heads(nn::linear(probe, w[0], b[0]), heads);    // [B, H, 1, D/H]
  const at::Tensor k = nn::split_heads(nn::linear(patches, w[1], b[1]), heads);  // [B, H, N, D/H]
  const at::Tensor v = nn::split_heads(nn::linear(patches, w[2], b[2]), heads);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d / heads));
  at::Tensor x = nn::linear(nn::merge_heads(nn::attention(q, k, v, {}, scale)), head_->out_weight, head_->out_bias);
  x = x + head_->mlp(head_->layernorm(x));
  return x.select(1, 0);  // [B, D]
}

}  // namespace imgjudge::models
