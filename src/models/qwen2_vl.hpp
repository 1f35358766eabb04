// Qwen2-VL and Qwen2.5-VL (Qwen2VLForConditionalGeneration,
// Qwen2_5_VLForConditionalGeneration): a ViT over 3-D patches whose merged
// tokens replace the <|image_pad|> placeholders of the prompt, then the Qwen2
// decoder (models/qwen2.hpp) with M-RoPE positions from get_rope_index.
//
// The two families differ only in the vision tower (qwen2_vl.cpp:
// LayerNorm + quick_gelu MLP blocks, full attention per image;
// qwen2_5_vl.cpp: RMSNorm + SwiGLU blocks, window attention except in
// fullatt_block_indexes) and in the temporal index of image tokens. The image
// processor (Qwen2VLImageProcessor) is shared.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/image.hpp"
#include "models/multimodal.hpp"
#include "models/processors/qwen_vl_processor.hpp"
#include "models/qwen2.hpp"
#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

enum class QwenVLFamily { Qwen2VL, Qwen2_5VL };

struct QwenVisionConfig {
  std::int64_t depth = 0;
  std::int64_t hidden_size = 0;        ///< ViT width (Qwen2-VL "embed_dim").
  std::int64_t num_heads = 0;
  std::int64_t intermediate_size = 0;  ///< MLP width (Qwen2-VL: embed_dim * mlp_ratio).
  std::int64_t out_hidden_size = 0;    ///< Merger output = LM width.
  std::int64_t in_channels = 3;
  std::int64_t patch_size = 14;
  std::int64_t temporal_patch_size = 2;
  std::int64_t spatial_merge_size = 2;
  std::string hidden_act;
  std::int64_t window_size = 0;                     ///< Qwen2.5-VL, in pixels.
  std::vector<std::int64_t> fullatt_block_indexes;  ///< Qwen2.5-VL.
  std::int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

struct QwenVLConfig {
  QwenVLFamily family = QwenVLFamily::Qwen2VL;
  DecoderConfig text;
  QwenVisionConfig vision;
  std::int64_t image_token_id = 151655;
  std::int64_t video_token_id = 151656;
  std::int64_t vision_start_token_id = 151652;
  std::int64_t vision_end_token_id = 151653;
  /// From config.json ("model_type" qwen2_vl or qwen2_5_vl; Error(Unsupported) otherwise).
  static QwenVLConfig from_config(const runtime::HfConfig& config);
};

/// Intermediate tensors of the vision tower, for parity checks.
struct VisionTrace {
  std::vector<at::Tensor> hidden_states;  ///< Patch-embed output and every block's output, processor order.
  at::Tensor window_index;                ///< Qwen2.5-VL: merged-token permutation into window order.
  std::vector<std::int64_t> cu_window_seqlens;  ///< Qwen2.5-VL: window boundaries in patches.
};

/// The ViT of either family: pixel_values [N, patch_dim] (processor order) ->
/// merged image features [N / merge^2, out_hidden_size].
class QwenVisionTower {
 public:
  virtual ~QwenVisionTower() = default;
  virtual at::Tensor forward(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                             const CallContext* call, VisionTrace* trace) const = 0;
};

/// qwen2_vl.cpp / qwen2_5_vl.cpp. `weights` is scoped to the tower ("visual").
std::unique_ptr<QwenVisionTower> make_qwen2_vl_vision_tower(const QwenVisionConfig& config,
                                                            const runtime::WeightStore& weights);
std::unique_ptr<QwenVisionTower> make_qwen2_5_vl_vision_tower(const QwenVisionConfig& config,
                                                              const runtime::WeightStore& weights);


/// The whole model: vision tower + Qwen2 decoder, with the tokenizer, chat
/// template and image processor of its folder.
class QwenVLModel final : public MultimodalLM {
 public:
  /// Loads `dir` (config.json, safetensors; with `options.with_processors` also
  /// the tokenizer, chat template and preprocessor_config.json).
  static std::shared_ptr<const QwenVLModel> load(const std::string& dir, const LoadOptions& options);
  /// Binds the weights of `config` (HF names) from `weights`.
  QwenVLModel(QwenVLConfig config, const runtime::WeightStore& weights, Parts parts,
              QwenImageProcessorConfig processor);

  const QwenVLConfig& config() const { return config_; }

  bool has_vision() const override { return true; }
  EncodedImage encode_image(const Image& image, const CallContext* call) const override;
  std::optional<ImageFootprint> image_footprint(const Image& image) const override;
  /// HF get_rope_index: M-RoPE positions, image tokens at (t, row, col) after the text before them.
  PromptPositions positions(const std::vector<std::int64_t>& ids,
                            const std::vector<const EncodedImage*>& images) const override;

  /// The vision tower and merger over pixel_values [patches, patch_dim] of
  /// `grids` (processor order) -> [merged tokens of every image, hidden].
  at::Tensor encode_pixels(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                           const CallContext* call = nullptr, VisionTrace* trace = nullptr) const;
  /// The EncodedImage of one image's features (grid in patches).
  EncodedImage encoded(const at::Tensor& features, const ImageGrid& grid) const;

 private:
  QwenVLConfig config_;
  std::unique_ptr<QwenVisionTower> vision_;
  QwenImageProcessorConfig processor_;
};

/// The parameters QwenVLModel binds for `config` (random-model folders).
std::vector<runtime::ParamSpec> qwen_vl_parameter_specs(const runtime::HfConfig& config);

/// The preprocessor_config.json of the published Qwen2-VL / Qwen2.5-VL
/// checkpoints (min_pixels 3136, max_pixels 12845056), patch sizes from `config`.
nlohmann::json qwen_vl_processor_config(const runtime::HfConfig& config);

}  // namespace imgjudge::models
