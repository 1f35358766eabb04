// The LLaVA families (transformers 4.50.3 modeling_llava.py,
// modeling_llava_next.py, modeling_llava_onevision.py): a vision tower (CLIP
// or SigLIP, without its text half), one or several of its hidden layers, a
// two-layer projector, and a text decoder of any Text family (Llama, Mistral,
// Qwen2) whose <image> rows are the projected image features:
//
//   llava            one tile; every image is (S/p)^2 tokens (minus CLS)
//   llava_next       anyres tiles: the base tile's tokens, then the grid's
//                    feature map with the padding cut off, an image_newline
//                    row end after every row
//   llava_onevision  as llava_next, the map shrunk by bilinear interpolation
//                    when it exceeds "anyres_max_N" tiles' worth of tokens
//
// Positions are 1-D; the images' rows enter in prompt order.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "models/multimodal.hpp"
#include "models/processors/llava_processor.hpp"
#include "models/vision/vit.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct LlavaConfig {
  enum class Variant { Llava, Next, OneVision };
  Variant variant = Variant::Llava;
  std::string text_model_type;  ///< "llama", "mistral", "qwen2" (text_config.model_type).
  bool siglip_tower = false;    ///< vision_config.model_type siglip_vision_model (else CLIP).
  VitConfig vision;
  std::vector<std::int64_t> feature_layers;  ///< vision_feature_layer (an int or a list), as written.
  bool drop_class_token = true;              ///< vision_feature_select_strategy "default" (else "full").
  std::string projector_act = "gelu";
  bool projector_bias = true;
  std::int64_t image_token_id = 32000;
  GridPinpoints pinpoints;       ///< Next, OneVision.
  std::int64_t max_tiles = 9;    ///< OneVision: vision_aspect_ratio "anyres_max_N".
  std::int64_t text_hidden_size = 0;

  /// From config.json (model_type llava, llava_next or llava_onevision).
  static LlavaConfig from_config(const runtime::HfConfig& config);
};

class LlavaModel final : public MultimodalLM {
 public:
  static std::shared_ptr<const LlavaModel> load(const std::string& dir, const LoadOptions& options);
  LlavaModel(LlavaConfig config, const runtime::HfConfig& root, const runtime::WeightStore& weights, Parts parts,
             std::optional<LlavaImageProcessorConfig> processor);

  const LlavaConfig& config() const { return config_; }
  bool has_vision() const override { return true; }
  EncodedImage encode_image(const Image& image, const CallContext* call) const override;
  std::optional<ImageFootprint> image_footprint(const Image& image) const override;

  /// The tower's hidden states for tiles [T, 3, S, S] (HF hidden_states, every layer).
  std::vector<at::Tensor> vision_hidden_states(const at::Tensor& tiles) const;
  /// The projected features of tiles [T, 3, S, S] -> [T, tokens per tile, text hidden].
  at::Tensor tile_features(const at::Tensor& tiles, const CallContext* call = nullptr) const;
  /// One image's rows: llava, the tile's features; llava_next / onevision,
  /// the anyres packing of its tiles' features for an image of height x width.
  at::Tensor pack(const at::Tensor& tile_features, std::int64_t height, std::int64_t width) const;

 private:
  LlavaConfig config_;
  std::unique_ptr<const VisionTower> tower_;
  runtime::Linear projector_1_, projector_2_;
  runtime::nn::Activation projector_act_;
  at::Tensor image_newline_;  // [text hidden], Next and OneVision
  std::optional<LlavaImageProcessorConfig> processor_;
};

/// What LlavaModel binds for `config` (random-model folders).
std::vector<runtime::ParamSpec> llava_parameter_specs(const runtime::HfConfig& config);
/// The preprocessor_config.json of the published checkpoints of the family,
/// for the tower's size (llava-1.5: CLIP 336; llava-v1.6: anyres over CLIP
/// 336 tiles; llava-onevision: anyres_max over SigLIP 384 tiles).
nlohmann::json llava_processor_config(const runtime::HfConfig& config);

}  // namespace imgjudge::models
