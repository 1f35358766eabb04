// The ViT vision towers of CLIP and SigLIP (CLIPVisionTransformer,
// SiglipVisionTransformer), bound by their HF names under a scope
// ("vision_model" in a dual encoder, "vision_tower.vision_model" in LLaVA),
// without the text half: used by the relevance dual encoders and as the
// vision tower of vision-language models.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "models/clip_encoder.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct VitConfig {
  EncoderConfig encoder;
  std::int64_t num_channels = 3;
  std::int64_t image_size = 224;
  std::int64_t patch_size = 32;
  std::int64_t grid() const { return image_size / patch_size; }  ///< Patches per side (the remainder is dropped).

  /// The tower fields of a vision_config, absent keys from `defaults`
  /// (Error(InvalidModel) for sizes that do not tile).
  static VitConfig read(const runtime::HfConfig& vision, const VitConfig& defaults);
};

/// The index among a tower's `layers` + 1 hidden states of `layer`, counted as
/// Python indexes them (-1: the last layer's output). Error(InvalidModel) when
/// out of range.
std::int64_t hidden_state_index(std::int64_t layer, std::int64_t layers);

/// What a vision-language model needs of a tower.
class VisionTower {
 public:
  virtual ~VisionTower() = default;
  virtual const VitConfig& config() const = 0;
  /// True when token 0 is a class token (CLIP), false for SigLIP.
  virtual bool has_class_token() const = 0;
  /// HF's hidden_states for pixel_values [B, C, S, S]: entry 0 the embeddings
  /// (CLIP: after pre_layrnorm), entry k the output of layer k, each
  /// [B, tokens, hidden]; only entries up to hidden_state_index(`through`)
  /// are computed.
  virtual std::vector<at::Tensor> hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                                const CallContext* call) const = 0;
};

/// CLIP: [class ; patches] + positions, pre_layrnorm, the encoder;
/// post_layernorm on the class token gives the pooled output. OWL-ViT and
/// OWLv2 have the same tower with the pre-norm spelled "pre_layernorm".
class ClipVisionTower final : public VisionTower {
 public:
  /// `pre_layernorm_name`: the pre-norm's scope ("pre_layrnorm" is CLIP's
  /// spelling in transformers, "pre_layernorm" OWL's).
  ClipVisionTower(const VitConfig& config, const runtime::WeightStore& scope,
                  const std::string& pre_layernorm_name = "pre_layrnorm");
  const VitConfig& config() const override { return config_; }
  bool has_class_token() const override { return true; }
  std::vector<at::Tensor> hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                        const CallContext* call) const override;
  /// The encoder's output [B, 1 + g*g, hidden] (HF last_hidden_state, before
  /// post_layernorm), without keeping the earlier layers' states.
  at::Tensor last_hidden_state(const at::Tensor& pixel_values, const CallContext* call) const;
  /// post_layernorm (the pooled output's norm) of [..., hidden].
  at::Tensor post_layernorm(const at::Tensor& x) const { return post_layernorm_(x); }

 private:
  /// [class ; patches] + positions, pre-norm: the encoder's input [B, 1 + g*g, hidden].
  at::Tensor embed(const at::Tensor& pixel_values) const;
  VitConfig config_;
  at::Tensor class_embedding_, patch_embedding_, position_embedding_;
  LayerNorm pre_layernorm_, post_layernorm_;
  ClipEncoder encoder_;
};

/// SigLIP: patches (conv with bias) + positions, the encoder; post_layernorm
/// of the last state, and an optional attention-pooling head (vision_use_head).
class SiglipVisionTower final : public VisionTower {
 public:
  SiglipVisionTower(const VitConfig& config, const runtime::WeightStore& scope, bool use_head);
  const VitConfig& config() const override { return config_; }
  bool has_class_token() const override { return false; }
  std::vector<at::Tensor> hidden_states(const at::Tensor& pixel_values, std::int64_t through,
                                        const CallContext* call) const override;
  at::Tensor post_layernorm(const at::Tensor& x) const { return post_layernorm_(x); }
  bool has_head() const { return head_.has_value(); }
  /// The head: a learned probe attends over [B, N, D] (nn.MultiheadAttention
  /// with packed in_proj), then x + mlp(layernorm(x)) -> [B, D].
  at::Tensor attention_pool(const at::Tensor& patches) const;

 private:
  struct PoolingHead {
    at::Tensor probe, in_proj_weight, in_proj_bias, out_weight, out_bias;
    LayerNorm layernorm;
    Mlp mlp;
  };
  VitConfig config_;
  at::Tensor patch_weight_, patch_bias_, position_embedding_;
  ClipEncoder encoder_;
  LayerNorm post_layernorm_;
  std::optional<PoolingHead> head_;
};

}  // namespace imgjudge::models
