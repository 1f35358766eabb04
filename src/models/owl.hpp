// OWL-ViT and OWLv2 (transformers 4.50.3 OwlViTForObjectDetection,
// Owlv2ForObjectDetection): open-vocabulary detection with a CLIP-style dual
// encoder in which every image patch proposes one box.
//
//   image  -> ViT (CLIP tower, "pre_layernorm") -> post_layernorm, each patch
//             times the class token, layer_norm        -> patch features [B, P, Dv]
//   texts  -> CLIP text tower pooled at argmax(input_ids) -> text_projection
//             -> L2 norm                                -> query embeddings [N, Dp]
//   heads  class:  (unit(dense0(f)) . unit(q) + shift(f)) * (elu(scale(f)) + 1) [B, P, Q]
//          box:    sigmoid(mlp(f) + bias of the patch's grid cell)  (cx, cy, w, h) [B, P, 4]
//          objectness (OWLv2 only): mlp(f)                             [B, P]
// P = grid_h * grid_w patches (row-major); Dv vision width, Dt text width,
// Dp projection_dim (== Dt in every checkpoint: the class head needs it).
//
// Weight names: "<model_type>.vision_model.*", "<model_type>.text_model.*",
// "<model_type>.text_projection.weight", "class_head.*", "box_head.*",
// "objectness_head.*" (OWLv2), "layer_norm.*".
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "imgjudge/backend.hpp"
#include "models/clip_encoder.hpp"
#include "models/multimodal.hpp"  // LoadOptions
#include "models/vision/vit.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models::owl {

/// Owlv2Config / OwlViTConfig with the classes' defaults for absent keys.
struct Config {
  std::string model_type = "owlv2";  ///< "owlv2" or "owlvit": the weight prefix; OWLv2 has objectness
  struct Text {
    EncoderConfig encoder{512, 2048, 12, 8, "quick_gelu", 1e-5};
    std::int64_t vocab_size = 49408;
    std::int64_t max_position_embeddings = 16;  ///< Queries are padded (and truncated) to this length.
  } text;
  /// Patch 16 for OWLv2, 32 for OWL-ViT (the classes' defaults); image_size 768 for both.
  VitConfig vision{EncoderConfig{768, 3072, 12, 12, "quick_gelu", 1e-5}, 3, 768, 16};
  std::int64_t projection_dim = 512;

  bool has_objectness() const { return model_type == "owlv2"; }
};

/// Reads a config.json of model_type "owlv2" or "owlvit". Error(InvalidModel)
/// naming the file for another type or text hidden_size != projection_dim.
Config parse_config(const runtime::HfConfig& root);
Config load_config(const std::string& model_dir);

/// An image as the detection heads see it.
struct ImageFeatures {
  at::Tensor patches;  ///< [B, P, Dv]
  std::int64_t grid_h = 0, grid_w = 0;
  /// [B, grid_h, grid_w, Dv]: HF's image_embeds.
  at::Tensor feature_map() const;
};

/// The query-independent half of the class head, per patch.
struct PatchClassifier {
  at::Tensor class_embeds;  ///< [B, P, Dt], dense0 output / (||.|| + 1e-6)
  at::Tensor logit_shift;   ///< [B, P, 1]
  at::Tensor logit_scale;   ///< [B, P, 1], elu(.) + 1
};

/// Forward outputs under HF's names (float32).
struct Detections {
  at::Tensor logits;             ///< [B, P, Q]; a masked query's column is float32 lowest
  at::Tensor pred_boxes;         ///< [B, P, 4] (cx, cy, w, h) in [0, 1] of the processed image
  at::Tensor objectness_logits;  ///< [B, P] (OWLv2; undefined for OWL-ViT)
  at::Tensor class_embeds;       ///< [B, P, Dt]
};

class OwlDetector {
 public:
  /// Binds every weight by its HF name from `weights` (the checkpoint root).
  OwlDetector(const Config& config, const runtime::WeightStore& weights);

  /// pixel_values [B, 3, image_size, image_size] -> patch features.
  /// Error(InvalidArgument) for another shape. `call` is checked between layers.
  ImageFeatures encode_image(const at::Tensor& pixel_values, const CallContext* call = nullptr) const;
  /// input_ids [N, S] (S <= max_position_embeddings), attention_mask [N, S]
  /// of 0/1 or undefined -> unit query embeddings [N, Dp] (x / ||x||, no eps).
  at::Tensor embed_texts(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                         const CallContext* call = nullptr) const;

  PatchClassifier classify_patches(const ImageFeatures& image) const;
  /// [B, P, 4] (cx, cy, w, h), float32.
  at::Tensor pred_boxes(const ImageFeatures& image) const;
  /// [B, P], float32 (OWLv2; Error(Internal) for OWL-ViT).
  at::Tensor objectness_logits(const ImageFeatures& image) const;
  /// Every head: query_embeds [B, Q, Dp], query_mask [B, Q] (bool, false =
  /// padding query) or undefined.
  Detections detect(const ImageFeatures& image, const at::Tensor& query_embeds, const at::Tensor& query_mask) const;

  const Config& config() const noexcept { return config_; }
  at::ScalarType dtype() const noexcept { return dtype_; }
  at::Device device() const noexcept { return device_; }

 private:
  /// dense0 -> gelu -> dense1 -> gelu -> dense2 (exact erf GELU, whatever the config's act).
  struct MlpHead {
    MlpHead(const runtime::WeightStore& scope, std::int64_t hidden, std::int64_t out);
    at::Tensor operator()(const at::Tensor& x) const;
    at::Tensor w0, b0, w1, b1, w2, b2;
  };
  Config config_;
  at::ScalarType dtype_;
  at::Device device_;
  ClipVisionTower vision_;  // <prefix>.vision_model
  at::Tensor token_embedding_, text_position_embedding_;
  ClipEncoder text_encoder_;
  LayerNorm final_layer_norm_;
  at::Tensor text_projection_;
  LayerNorm image_layer_norm_;  // "layer_norm": after the class-token multiply
  at::Tensor class_dense0_w_, class_dense0_b_, logit_shift_w_, logit_shift_b_, logit_scale_w_, logit_scale_b_;
  MlpHead box_head_;
  std::optional<MlpHead> objectness_head_;
};

/// HF's query_mask: input_ids.reshape(batch, Q, S)[..., 0] > 0 -> [batch, Q]
/// bool. Only an all-padding row (first id 0) is masked.
at::Tensor query_mask(const at::Tensor& input_ids, std::int64_t batch);

/// The class logits of `queries` [B, Q, Dp] against `patches`: [B, P, Q]
/// float32; columns where `query_mask` [B, Q] is false hold float32 lowest.
at::Tensor class_logits(const PatchClassifier& patches, const at::Tensor& queries, const at::Tensor& query_mask);

/// HF compute_box_bias for a grid_h x grid_w grid: [P, 4] float32, the inverse
/// sigmoid of (the bottom-right corner of each patch, the patch size).
at::Tensor box_bias(std::int64_t grid_h, std::int64_t grid_w);

/// (cx, cy, w, h) -> (x0, y0, x1, y1), HF center_to_corners_format.
at::Tensor center_to_corners(const at::Tensor& boxes);

/// HF post_process_object_detection of one family's outputs, per image:
/// scores = sigmoid(max over queries) (ties: the first query), kept where
/// score > threshold (patch order), corners scaled to target_sizes[b] =
/// {height, width}: OWLv2 by max(height, width) (the padded square's side),
/// OWL-ViT by (width, height, width, height). No target sizes: normalised corners.
struct PostProcessed {
  at::Tensor scores;  ///< [K] float32
  at::Tensor labels;  ///< [K] int64
  at::Tensor boxes;   ///< [K, 4] float32 (x0, y0, x1, y1)
};
std::vector<PostProcessed> post_process_object_detection(const Config& config, const Detections& outputs,
                                                         double threshold,
                                                         const std::vector<std::array<std::int64_t, 2>>& target_sizes);

/// Every parameter OwlDetector binds for a config.json (random-model folders).
std::vector<runtime::ParamSpec> parameter_specs(const runtime::HfConfig& config);
/// The preprocessor_config.json the published checkpoints ship: OWLv2
/// Owlv2ImageProcessor (pad, size = image_size), OWL-ViT OwlViTImageProcessor
/// (size = crop = image_size, bicubic), CLIP mean/std.
nlohmann::json processor_config(const runtime::HfConfig& config);

/// The Locator of an OWLv2 / OWL-ViT folder (config.json, safetensors, the
/// CLIP tokenizer files, preprocessor_config.json) in `options.target`.
/// Error(InvalidModel) naming the file for a broken folder.
std::shared_ptr<const Locator> load_locator(const std::string& dir, const LoadOptions& options);

}  // namespace imgjudge::models::owl
