// InternViT (OpenGVLab InternVL, modeling_intern_vit.py: InternVisionModel),
// the vision tower of InternVL2 / InternVL2.5: CLIP-like patch embedding with a
// class token and learned positions, then pre-norm blocks with layer scale
//
//   x = x + ls1 * proj(attention(norm1(x)))      (optionally RMS-normed q and k)
//   x = x + ls2 * fc2(gelu(fc1(norm2(x))))
//
// norm1/norm2 are LayerNorm (InternViT-300M) or RMSNorm (InternViT-6B), and
// there is no final norm. HF names under the scope ("vision_model"):
// embeddings.{class_embedding, patch_embedding, position_embedding},
// encoder.layers.{i}.{norm1, attn.qkv, attn.q_norm, attn.k_norm, attn.proj,
// ls1, norm2, mlp.fc1, mlp.fc2, ls2}.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "imgjudge/backend.hpp"
#include "models/vision/vit.hpp"
#include "runtime/linear.hpp"
#include "runtime/nn.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct InternVitConfig {
  /// Widths, layers, activation, eps; image_size is the learned position
  /// grid's (image_size / patch_size per side), not necessarily the tile size.
  VitConfig vit;
  bool rms_norm = true;          ///< norm_type "rms_norm" (else "layer_norm": weight and bias).
  bool qk_normalization = true;  ///< attn.q_norm / attn.k_norm: RMSNorm over all heads (C), weight only.
  bool qkv_bias = false;         ///< attn.qkv has a bias (attn.proj always has one).

  /// A vision_config (InternVisionConfig); absent keys take the class
  /// defaults, which are InternViT-6B's (rms_norm, qk_normalization true).
  static InternVitConfig read(const runtime::HfConfig& vision);
};

class InternVisionTower final : public VisionTower {
 public:
  InternVisionTower(const InternVitConfig& config, const runtime::WeightStore& scope);

  const VitConfig& config() const override { return config_.vit; }
  const InternVitConfig& intern_config() const { return config_; }
  bool has_class_token() const override { return true; }
  /// pixel_values [B, 3, S, S] for any S >= patch_size (the reference takes
  /// any tile size: the position grid is interpolated to S / patch_size).
  /// Entry 0 is the embeddings, entry k the output of layer k, each
  /// [B, 1 + (S/p)^2, C]; only entries up to hidden_state_index(`through`).
  std::vector<at::Tensor> hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                        const CallContext* call) const override;

  /// The learned position rows of the patches for a grid x grid map:
  /// [grid*grid, C], bicubic-interpolated (PyTorch, align_corners false) in
  /// float32 from the learned grid when the sizes differ.
  at::Tensor patch_positions(std::int64_t grid) const;

 private:
  struct Norm {
    at::Tensor weight;
    std::optional<at::Tensor> bias;  // LayerNorm only
  };
  struct Layer {
    Norm norm1, norm2;
    runtime::Linear qkv, proj, fc1, fc2;
    at::Tensor q_norm, k_norm;  // [C], qk_normalization only
    at::Tensor ls1, ls2;        // [C]
  };
  Norm norm(const runtime::WeightStore& scope, const char* name) const;
  at::Tensor apply(const Norm& norm, const at::Tensor& x) const;
  at::Tensor embed(const at::Tensor& pixel_values) const;
  at::Tensor attention(const Layer& layer, const at::Tensor& x) const;

  InternVitConfig config_;
  at::Tensor class_embedding_;     // [1, 1, C]
  at::Tensor patch_weight_, patch_bias_;
  at::Tensor position_embedding_;  // [1, 1 + G0*G0, C]
  std::vector<Layer> layers_;
  runtime::nn::Activation act_;
};

}  // namespace imgjudge::models
