// The Qwen2.5-VL vision tower (transformers 4.50.3 modeling_qwen2_5_vl.py,
// Qwen2_5_VisionTransformerPretrainedModel). Differences from Qwen2-VL:
//  * blocks: x + attn(RMSNorm1(x)), x + mlp(RMSNorm2(x)) with a SwiGLU MLP
//    (down(act(gate(x)) * up(x)), all with biases);
//  * window attention: merged tokens are permuted into window order (windows of
//    window_size px, row-major per image, tokens row-major inside a window);
//    blocks in fullatt_block_indexes attend over each whole frame, the others
//    only inside a window; the merger output is permuted back;
//  * merger: RMSNorm ln_q (no bias), then Linear-GELU-Linear.
// The rest (patch embed, 2-D rotary) is Qwen2-VL's, shared via qwen_vl_vision.hpp.
#include <ATen/ATen.h>

#include <algorithm>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "models/qwen2_vl.hpp"
#include "models/qwen_vl_vision.hpp"
#include "runtime/nn.hpp"

namespace imgjudge::models {
namespace {

using namespace qwen_vl_detail;

constexpr double kVisionNormEps = 1e-6;

struct WindowLayout {
  at::Tensor index;                   // [merged tokens] window order -> processor-order merged token
  std::vector<std::int64_t> bounds;   // window boundaries in patches, empty windows dropped
};

// HF get_window_index: each frame's merged grid (h/m x w/m) is padded up to
// whole windows of `side` merged tokens; windows are read row-major and
// the padding dropped. HF pads a full extra window when the grid is already a
// multiple of `side`; such windows are empty and vanish with the duplicates.
WindowLayout window_layout(const std::vector<ImageGrid>& grids, std::int64_t side, std::int64_t merge) {
  WindowLayout layout;
  layout.bounds.push_back(0);
  std::vector<std::int64_t> order;
  const std::int64_t unit = merge * merge;  // patches per merged token
  std::int64_t offset = 0;
  for (const ImageGrid& g : grids) {
    const std::int64_t gh = g.h / merge, gw = g.w / merge;
    const std::int64_t windows_h = (gh + side - 1) / side, windows_w = (gw + side - 1) / side;
    for (std::int64_t f = 0; f < g.t; ++f) {
      for (std::int64_t wy = 0; wy < windows_h; ++wy) {
        for (std::int64_t wx = 0; wx < windows_w; ++wx) {
          std::int64_t count = 0;
          for (std::int64_t y = wy * side; y < std::min(gh, (wy + 1) * side); ++y) {
            for (std::int64_t x = wx * side; x < std::min(gw, (wx + 1) * side); ++x) {
              order.push_back(offset + f * gh * gw + y * gw + x);
              ++count;
            }
          }
          layout.bounds.push_back(layout.bounds.back() + count * unit);
        }
      }
    }
    offset += g.t * gh * gw;
  }
  layout.index = at::tensor(order, at::kLong);
  return layout;
}

// Permutes rows grouped by merged token: [N, ...] viewed as [N/unit, unit, ...].
at::Tensor permute_merged(const at::Tensor& x, const at::Tensor& index, std::int64_t unit) {
  std::vector<std::int64_t> grouped{x.size(0) / unit, unit};
  for (std::int64_t d = 1; d < x.dim(); ++d) grouped.push_back(x.size(d));
  return x.reshape(grouped).index_select(0, index).reshape(x.sizes());
}

class Qwen25VLVisionTower final : public QwenVisionTower {
 public:
  Qwen25VLVisionTower(const QwenVisionConfig& config, const runtime::WeightStore& weights)
      : config_(config), act_(runtime::nn::activation(config.hidden_act)) {
    const std::int64_t d = config.hidden_size, mlp = config.intermediate_size;
    if (config.window_size % (config.spatial_merge_size * config.patch_size) != 0) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("vision window_size {} is not a multiple of patch_size x spatial_merge_size",
                              config.window_size));
    }
    for (std::int64_t index : config.fullatt_block_indexes) {
      if (index < 0 || index >= config.depth) {
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("fullatt_block_indexes entry {} is outside 0..{}", index, config.depth - 1));
      }
    }
    kernel_ = weights.get("patch_embed.proj.weight",
                          {d, config.in_channels, config.temporal_patch_size, config.patch_size, config.patch_size});
    for (std::int64_t i = 0; i < config.depth; ++i) {
      const auto b = weights.scope(fmt::format("blocks.{}", i));
      blocks_.push_back(Block{b.get("norm1.weight", {d}), b.get("norm2.weight", {d}),
                              {b.linear("attn.qkv", 3 * d, d, true), b.linear("attn.proj", d, d, true)},
                              b.linear("mlp.gate_proj", mlp, d, true), b.linear("mlp.up_proj", mlp, d, true),
                              b.linear("mlp.down_proj", d, mlp, true),
                              std::count(config.fullatt_block_indexes.begin(), config.fullatt_block_indexes.end(),
                                         i) > 0});
    }
    const std::int64_t merged = d * config.spatial_merge_size * config.spatial_merge_size;
    ln_q_weight_ = weights.get("merger.ln_q.weight", {d});
    merger_fc1_ = weights.linear("merger.mlp.0", merged, merged, true);
    merger_fc2_ = weights.linear("merger.mlp.2", config.out_hidden_size, merged, true);
  }

  at::Tensor forward(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids, const CallContext* call,
                     VisionTrace* trace) const override {
    check_pixel_values(pixel_values, grids, config_);
    const std::int64_t merge = config_.spatial_merge_size, unit = merge * merge;
    const WindowLayout windows =
        window_layout(grids, config_.window_size / merge / config_.patch_size, merge);
    const at::Tensor reverse = at::argsort(windows.index);
    // Everything below runs in window order; whole frames stay contiguous
    // under the permutation, so frame bounds still delimit full attention.
    at::Tensor x = permute_merged(patch_embed(pixel_values, kernel_), windows.index, unit);  // [N, d]
    const at::Tensor angles = permute_merged(
        vision_rotary_angles(grids, config_.hidden_size / config_.num_heads, merge), windows.index, unit);
    const std::vector<std::int64_t> frames = frame_bounds(grids);
    if (trace != nullptr) {
      trace->window_index = windows.index;
      trace->cu_window_seqlens = windows.bounds;
      trace->hidden_states.push_back(permute_merged(x, reverse, unit));
    }
    for (const Block& b : blocks_) {
      if (call != nullptr) call->check();
      x = x + vision_attention(runtime::nn::rms_norm(x, b.norm1_weight, kVisionNormEps), b.attn, config_.num_heads,
                               angles, b.full_attention ? frames : windows.bounds);
      at::Tensor h = runtime::nn::rms_norm(x, b.norm2_weight, kVisionNormEps);
      x = x + b.down_proj(act_(b.gate_proj(h)) * b.up_proj(h));
      if (trace != nullptr) trace->hidden_states.push_back(permute_merged(x, reverse, unit));
    }
    at::Tensor m = runtime::nn::rms_norm(x, ln_q_weight_, kVisionNormEps).reshape({-1, config_.hidden_size * unit});
    m = merger_fc2_(at::gelu(merger_fc1_(m)));
    return m.index_select(0, reverse);
  }

 private:
  struct Block {
    at::Tensor norm1_weight, norm2_weight;
    VisionAttentionWeights attn;
    runtime::Linear gate_proj, up_proj, down_proj;
    bool full_attention = false;
  };
  QwenVisionConfig config_;
  runtime::nn::Activation act_;
  at::Tensor kernel_;
  std::vector<Block> blocks_;
  at::Tensor ln_q_weight_;
  runtime::Linear merger_fc1_, merger_fc2_;  // merger.mlp.0 and merger.mlp.2 (GELU between)
};

}  // namespace

std::unique_ptr<QwenVisionTower> make_qwen2_5_vl_vision_tower(const QwenVisionConfig& config,
                                                              const runtime::WeightStore& weights) {
  return std::make_unique<Qwen25VLVisionTower>(config, weights);
}

}  // namespace imgjudge::models
