// Qwen2-VL: config, image processor, M-RoPE position ids, the Qwen2-VL vision
// tower, and the model that joins a vision tower to the Qwen2 decoder.
// Reference: transformers 4.50.3 modeling_qwen2_vl.py, image_processing_qwen2_vl.py.
#include "models/qwen2_vl.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/attention.hpp"
#include "models/qwen_vl_vision.hpp"
#include "runtime/nn.hpp"
#include "runtime/safetensors.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models {

namespace qwen_vl_detail {

at::Tensor patch_embed(const at::Tensor& pixel_values, const at::Tensor& kernel) {
  return at::matmul(pixel_values.to(kernel.scalar_type()), kernel.reshape({kernel.size(0), -1}).t());
}

at::Tensor vision_rotary_angles(const std::vector<ImageGrid>& grids, std::int64_t head_dim,
                                std::int64_t merge_size) {
  std::vector<at::Tensor> rows, cols;
  std::int64_t max_side = 0;
  for (const ImageGrid& g : grids) {
    // Patch (row, col) in processor order: merge windows row-major, then the
    // merge x merge patches of each window row-major; repeated per frame.
    auto order = [&](const at::Tensor& grid) {
      return grid.reshape({g.h / merge_size, merge_size, g.w / merge_size, merge_size})
          .permute({0, 2, 1, 3})
          .flatten()
          .repeat({g.t});
    };
    rows.push_back(order(at::arange(g.h, at::kLong).unsqueeze(1).expand({g.h, g.w})));
    cols.push_back(order(at::arange(g.w, at::kLong).unsqueeze(0).expand({g.h, g.w})));
    max_side = std::max({max_side, g.h, g.w});
  }
  // VisionRotaryEmbedding(head_dim / 2): inv_freq over dim = head_dim / 2.
  const std::int64_t dim = head_dim / 2;
  at::Tensor inv_freq = 1.0 / at::pow(10000.0, at::arange(0, dim, 2, at::kFloat) / static_cast<double>(dim));
  at::Tensor table = at::outer(at::arange(max_side, at::kFloat), inv_freq);  // [max_side, head_dim / 4]
  return at::cat({table.index_select(0, at::cat(rows)), table.index_select(0, at::cat(cols))}, 1);
}

at::Tensor vision_attention(const at::Tensor& x, const VisionAttentionWeights& weights, std::int64_t num_heads,
                            const at::Tensor& angles, const std::vector<std::int64_t>& bounds) {
  const std::int64_t tokens = x.size(0), dim = x.size(1), head_dim = dim / num_heads;
  // [N, 3, H, D] -> q, k, v [N, H, D]
  at::Tensor qkv = weights.qkv(x).view({tokens, 3, num_heads, head_dim});
  at::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);
  // Rotary in float32 (apply_rotary_pos_emb_vision), cast back.
  at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);  // [N, 1, D]
  const at::Tensor cos = emb.cos(), sin = emb.sin();
  auto rotate = [&](const at::Tensor& t) {
    at::Tensor f = t.to(at::kFloat);
    return (f * cos + rotate_half(f) * sin).to(t.scalar_type());
  };
  q = rotate(q).transpose(0, 1).contiguous();  // [H, N, D]
  k = rotate(k).transpose(0, 1).contiguous();
  v = v.transpose(0, 1).contiguous();
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const at::Tensor out = segment_attention(q, k, v, bounds, scale);  // [N, H, D]
  return weights.proj(out.view({tokens, dim}));
}

std::vector<std::int64_t> frame_bounds(const std::vector<ImageGrid>& grids) {
  std::vector<std::int64_t> bounds{0};
  for (const ImageGrid& g : grids) {
    for (std::int64_t f = 0; f < g.t; ++f) bounds.push_back(bounds.back() + g.h * g.w);
  }
  return bounds;
}

void check_pixel_values(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                        const QwenVisionConfig& config) {
  std::int64_t patches = 0;
  for (const ImageGrid& g : grids) {
    if (g.t < 1 || g.h < 1 || g.w < 1 || g.h % config.spatial_merge_size != 0 ||
        g.w % config.spatial_merge_size != 0) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("image grid [{}, {}, {}] is not a positive multiple of the merge size {}", g.t,
                              g.h, g.w, config.spatial_merge_size));
    }
    patches += g.patches();
  }
  if (pixel_values.dim() != 2 || pixel_values.size(0) != patches || pixel_values.size(1) != config.patch_dim()) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("pixel_values must be [{}, {}] for these image grids", patches, config.patch_dim()));
  }
}

}  // namespace qwen_vl_detail

namespace {

using namespace qwen_vl_detail;

// The Qwen2-VL ViT: pre-LayerNorm blocks with a quick_gelu MLP, full attention
// within each frame, then PatchMerger (LayerNorm, 2x2 concat, Linear-GELU-Linear).
class Qwen2VLVisionTower final : public QwenVisionTower {
 public:
  Qwen2VLVisionTower(const QwenVisionConfig& config, const runtime::WeightStore& weights)
      : config_(config), act_(runtime::nn::activation(config.hidden_act)) {
    const std::int64_t d = config.hidden_size, mlp = config.intermediate_size;
    kernel_ = weights.get("patch_embed.proj.weight",
                          {d, config.in_channels, config.temporal_patch_size, config.patch_size, config.patch_size});
    for (std::int64_t i = 0; i < config.depth; ++i) {
      const auto b = weights.scope(fmt::format("blocks.{}", i));
      blocks_.push_back(Block{b.get("norm1.weight", {d}), b.get("norm1.bias", {d}), b.get("norm2.weight", {d}),
                              b.get("norm2.bias", {d}),
                              {b.linear("attn.qkv", 3 * d, d, true), b.linear("attn.proj", d, d, true)},
                              b.linear("mlp.fc1", mlp, d, true), b.linear("mlp.fc2", d, mlp, true)});
    }
    const std::int64_t merged = d * config.spatial_merge_size * config.spatial_merge_size;
    ln_q_weight_ = weights.get("merger.ln_q.weight", {d});
    ln_q_bias_ = weights.get("merger.ln_q.bias", {d});
    merger_fc1_ = weights.linear("merger.mlp.0", merged, merged, true);
    merger_fc2_ = weights.linear("merger.mlp.2", config.out_hidden_size, merged, true);
  }

  at::Tensor forward(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids, const CallContext* call,
                     VisionTrace* trace) const override {
    check_pixel_values(pixel_values, grids, config_);
    at::Tensor x = patch_embed(pixel_values, kernel_);  // [N, d]
    const at::Tensor angles =
        vision_rotary_angles(grids, config_.hidden_size / config_.num_heads, config_.spatial_merge_size);
    const std::vector<std::int64_t> bounds = frame_bounds(grids);
    if (trace != nullptr) trace->hidden_states.push_back(x);
    for (const Block& b : blocks_) {
      if (call != nullptr) call->check();
      x = x + vision_attention(runtime::nn::layer_norm(x, b.norm1_weight, b.norm1_bias, 1e-6), b.attn,
                               config_.num_heads, angles, bounds);
      at::Tensor h = runtime::nn::layer_norm(x, b.norm2_weight, b.norm2_bias, 1e-6);
      x = x + b.fc2(act_(b.fc1(h)));
      if (trace != nullptr) trace->hidden_states.push_back(x);
    }
    const std::int64_t merged = config_.hidden_size * config_.spatial_merge_size * config_.spatial_merge_size;
    at::Tensor m = runtime::nn::layer_norm(x, ln_q_weight_, ln_q_bias_, 1e-6).reshape({-1, merged});
    return merger_fc2_(at::gelu(merger_fc1_(m)));
  }

 private:
  struct Block {
    at::Tensor norm1_weight, norm1_bias, norm2_weight, norm2_bias;
    VisionAttentionWeights attn;
    runtime::Linear fc1, fc2;
  };
  QwenVisionConfig config_;
  runtime::nn::Activation act_;
  at::Tensor kernel_;
  std::vector<Block> blocks_;
  at::Tensor ln_q_weight_, ln_q_bias_;
  runtime::Linear merger_fc1_, merger_fc2_;  // merger.mlp.0 and merger.mlp.2 (GELU between)
};

std::int64_t positive(const runtime::HfConfig& config, const std::string& key, std::int64_t fallback) {
  const std::int64_t value = config.get_int(key, fallback);
  if (value <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' must be positive, found {}", config.file(), config.qualified(key), value));
  }
  return value;
}

}  // namespace

std::unique_ptr<QwenVisionTower> make_qwen2_vl_vision_tower(const QwenVisionConfig& config,
                                                            const runtime::WeightStore& weights) {
  return std::make_unique<Qwen2VLVisionTower>(config, weights);
}

QwenVLConfig QwenVLConfig::from_config(const runtime::HfConfig& config) {
  QwenVLConfig c;
  const std::string type = config.get_string("model_type");
  if (type == "qwen2_vl") {
    c.family = QwenVLFamily::Qwen2VL;
  } else if (type == "qwen2_5_vl") {
    c.family = QwenVLFamily::Qwen2_5VL;
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model_type \"{}\" is not Qwen2-VL or Qwen2.5-VL", config.file(), type));
  }
  // Qwen2VLConfig / Qwen2_5_VLConfig defaults (the 72B's widths) for keys a config leaves out.
  DecoderDefaults text_defaults;
  text_defaults.vocab_size = 152064;
  text_defaults.hidden_size = 8192;
  text_defaults.intermediate_size = 29568;
  text_defaults.num_layers = 80;
  text_defaults.num_heads = 64;
  text_defaults.num_kv_heads = 8;
  text_defaults.max_position_embeddings = 32768;
  text_defaults.rms_norm_eps = 1e-5;
  text_defaults.rope_theta = 1000000.0;
  c.text = DecoderConfig::from_config(config.section_with_fallback("text_config"), text_defaults);
  // Token ids: top level in every published config (text_config in some newer ones).
  const runtime::HfConfig text = config.section("text_config");
  auto token = [&](const char* key, std::int64_t fallback) {
    return config.has(key) ? config.get_int(key) : text.get_int(key, fallback);
  };
  c.image_token_id = token("image_token_id", 151655);
  c.video_token_id = token("video_token_id", 151656);
  c.vision_start_token_id = token("vision_start_token_id", 151652);
  c.vision_end_token_id = token("vision_end_token_id", 151653);

  const runtime::HfConfig v = config.section("vision_config");
  QwenVisionConfig& vc = c.vision;
  vc.depth = positive(v, "depth", 32);
  vc.num_heads = positive(v, "num_heads", 16);
  vc.in_channels = positive(v, "in_channels", v.get_int("in_chans", 3));
  vc.patch_size = positive(v, "patch_size", 14);
  vc.temporal_patch_size = positive(v, "temporal_patch_size", 2);
  vc.spatial_merge_size = positive(v, "spatial_merge_size", 2);
  if (c.family == QwenVLFamily::Qwen2VL) {
    // Qwen2VLVisionConfig: embed_dim is the ViT width, hidden_size the merger output.
    vc.hidden_size = positive(v, "embed_dim", 1280);
    vc.out_hidden_size = positive(v, "hidden_size", 3584);
    vc.intermediate_size = static_cast<std::int64_t>(static_cast<double>(vc.hidden_size) * v.get_double("mlp_ratio", 4.0));
    vc.hidden_act = v.get_string("hidden_act", "quick_gelu");
  } else {
    vc.hidden_size = positive(v, "hidden_size", 3584);
    vc.out_hidden_size = positive(v, "out_hidden_size", 3584);
    vc.intermediate_size = positive(v, "intermediate_size", 3420);
    vc.hidden_act = v.get_string("hidden_act", "silu");
    vc.window_size = positive(v, "window_size", 112);
    for (double index : v.get_doubles("fullatt_block_indexes", {7, 15, 23, 31})) {
      vc.fullatt_block_indexes.push_back(static_cast<std::int64_t>(index));
    }
  }
  if (vc.hidden_size % vc.num_heads != 0 || (vc.hidden_size / vc.num_heads) % 4 != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: vision width {} must split into {} heads of a multiple of 4", config.file(),
                            vc.hidden_size, vc.num_heads));
  }
  if (vc.out_hidden_size != c.text.hidden_size) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: vision output width {} differs from the text hidden_size {}", config.file(),
                            vc.out_hidden_size, c.text.hidden_size));
  }
  return c;
}

std::shared_ptr<const QwenVLModel> QwenVLModel::load(const std::string& dir, const LoadOptions& options) {
  const QwenVLConfig config = QwenVLConfig::from_config(runtime::HfConfig::load(util::join_path(dir, "config.json")));
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                                     options.target.device, options.target.linear_format);
  Parts parts;
  parts.model_type = config.family == QwenVLFamily::Qwen2VL ? "qwen2_vl" : "qwen2_5_vl";
  parts.model_dir = dir;
  parts.image_token_id = config.image_token_id;
  QwenImageProcessorConfig processor;
  if (options.with_processors) {
    parts.tokenizer = tokenizer::Tokenizer::load(dir);
    parts.chat = tokenizer::ChatTemplate::for_folder(dir, tokenizer::ChatTemplate(tokenizer::ChatStyle::Qwen2VL));
    for (const char* name : {"<|im_end|>", "<|endoftext|>"}) {
      if (auto id = parts.tokenizer->token_to_id(name)) parts.stop_token_ids.push_back(*id);
    }
    const std::string processor_path = util::join_path(dir, "preprocessor_config.json");
    if (util::file_exists(processor_path)) processor = QwenImageProcessorConfig::from_file(processor_path);
    const auto& vc = config.vision;
    if (processor.patch_size != vc.patch_size || processor.merge_size != vc.spatial_merge_size ||
        processor.temporal_patch_size != vc.temporal_patch_size) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: preprocessor_config.json patch/merge sizes disagree with config.json", dir));
    }
    if (!parts.tokenizer->token_to_id("<|image_pad|>") ||
        *parts.tokenizer->token_to_id("<|image_pad|>") != config.image_token_id) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: the tokenizer's <|image_pad|> is not config.json's image_token_id {}", dir,
                              config.image_token_id));
    }
  }
  return std::make_shared<const QwenVLModel>(config, weights, std::move(parts), processor);
}

namespace {
// transformers >= 4.52 saves "model.language_model.*" / "model.visual.*";
// earlier versions "model.*" / "visual.*".
bool nested_layout(const runtime::WeightStore& weights) {
  return weights.contains("model.language_model.embed_tokens.weight");
}
}  // namespace

QwenVLModel::QwenVLModel(QwenVLConfig config, const runtime::WeightStore& weights, Parts parts,
                         QwenImageProcessorConfig processor)
    : MultimodalLM(with_decoder(std::move(parts),
                                load_qwen2_decoder(config.text,
                                                   weights.scope(nested_layout(weights) ? "model.language_model" : "model"),
                                                   weights, "lm_head.weight"))),
      config_(std::move(config)),
      processor_(std::move(processor)) {
  const runtime::WeightStore visual = weights.scope(nested_layout(weights) ? "model.visual" : "visual");
  vision_ = config_.family == QwenVLFamily::Qwen2VL ? make_qwen2_vl_vision_tower(config_.vision, visual)
                                                    : make_qwen2_5_vl_vision_tower(config_.vision, visual);
}

at::Tensor QwenVLModel::encode_pixels(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                                      const CallContext* call, VisionTrace* trace) const {
  return vision_->forward(pixel_values, grids, call, trace);
}

EncodedImage QwenVLModel::encoded(const at::Tensor& features, const ImageGrid& grid) const {
  const std::int64_t merge = config_.vision.spatial_merge_size;
  EncodedImage image;
  image.features = features.to(decoder().dtype());
  image.grid_t = grid.t;
  image.grid_h = grid.h / merge;
  image.grid_w = grid.w / merge;
  return image;
}

EncodedImage QwenVLModel::encode_image(const Image& image, const CallContext* call) const {
  const ProcessedImage processed = qwen_preprocess_image(image, processor_);
  return encoded(encode_pixels(processed.pixel_values, {processed.grid}, call), processed.grid);
}

std::optional<ImageFootprint> QwenVLModel::image_footprint(const Image& image) const {
  const std::int64_t merge = processor_.merge_size, factor = processor_.patch_size * merge;
  std::int64_t height = image.height, width = image.width;
  if (processor_.do_resize) {
    const auto size = qwen_smart_resize(height, width, factor, processor_.min_pixels, processor_.max_pixels);
    height = size[0];
    width = size[1];
  }
  const std::int64_t patches = (height / processor_.patch_size) * (width / processor_.patch_size);
  ImageFootprint footprint;
  // [patches, C x T x P x P] float32, after a [3, H, W] float copy of the resized image.
  footprint.pixel_values = patches * config_.vision.patch_dim() + 3 * height * width;
  footprint.vision_tokens = patches;
  footprint.vision_hidden = config_.vision.hidden_size;
  footprint.vision_intermediate = config_.vision.intermediate_size;
  footprint.lm_tokens = patches / (merge * merge);
  return footprint;
}

PromptPositions QwenVLModel::positions(const std::vector<std::int64_t>& ids,
                                       const std::vector<const EncodedImage*>& images) const {
  if (std::find(ids.begin(), ids.end(), config_.video_token_id) != ids.end()) {
    throw Error(ErrorCode::Unsupported, "Qwen2-VL: video tokens in the prompt are not supported");
  }
  const std::vector<std::int64_t> starts = image_runs(ids, images);
  const auto length = static_cast<std::int64_t>(ids.size());
  at::Tensor positions = at::empty({3, 1, length}, at::kLong);
  auto pos = positions.accessor<std::int64_t, 3>();
  std::int64_t next = 0;  // first position of the next chunk (the last chunk's max + 1)
  std::size_t image = 0;
  for (std::int64_t i = 0; i < length;) {
    if (image == starts.size() || i < starts[image]) {
      for (int r = 0; r < 3; ++r) pos[r][0][i] = next;
      ++next;
      ++i;
      continue;
    }
    // Image tokens sit at (t, row, col) of their merged grid, after the text before them.
    const EncodedImage& g = *images[image++];
    const std::int64_t count = g.tokens();
    if (count != g.grid_t * g.grid_h * g.grid_w) {
      throw Error(ErrorCode::InvalidArgument, "Qwen2-VL: an image's features do not match its grid");
    }
    std::int64_t top = 0;
    for (std::int64_t k = 0; k < count; ++k) {
      const std::int64_t frame = k / (g.grid_h * g.grid_w), row = (k / g.grid_w) % g.grid_h, col = k % g.grid_w;
      // Qwen2.5-VL scales the frame index by seconds per frame, 0 for still images.
      const std::int64_t t = config_.family == QwenVLFamily::Qwen2VL ? frame : 0;
      pos[0][0][i + k] = next + t;
      pos[1][0][i + k] = next + row;
      pos[2][0][i + k] = next + col;
      top = std::max({top, t, row, col});
    }
    next += top + 1;
    i += count;
  }
  return PromptPositions{positions, next - length};
}

nlohmann::json qwen_vl_processor_config(const runtime::HfConfig& config) {
  const QwenVisionConfig vision = QwenVLConfig::from_config(config).vision;
  QwenImageProcessorConfig processor;
  processor.min_pixels = 3136;
  processor.max_pixels = 12845056;
  processor.patch_size = vision.patch_size;
  processor.temporal_patch_size = vision.temporal_patch_size;
  processor.merge_size = vision.spatial_merge_size;
  return processor.to_json();
}

std::vector<runtime::ParamSpec> qwen_vl_parameter_specs(const runtime::HfConfig& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  MultimodalLM::Parts parts;
  parts.model_dir = config.file();
  const QwenVLModel model(QwenVLConfig::from_config(config), recorder, std::move(parts), QwenImageProcessorConfig{});
  return recorder.recorded();
}

}  // namespace imgjudge::models
