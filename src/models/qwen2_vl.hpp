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
#include "models/qwen2.hpp"
#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

enum class QwenVLFamily { Qwen2VL, Qwen2_5VL };

/// One image's patch grid: t frames (1 for a still image) x h x w patches.
struct ImageGrid {
  std::int64_t t = 1, h = 0, w = 0;
  std::int64_t patches() const { return t * h * w; }
};

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

/// M-RoPE positions of one prompt (HF get_rope_index for images).
struct RopeIndex {
  at::Tensor position_ids;  ///< [3, 1, T] int64.
  std::int64_t delta = 0;   ///< max position + 1 - T: decode position of index p is p + delta.
};

/// Qwen2VLImageProcessor (also used by Qwen2.5-VL) settings from preprocessor_config.json.
struct QwenImageProcessorConfig {
  std::int64_t min_pixels = 56 * 56;
  std::int64_t max_pixels = 28 * 28 * 1280;
  std::int64_t patch_size = 14;
  std::int64_t temporal_patch_size = 2;
  std::int64_t merge_size = 2;
  int resample = 3;  ///< PIL code (bicubic).
  bool do_resize = true, do_rescale = true, do_normalize = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};
  static QwenImageProcessorConfig from_file(const std::string& path);
};

/// smart_resize: {height, width}, both multiples of `factor`, area within
/// [min_pixels, max_pixels], aspect kept (Python round = half to even).
/// Error(InvalidImage) for an aspect ratio above 200 or a side below 10 px.
std::array<std::int64_t, 2> qwen_smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                              std::int64_t min_pixels, std::int64_t max_pixels);

struct ProcessedImage {
  at::Tensor pixel_values;  ///< [grid.patches(), patch_dim] float32, processor order.
  ImageGrid grid;
};

/// What Qwen2VLImageProcessor()(images=image) returns for one still image.
ProcessedImage qwen_preprocess_image(const Image& image, const QwenImageProcessorConfig& config);

/// The whole model: vision tower + Qwen2 decoder.
class QwenVLModel {
 public:
  /// Loads `dir` (config.json + safetensors) in `dtype` on `device`, the
  /// linear layers in `linear_format`.
  static std::shared_ptr<const QwenVLModel> load(const std::string& dir, at::ScalarType dtype, at::Device device,
                                                 runtime::LinearFormat linear_format = runtime::LinearFormat::Dense);
  QwenVLModel(QwenVLConfig config, const runtime::WeightStore& weights);

  const QwenVLConfig& config() const { return config_; }
  const Decoder& decoder() const { return *decoder_; }
  at::ScalarType dtype() const { return decoder_->dtype(); }

  /// Image features [sum of merged tokens, hidden] for pixel_values of `grids`.
  at::Tensor encode_images(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                           const CallContext* call = nullptr, VisionTrace* trace = nullptr) const;

  /// HF get_rope_index for a prompt of `ids` whose image placeholder runs
  /// belong, in order, to `grids`. Error(InvalidArgument) when the runs and the
  /// grids disagree.
  RopeIndex rope_index(const std::vector<std::int64_t>& ids, const std::vector<ImageGrid>& grids) const;

  /// Token embeddings [1, T, hidden] with the image_token_id rows replaced, in
  /// order, by `image_features` (undefined when the prompt has no image).
  at::Tensor embed_prompt(const std::vector<std::int64_t>& ids, const at::Tensor& image_features) const;

 private:
  QwenVLConfig config_;
  std::unique_ptr<const Decoder> decoder_;
  std::unique_ptr<QwenVisionTower> vision_;
};

/// The parameters QwenVLModel binds for `config` (random-model folders).
std::vector<runtime::ParamSpec> qwen_vl_parameter_specs(const runtime::HfConfig& config);

/// A preprocessor_config.json for `config` with a small pixel budget (4 to 64
/// merged tokens per image), for random-model folders.
nlohmann::json qwen_vl_random_preprocessor(const runtime::HfConfig& config);

}  // namespace imgjudge::models
