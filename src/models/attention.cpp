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


// Scratch of one blocked attention call, reused by every block and head:
// fresh multi-megabyte tensors per block cost page faults (the first touch of
// memory the allocator gave back to the system) that can exceed the
// arithmetic (on a 2-core VM a [448, 3060] bfloat16 score block: 10.6 ms
// allocated per call, 0.6 ms written into this scratch).
class ScoreBlocks {
 public:
  ScoreBlocks(std::int64_t max_rows, std::int64_t columns, const at::TensorOptions& compute)
      : scores_(at::empty({max_rows, columns}, compute)),
        float_(compute.dtype() == at::kFloat ? scores_ : at::empty({max_rows, columns}, compute.dtype(at::kFloat))),
        probs_(compute.dtype() == at::kFloat ? scores_ : at::empty({max_rows, columns}, compute)) {}

  /// [rows, columns] in the compute dtype, for at::mm_out to fill (column slices too).
  at::Tensor scores(std::int64_t rows) const { return scores_.narrow(0, 0, rows); }

  /// softmax(scores(rows) * scale + mask) over the last dimension, the scale
  /// applied in the compute dtype and the softmax in float32 (HF eager), as
  /// [rows, columns] in the compute dtype. `mask` [rows / groups, columns]
  /// (float32, additive) applies to each of the `groups` consecutive row
  /// groups; undefined for none.
  at::Tensor probabilities(std::int64_t rows, double scale, const at::Tensor& mask, std::int64_t groups) const {
    at::Tensor scores = scores_.narrow(0, 0, rows).mul_(scale);
    at::Tensor values = float_.narrow(0, 0, rows);
    if (!values.is_same(scores)) values.copy_(scores);
    if (mask.defined()) values.view({groups, rows / groups, values.size(1)}).add_(mask);
    at::_softmax_out(values, values, -1, /*half_to_float=*/false);  // row by row: in place is safe
    at::Tensor probs = probs_.narrow(0, 0, rows);
    if (!probs.is_same(values)) probs.copy_(values);
    return probs;
  }

 private:
  at::Tensor scores_, float_, probs_;
};

}  // namespace

namespace {
// Elements of one block of decoder scores [G x rows, P + S]: 4M (16 MiB in
// float32) keep a block near the caches however long the prompt (a
// LLaVA-OneVision image is ~7000 tokens: one full score matrix per layer
// would be gigabytes).
constexpr std::int64_t kDecoderScoreBlock = std::int64_t{4} << 20;
}  // namespace

at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                             const at::Tensor& prefix_keys, const at::Tensor& prefix_values,
                             const AttentionSpan& span) {
  const std::int64_t batch = q.size(0), heads = q.size(1), queries = q.size(2), dim = q.size(3);
  const std::int64_t kv_heads = keys.size(1), groups = heads / kv_heads;
  const std::int64_t own = keys.size(2);  // past + T
  const bool has_prefix = prefix_keys.defined() && prefix_keys.size(2) > 0;
  const std::int64_t plen = has_prefix ? prefix_keys.size(2) : 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  const at::Tensor query_index =
      span.query_index.defined() ? span.query_index : at::arange(own - span.past, at::kLong);  // [Tq]
  const auto float_options = q.options().dtype(at::kFloat);

  // Per (row, KV head, block of query rows), plain 2-D GEMMs: the G query
  // heads of a KV head (the heads are KV-major, as HF's repeat_kv) meet its
  // keys as one [G x rows, D] x [D, P + S] product, without repeating keys;
  // libtorch runs 2-D products near GEMM speed, batched ones far from it.
  at::Tensor out = at::empty({batch, queries, heads, dim}, q.options());
  const std::int64_t block = std::clamp<std::int64_t>(kDecoderScoreBlock / (groups * (plen + own)), 1, queries);
  const ScoreBlocks blocks(groups * block, plen + own, q.options());
  for (std::int64_t row = 0; row < queries; row += block) {
    const std::int64_t rows = std::min(block, queries - row);
    const at::Tensor block_index = query_index.narrow(0, row, rows);
    // [rows, P + S] additive mask: the prefix is visible (but for a sliding
    // window), the own keys causal and within their packed row.
    at::Tensor hidden = hidden_own_keys(span, block_index, own);  // [rows, S]
    if (has_prefix) {
      at::Tensor prefix_hidden = at::zeros({rows, plen}, at::kBool);
      if (span.window > 0) {
        // Prefix key p (absolute p) is out of the window of a query at absolute P + past + t.
        const at::Tensor query_abs = (block_index + span.prefix_length + span.past).view({rows, 1});
        prefix_hidden = at::arange(plen, at::kLong).view({1, plen}) <= query_abs - span.window;
      }
      hidden = at::cat({prefix_hidden, hidden}, 1);
    }
    const at::Tensor shared_mask = additive(hidden, float_options);  // [rows, P+S], the same for each of the G heads
    for (std::int64_t b = 0; b < batch; ++b) {
      // A padded row: its padding keys hidden too (after the prefix part, which has none).
      const at::Tensor mask =
          span.key_padding.defined()
              ? additive(hidden.logical_or(at::cat({at::zeros({plen}, at::kBool), span.key_padding[b]}).view({1, plen + own})),
                         float_options)
              : shared_mask;
      for (std::int64_t h = 0; h < kv_heads; ++h) {
        const at::Tensor qg = q[b].narrow(0, h * groups, groups).narrow(1, row, rows).reshape({groups * rows, dim});
        at::Tensor scores = blocks.scores(groups * rows);  // [G*rows, P+S]: prefix keys, then own keys
        if (has_prefix) {
          at::Tensor prefix_part = scores.narrow(1, 0, plen);
          at::mm_out(prefix_part, qg, prefix_keys[0][h].t());
        }
        at::Tensor own_part = scores.narrow(1, plen, own);
        at::mm_out(own_part, qg, keys[b][h].t());
        const at::Tensor probs = blocks.probabilities(groups * rows, scale, mask, groups);
        at::Tensor attended = at::mm(probs.narrow(1, plen, own), values[b][h]);  // [G*rows, D]
        if (has_prefix) attended.add_(at::mm(probs.narrow(1, 0, plen), prefix_values[0][h]));
        out[b].narrow(0, row, rows).narrow(1, h * groups, groups).copy_(attended.view({groups, rows, dim}).transpose(0, 1));
      }
    }
  }
  return out.view({batch, queries, heads * dim});
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
    const ScoreBlocks blocks(block, length, q.options());
    for (std::int64_t h = 0; h < heads; ++h) {
      const at::Tensor keys_t = k[h].narrow(0, begin, length).t();  // [D, L]
      const at::Tensor values = v[h].narrow(0, begin, length);                  // [L, D]
      for (std::int64_t row = 0; row < length; row += block) {
        const std::int64_t rows = std::min(block, length - row);
        at::Tensor scores = blocks.scores(rows);  // [rows, L]
        at::mm_out(scores, q[h].narrow(0, begin + row, rows), keys_t);
        const at::Tensor probs = blocks.probabilities(rows, scale, at::Tensor(), 1);
        out.narrow(0, begin + row, rows).select(1, h).copy_(at::mm(probs, values));  // [rows, D]
      }
    }
  }
  return out;
}

}  // namespace imgjudge::models
