// InternVL2 / InternVL2.5 (model_type "internvl_chat"; OpenGVLab's
// modeling_internvl_chat.py, which the checkpoints ship for
// trust_remote_code): InternViT tiles (models/vision/intern_vit.hpp), one
// hidden layer of it (select_layer) without the class token, pixel shuffle
// (downsample_ratio 0.5: 2x2 neighbouring patches into one token of 4x the
// width), the mlp1 projector (LayerNorm, Linear, GELU, Linear), and a Qwen2,
// Llama or InternLM2 language model on the shared decoder, chosen by
// llm_config.architectures[0]. An image is `<img>` + `<IMG_CONTEXT>` x
// (tokens per tile x tiles) + `</img>` in the prompt, rendered by the
// conversation template config.json names (tokenizer/chat_template.hpp,
// ChatStyle::InternVL); positions are 1-D.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/multimodal.hpp"
#include "models/processors/internvl_processor.hpp"
#include "models/vision/intern_vit.hpp"
#include "runtime/linear.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct InternVLConfig {
  enum class LanguageModel { Qwen2, Llama, InternLM2 };
  LanguageModel language_model = LanguageModel::InternLM2;
  std::string llm_architecture;        ///< llm_config.architectures[0], as written.
  InternVitConfig vision;
  InternVLProcessorConfig processor;   ///< Tile size and tiling (config.json).
  std::int64_t select_layer = -1;      ///< Python index into the tower's hidden states.
  std::int64_t shuffle = 2;            ///< 1 / downsample_ratio: shuffle x shuffle patches per token.
  bool ps_v1 = true;                   ///< ps_version "v1" (the class default): the token grid stays transposed.
  std::string template_name;           ///< "template": internvl2_5, internlm2-chat, Hermes-2, phi3-chat.
  std::optional<std::string> system_message;  ///< Overrides the template's when present.

  /// Patches per tile side (tile size / patch size).
  std::int64_t grid() const { return processor.tile_size / vision.vit.patch_size; }
  /// Image tokens per tile: (grid / shuffle)^2 (num_image_token).
  std::int64_t tokens_per_tile() const { return (grid() / shuffle) * (grid() / shuffle); }

  /// From config.json (InternVLChatConfig; its defaults for absent keys).
  /// Error(Unsupported) for an LLM other than Qwen2, Llama, InternLM2 and for
  /// LoRA-wrapped checkpoints; Error(InvalidModel) naming the key otherwise.
  static InternVLConfig from_config(const runtime::HfConfig& config);
};

class InternVLModel final : public MultimodalLM {
 public:
  /// Loads `dir`. With processors, the tokenizer names <IMG_CONTEXT> (and
  /// must have <img>, </img> and the template's turn end); without them (a
  /// bare fixture folder) `image_token_id` is the id that stands for image
  /// rows (-1: none).
  static std::shared_ptr<const InternVLModel> load(const std::string& dir, const LoadOptions& options,
                                                   std::int64_t image_token_id = -1);
  InternVLModel(InternVLConfig config, const runtime::HfConfig& root, const runtime::WeightStore& weights, Parts parts);

  const InternVLConfig& config() const { return config_; }
  bool has_vision() const override { return true; }
  EncodedImage encode_image(const Image& image, const CallContext* call) const override;
  std::optional<ImageFootprint> image_footprint(const Image& image) const override;
  /// The first answer token as it follows the assistant's turn opening
  /// (SentencePiece tokenizers spell a word there without the "▁" they put
  /// before a text of its own).
  std::vector<std::int32_t> answer_tokens(const std::string& spelling) const override;

  /// InternViT's hidden states for tiles [T, 3, S, S] (every layer).
  std::vector<at::Tensor> vision_hidden_states(const at::Tensor& tiles) const;
  /// extract_feature: tiles [T, 3, S, S] -> [T, tokens per tile, LLM hidden].
  at::Tensor tile_features(const at::Tensor& tiles, const CallContext* call = nullptr) const;
  /// pixel_shuffle + flatten: [T, g, g, C] (rows, columns) -> [T, (g/k)^2, C k^2],
  /// channels (row offset, column offset, C); v2 row-major tokens, v1 column-major.
  at::Tensor pixel_shuffle(const at::Tensor& grid) const;

 private:
  InternVLConfig config_;
  std::unique_ptr<const InternVisionTower> tower_;
  at::Tensor norm_weight_, norm_bias_;  // mlp1.0, LayerNorm(C k^2), eps 1e-5
  runtime::Linear projector_1_, projector_2_;  // mlp1.1, mlp1.3 (GELU between)
};

/// What InternVLModel binds for `config` (random-model folders).
std::vector<runtime::ParamSpec> internvl_parameter_specs(const runtime::HfConfig& config);

}  // namespace imgjudge::models
