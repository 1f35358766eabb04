#include "models/attention.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace imgjudge::models {
namespace {

// [Tq, own] true where the query may not see the own key: later positions,
// other packed rows, keys beyond the sliding window.
at::Tensor hidden_own_keys(const AttentionSpan& span, const at::Tensor& query_index, std::int64_t own) {
  const std::int64_t queries = query_index.size(0);
  const at::Tensor query_pos = (query_index + span.past).view({queries, 1});  // in own positions
  const at::Tensor key_pos = at::arange(own, at::kLong).view({1, own});
  at::Tensor hidden = key_pos > query_pos;
  if (span.segments.defined()) {
    // past == 0 here, so own key j is this call's token j.
    hidden = hidden.logical_or(span.segments.index_select(0, query_index).view({queries, 1}) !=
                               span.segments.view({1, own}));
  }
  if (span.window > 0) hidden = hidden.logical_or(key_pos <= query_pos - span.window);
  return hidden;
}

at::Tensor additive(const at::Tensor& hidden, const at::TensorOptions& options) {
  return at::zeros(hidden.sizes(), options).masked_fill(hidden, -std::numeric_limits<double>::infinity());
}

}  // namespace

at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                             const at::Tensor& prefix_keys, const at::Tensor& prefix_values,
                             const AttentionSpan& span) {
  const std::int64_t batch = q.size(0), heads = q.size(1), queries = q.size(2), dim = q.size(3);
  const std::int64_t kv_heads = keys.size(1), groups = heads / kv_heads;
  const std::int64_t own = keys.size(2);  // past + T
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  const at::Tensor query_index =
      span.query_index.defined() ? span.query_index : at::arange(own - span.past, at::kLong);  // [Tq]

  // Grouped queries: the H heads are KV-major, so q viewed as [B, KV, G*Tq, D]
  // meets its KV head without repeating keys.
  const at::Tensor qg = q.reshape({batch, kv_heads, groups * queries, dim});
  at::Tensor own_scores = at::matmul(qg, keys.transpose(2, 3)) * scale;  // [B, KV, G*Tq, S]
  const at::Tensor own_mask = additive(hidden_own_keys(span, query_index, own), own_scores.options());  // [Tq, S]
  own_scores = (own_scores.view({batch, kv_heads, groups, queries, own}) + own_mask)
                   .view({batch, kv_heads, groups * queries, own});

  at::Tensor out;  // [B, KV, G*Tq, D]
  if (!prefix_keys.defined() || prefix_keys.size(2) == 0) {
    const at::Tensor probs = at::softmax(own_scores, -1, at::kFloat).to(values.scalar_type());
    out = at::matmul(probs, values);
  } else {
    // Shared prefix [1, KV, P, D]: fold the batch into the query rows so one
    // GEMM per KV head reads the prefix once: [KV, B*G*Tq, D] x [KV, D, P].
    const std::int64_t plen = prefix_keys.size(2);
    const at::Tensor q_rows = qg.transpose(0, 1).reshape({kv_heads, batch * groups * queries, dim});
    at::Tensor prefix_scores = at::matmul(q_rows, prefix_keys[0].transpose(1, 2)) * scale;  // [KV, B*G*Tq, P]
    prefix_scores = prefix_scores.view({kv_heads, batch, groups * queries, plen}).transpose(0, 1);
    if (span.window > 0) {
      // Prefix key p (absolute p) is out of the window of a query at absolute P + past + t.
      const at::Tensor query_abs = (query_index + span.prefix_length + span.past).view({queries, 1});
      const at::Tensor hidden = at::arange(plen, at::kLong).view({1, plen}) <= query_abs - span.window;  // [Tq, P]
      prefix_scores = (prefix_scores.reshape({batch, kv_heads, groups, queries, plen}) +
                       additive(hidden, prefix_scores.options()))
                          .view({batch, kv_heads, groups * queries, plen});
    }
    // One softmax over [prefix keys ; own keys].
    const at::Tensor probs =
        at::softmax(at::cat({prefix_scores, own_scores}, -1), -1, at::kFloat).to(values.scalar_type());
    const at::Tensor prefix_probs = probs.narrow(-1, 0, plen);  // [B, KV, G*Tq, P]
    const at::Tensor own_probs = probs.narrow(-1, plen, own);   // [B, KV, G*Tq, S]
    const at::Tensor out_prefix =
        at::matmul(prefix_probs.transpose(0, 1).reshape({kv_heads, batch * groups * queries, plen}), prefix_values[0])
            .view({kv_heads, batch, groups * queries, dim})
            .transpose(0, 1);
    out = out_prefix + at::matmul(own_probs, values);
  }
  // [B, KV, G*Tq, D] = [B, H, Tq, D] -> [B, Tq, H*D]
  return out.reshape({batch, heads, queries, dim}).transpose(1, 2).reshape({batch, queries, heads * dim});
}

namespace {
// Elements of one block of scores: 2M float32 (8 MiB) keep a block near the caches.
constexpr std::int64_t kScoreBlock = std::int64_t{2} << 20;
// Segments up to this many tokens attend with one batched product over all
// heads: per-head calls would be mostly overhead (Qwen2.5-VL's 64-patch windows).
constexpr std::int64_t kSmallSegment = 256;
}  // namespace

at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const std::vector<std::int64_t>& bounds, double scale) {
  const std::int64_t heads = q.size(0), tokens = q.size(1), dim = q.size(2);
  at::Tensor out = at::empty({tokens, heads, dim}, q.options());  // written block by block
  for (std::size_t s = 0; s + 1 < bounds.size(); ++s) {
    const std::int64_t begin = bounds[s], length = bounds[s + 1] - bounds[s];
    if (length == 0) continue;
    if (length <= kSmallSegment) {
      at::Tensor scores = at::matmul(q.narrow(1, begin, length), k.narrow(1, begin, length).transpose(1, 2)).mul_(scale);
      const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(v.scalar_type());
      out.narrow(0, begin, length).copy_(at::matmul(probs, v.narrow(1, begin, length)).transpose(0, 1));  // [L, H, D]
      continue;
    }
    const std::int64_t block = std::clamp<std::int64_t>(kScoreBlock / length, 64, length);
    for (std::int64_t h = 0; h < heads; ++h) {
      const at::Tensor keys_t = k[h].narrow(0, begin, length).t();  // [D, L]
      const at::Tensor values = v[h].narrow(0, begin, length);                  // [L, D]
      for (std::int64_t row = 0; row < length; row += block) {
        const std::int64_t rows = std::min(block, length - row);
        at::Tensor scores = at::mm(q[h].narrow(0, begin + row, rows), keys_t).mul_(scale);  // [rows, L]
        const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(values.scalar_type());
        out.narrow(0, begin + row, rows).select(1, h).copy_(at::mm(probs, values));  // [rows, D]
      }
    }
  }
  return out;
}

}  // namespace imgjudge::models
