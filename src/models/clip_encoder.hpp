// The pre-LayerNorm transformer encoder shared by CLIP and SigLIP (SigLIP's
// modeling code is a copy of CLIP's): per layer
//   x = x + out_proj(attention(layer_norm1(x)));  x = x + fc2(act(fc1(layer_norm2(x))))
// HF names under the encoder scope: layers.{i}.{layer_norm1,self_attn.{q,k,v,out}_proj,
// layer_norm2,mlp.fc1,mlp.fc2}.{weight,bias}.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "imgjudge/backend.hpp"
#include "runtime/nn.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct EncoderConfig {
  std::int64_t hidden_size = 768;
  std::int64_t intermediate_size = 3072;
  std::int64_t num_layers = 12;
  std::int64_t num_heads = 12;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
};

/// fc1 -> activation -> fc2 (HF CLIPMLP / SiglipMLP).
struct Mlp {
  Mlp(const runtime::WeightStore& scope, std::int64_t hidden, std::int64_t intermediate, const std::string& act);
  at::Tensor operator()(const at::Tensor& x) const;
  at::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  runtime::nn::Activation activation;
};

/// LayerNorm weights (HF nn.LayerNorm).
struct LayerNorm {
  LayerNorm(const runtime::WeightStore& scope, std::int64_t hidden, double eps);
  at::Tensor operator()(const at::Tensor& x) const;
  at::Tensor weight, bias;
  double eps;
};

class ClipEncoder {
 public:
  /// `scope` is the encoder's prefix, e.g. "vision_model.encoder".
  ClipEncoder(const EncoderConfig& config, const runtime::WeightStore& scope);

  /// x [B, L, D]; `additive_mask` broadcastable to [B, H, L, L] or undefined.
  /// When `hidden_states` is given it receives the input of each layer run,
  /// then the last output (HF output_hidden_states). `layers` >= 0 runs only
  /// the first `layers` layers (a VLM reading an earlier layer's output).
  /// `call` is checked between layers.
  at::Tensor forward(at::Tensor x, const at::Tensor& additive_mask, std::vector<at::Tensor>* hidden_states,
                     std::int64_t layers = -1, const CallContext* call = nullptr) const;
  std::int64_t num_layers() const { return static_cast<std::int64_t>(layers_.size()); }

 private:
  struct Layer {
    Layer(const runtime::WeightStore& scope, const EncoderConfig& config);
    LayerNorm layer_norm1, layer_norm2;
    at::Tensor q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, out_weight, out_bias;
    Mlp mlp;
  };
  at::Tensor self_attention(const Layer& layer, const at::Tensor& x, const at::Tensor& additive_mask) const;
  EncoderConfig config_;
  std::vector<Layer> layers_;
};

/// Reads the encoder fields shared by CLIP and SigLIP tower configs.
EncoderConfig read_encoder_config(const runtime::HfConfig& tower, const EncoderConfig& defaults);

}  // namespace imgjudge::models
