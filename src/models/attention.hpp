// Causal grouped-query attention over an optional shared prefix, for every
// decoder family (models/decoder.hpp). Included by torch TUs.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace imgjudge::models {

/// Which keys the queries of one attention call see. Positions are counted in
/// three parts: the shared prefix [0, P), the own cache before this call
/// [P, P + past), and this call's T tokens [P + past, P + past + T).
struct AttentionSpan {
  std::int64_t prefix_length = 0;  ///< P (0 without a shared prefix).
  std::int64_t past = 0;           ///< Own keys before this call; the same for every layer of a call.
  /// [Tq] int64: which of this call's tokens ask (undefined = all T, in order).
  at::Tensor query_index;
  /// [T] int64: packed rows; a token sees only the tokens of its own row among
  /// this call's (every row sees the prefix). Needs past == 0. Undefined = one row.
  at::Tensor segments;
  /// [B, past + T] bool: own keys hidden from every query of their row (padding
  /// of rows of different lengths). Undefined = none.
  at::Tensor key_padding;
  /// Sliding window: a query sees only keys less than `window` positions back
  /// (HF: key j is hidden when j <= i - window). 0 = none.
  std::int64_t window = 0;
};

/// softmax(q k^T / sqrt(D) + mask) v over [prefix keys ; own keys], the
/// softmax in float32 as HF's eager attention.
///   q            [B, H, Tq, D] (rotary applied)
///   keys, values [B, KV, past + T, D]: the own cache including this call's tokens
///   prefix_keys, prefix_values [1, KV, P, D] or undefined
/// H is a multiple of KV and the query heads are KV-major (head h reads KV head
/// h / (H / KV)), as HF's repeat_kv. Returns [B, Tq, H * D].
at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                             const at::Tensor& prefix_keys, const at::Tensor& prefix_values,
                             const AttentionSpan& span);

/// Bidirectional attention within segments, for vision towers: token i sees
/// token j only when both lie in [bounds[s], bounds[s + 1]) for some s (HF's
/// cu_seqlens block mask; a batch of B images of L tokens is bounds
/// 0, L, ..., B*L). q, k, v [H, N, D]; softmax(q k^T * scale) v with the
/// softmax in float32. Returns [N, H, D].
///
/// Runs per (segment, head, block of query rows) as plain 2-D GEMMs: on CPU
/// these reach 1.5-10x the speed of one batched product over all heads
/// (which libtorch runs far from GEMM speed, in bfloat16 most of all), and a
/// block's scores [rows, segment] stay in cache instead of streaming 1 GiB of
/// them through memory per layer (896x896 Qwen2-VL: 4096 patches x 4096 keys
/// x 16 heads).
at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::vector<std::int64_t>& bounds, double scale);

}  // namespace imgjudge::models
