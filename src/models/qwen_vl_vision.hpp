// Internal pieces shared by the Qwen2-VL and Qwen2.5-VL vision towers
// (defined in qwen2_vl.cpp). Not for use outside src/models.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "models/qwen2_vl.hpp"
#include "runtime/linear.hpp"

namespace imgjudge::models::qwen_vl_detail {

/// Conv3d patch embedding with stride == kernel over pre-cut patches: a matmul
/// of pixel_values [N, C*T*P*P] (C,T,H,W order) with the kernel flattened the
/// same way. `kernel` [embed, C, T, P, P] -> [N, embed] in the kernel's dtype.
at::Tensor patch_embed(const at::Tensor& pixel_values, const at::Tensor& kernel);

/// 2-D rotary angles of every patch in processor order (HF rot_pos_emb):
/// [N, head_dim / 2] float32, first half from the row index, second from the column.
at::Tensor vision_rotary_angles(const std::vector<ImageGrid>& grids, std::int64_t head_dim,
                                std::int64_t merge_size);

/// Attention weights of one ViT block (qkv fused, with bias; proj with bias).
struct VisionAttentionWeights {
  runtime::Linear qkv, proj;
};

/// Bidirectional multi-head attention restricted to segments: token i attends
/// to j only when both lie in [bounds[s], bounds[s+1]) for some s (HF's
/// cu_seqlens block mask). x [N, dim]; angles [N, head_dim / 2] (rotary applied
/// in float32 as HF does). Returns [N, dim].
at::Tensor vision_attention(const at::Tensor& x, const VisionAttentionWeights& weights, std::int64_t num_heads,
                            const at::Tensor& angles, const std::vector<std::int64_t>& bounds);

/// Patch boundaries of whole frames: cumulative h*w per frame, starting at 0.
std::vector<std::int64_t> frame_bounds(const std::vector<ImageGrid>& grids);

/// Validates pixel_values against the grids (Error(InvalidArgument)).
void check_pixel_values(const at::Tensor& pixel_values, const std::vector<ImageGrid>& grids,
                        const QwenVisionConfig& config);

}  // namespace imgjudge::models::qwen_vl_detail
