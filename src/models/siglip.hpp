// SigLIP (transformers SiglipModel): a bidirectional text tower pooled at the
// LAST position then a `head` Linear; a ViT without CLS whose pooled output
// comes from a multi-head attention-pooling head (learned probe query);
// sigmoid-style logits with logit_scale and logit_bias.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/clip.hpp"  // TowerOutput
#include "models/clip_encoder.hpp"
#include "models/vision/vit.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models::siglip {

using clip::TowerOutput;

/// SiglipTextConfig / SiglipVisionConfig fields with HF defaults.
struct Config {
  struct Text {
    EncoderConfig encoder{768, 3072, 12, 12, "gelu_pytorch_tanh", 1e-6};
    std::int64_t vocab_size = 32000;
    std::int64_t max_position_embeddings = 64;
    std::int64_t projection_size = 768;  ///< HF default: hidden_size
  } text;
  /// SiglipVisionConfig defaults.
  struct Vision : VitConfig {
    Vision() : VitConfig{EncoderConfig{768, 3072, 12, 12, "gelu_pytorch_tanh", 1e-6}, 3, 224, 16} {}
    bool use_head = true;  ///< vision_use_head
  } vision;
};

Config load_config(const std::string& model_dir);
Config parse_config(const runtime::HfConfig& config);

class SiglipModel {
 public:
  SiglipModel(const Config& config, const runtime::WeightStore& weights);

  /// input_ids [B, L] (SigLIP pads to max_length and attends to padding);
  /// attention_mask optional [B, L] 0/1.
  TowerOutput encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          bool keep_hidden_states = false) const;
  /// pixel_values [B, C, image_size, image_size]. `pooled`/`features` are the
  /// attention-pooled output (undefined when vision_use_head is false).
  TowerOutput encode_image(const at::Tensor& pixel_values, bool keep_hidden_states = false) const;
  /// image_embeds @ text_embeds^T * exp(logit_scale) + logit_bias, [B_img, B_text].
  at::Tensor logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const;

  const Config& config() const noexcept { return config_; }
  at::ScalarType dtype() const noexcept { return dtype_; }
  at::Device device() const noexcept { return device_; }

 private:
  Config config_;
  at::ScalarType dtype_;
  at::Device device_;
  at::Tensor token_embedding_, text_position_embedding_;
  ClipEncoder text_encoder_;
  LayerNorm final_layer_norm_;
  at::Tensor text_head_weight_, text_head_bias_;
  SiglipVisionTower vision_;  // vision_model.*
  at::Tensor logit_scale_, logit_bias_;
};

std::vector<runtime::ParamSpec> parameter_specs(const Config& config);

}  // namespace imgjudge::models::siglip
