// CLIP (transformers CLIPModel): a causal text tower pooled at the EOS token,
// a ViT vision tower pooled at CLS, linear projections into a joint space.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/clip_encoder.hpp"
#include "models/vision/vit.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models::clip {

/// CLIPTextConfig / CLIPVisionConfig / CLIPConfig fields with HF defaults.
struct Config {
  struct Text {
    EncoderConfig encoder{512, 2048, 12, 8, "quick_gelu", 1e-5};
    std::int64_t vocab_size = 49408;
    std::int64_t max_position_embeddings = 77;
    std::int64_t eos_token_id = 49407;  ///< 2 in the original openai configs: pool at argmax(ids)
  } text;
  /// CLIPVisionConfig defaults.
  VitConfig vision{EncoderConfig{768, 3072, 12, 12, "quick_gelu", 1e-5}, 3, 224, 32};
  std::int64_t projection_dim = 512;
};

/// Reads <dir>/config.json (model_type "clip").
Config load_config(const std::string& model_dir);
Config parse_config(const runtime::HfConfig& config);

struct TowerOutput {
  at::Tensor last_hidden_state;           ///< text: after final_layer_norm; vision: encoder output
  at::Tensor pooled;                      ///< [B, hidden] pooler_output
  at::Tensor features;                    ///< [B, projection_dim] before L2-normalisation
  std::vector<at::Tensor> hidden_states;  ///< input of each layer + encoder output (if asked)
};

class ClipModel {
 public:
  /// Binds every weight from `weights` (HF names, e.g. "text_model.embeddings...").
  ClipModel(const Config& config, const runtime::WeightStore& weights);

  /// input_ids [B, L] int64; attention_mask [B, L] of 0/1 or undefined.
  TowerOutput encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          bool keep_hidden_states = false) const;
  /// pixel_values [B, C, image_size, image_size], normalised.
  TowerOutput encode_image(const at::Tensor& pixel_values, bool keep_hidden_states = false) const;
  /// exp(logit_scale) * image_embeds @ text_embeds^T, [B_img, B_text].
  at::Tensor logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const;

  const Config& config() const noexcept { return config_; }
  at::ScalarType dtype() const noexcept { return dtype_; }
  at::Device device() const noexcept { return device_; }

 private:
  Config config_;
  at::ScalarType dtype_;
  at::Device device_;
  // text_model.*
  at::Tensor token_embedding_, text_position_embedding_;
  ClipEncoder text_encoder_;
  LayerNorm final_layer_norm_;
  ClipVisionTower vision_;  // vision_model.*
  at::Tensor text_projection_, visual_projection_, logit_scale_;
};

/// Every parameter ClipModel binds for `config` (from the constructor itself).
std::vector<runtime::ParamSpec> parameter_specs(const Config& config);

}  // namespace imgjudge::models::clip
