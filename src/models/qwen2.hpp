// The Qwen2 decoder-only transformer (Qwen2, Qwen2.5, and the language model of
// Qwen2-VL / Qwen2.5-VL), reusable by every family built on it.
//
// Architecture (transformers modeling_qwen2.py): token embedding, N layers of
//   x = x + o_proj(attn(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x))))
//   x = x + down(silu(gate(rms(x))) * up(rms(x)))
// then a final RMSNorm and the LM head (tied to the embedding or not). q/k/v have
// biases, o_proj none; grouped-query attention (num_key_value_heads <= heads).
// Position ids are always [3, B, T] (M-RoPE rows t/h/w); a plain text model
// without "mrope_section" uses row 0, which equals 1-D RoPE.
//
// KV caches. A *shared prefix* (batch 1) is attended by every row of a batch
// without being copied: the attention is computed in two parts (queries against
// the prefix keys as one GEMM with the batch folded into the query rows, and
// queries against each row's own keys) joined by one softmax over both. A row's
// *own* cache holds the keys after the prefix and grows as tokens are added.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imgjudge/backend.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

struct Qwen2Config {
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;  ///< hidden_size / num_heads unless config.json says otherwise.
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  /// M-RoPE sections (t, h, w) in rotary pairs, summing to head_dim / 2; empty = 1-D RoPE.
  std::vector<std::int64_t> mrope_section;

  /// Reads the text-model settings of a Qwen2 / Qwen2-VL / Qwen2.5-VL config.json.
  /// Newer VL configs nest them under "text_config"; top-level keys are the
  /// fallback. `where` names the file in error messages (Error(InvalidModel)).
  static Qwen2Config from_json(const nlohmann::json& config, const std::string& where);
};

/// Keys and values of a run of positions: per layer [B, kv_heads, S, head_dim].
struct KvCache {
  std::vector<at::Tensor> keys;
  std::vector<at::Tensor> values;
  std::int64_t length() const;  ///< S (0 when empty).
  std::int64_t batch() const;   ///< B (0 when empty).
  bool empty() const { return keys.empty(); }
};

struct DecoderInput {
  at::Tensor embeds;        ///< [B, T, hidden] in the compute dtype.
  at::Tensor position_ids;  ///< [3, B, T] int64 (rows equal for text tokens).
  /// Batch-1 cache attended by every row before its own keys (never copied). May be null.
  const KvCache* shared_prefix = nullptr;
  /// Each row's own past (batch B or empty); this call's keys are appended. May be null.
  KvCache* cache = nullptr;
  /// Keep the input of every layer and the final normed output (HF hidden_states).
  bool collect_hidden_states = false;
  /// Batch 1 only: packed rows. `segments` [T] int64 gives each token's row; a
  /// token attends to the shared prefix and to the earlier tokens of its own
  /// row, so many short continuations run as one sequence with no padding.
  /// Needs no own past (cache null or empty). Undefined = one row.
  at::Tensor segments;
  /// Batch 1 only: the token indices [N] int64 whose final hidden state is
  /// read. The last layer then runs its attention output and MLP only there
  /// (its keys and values still cover every token), and last_hidden is
  /// [1, N, hidden]. Undefined = every token.
  at::Tensor read_positions;
  /// Only fill `cache`: the last layer stops after its keys and values, and
  /// last_hidden stays undefined (a prefix whose outputs are never read).
  bool cache_only = false;
  /// Checked between layers (deadline / cancellation). May be null.
  const CallContext* call = nullptr;
};

struct DecoderOutput {
  at::Tensor last_hidden;                  ///< [B, T, hidden] after the final norm ([1, N, hidden] with read_positions).
  std::vector<at::Tensor> hidden_states;  ///< num_layers + 1 entries when collected.
};

class Qwen2Decoder {
 public:
  /// Binds the weights by HF name: `transformer` is the store scoped to the
  /// transformer ("model" for Qwen2 and transformers <= 4.51 VL checkpoints,
  /// "model.language_model" for newer ones), `lm_head_name` is relative to
  /// `root` (ignored when tied). The compute dtype is the store's.
  Qwen2Decoder(Qwen2Config config, const runtime::WeightStore& transformer,
               const runtime::WeightStore& root, const std::string& lm_head_name);

  const Qwen2Config& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }

  /// Token embeddings [B, T] int64 -> [B, T, hidden]. Error(InvalidArgument) for
  /// an id outside the vocabulary.
  at::Tensor embed(const at::Tensor& ids) const;

  DecoderOutput forward(const DecoderInput& input) const;

  /// LM head over [..., hidden] -> float32 [..., vocab].
  at::Tensor logits(const at::Tensor& hidden) const;

  /// LM head restricted to `token_ids` (int64 [N]): [..., hidden] -> float32
  /// [..., N], equal to logits(hidden).index_select(-1, token_ids) without the
  /// full-vocabulary product (scoring reads a handful of answer tokens out of
  /// ~152k, so this skips >99.9% of the LM head's work).
  at::Tensor logits_for(const at::Tensor& hidden, const at::Tensor& token_ids) const;

 private:
  struct Layer {
    at::Tensor input_norm, post_attention_norm;
    runtime::Linear q_proj, k_proj, v_proj, o_proj;
    runtime::Linear gate_proj, up_proj, down_proj;
  };
  /// cos, sin [B, T, head_dim] in the compute dtype.
  std::pair<at::Tensor, at::Tensor> rotary(const at::Tensor& position_ids) const;
  /// Which queries one attention call answers (see DecoderInput).
  struct QueryRows {
    at::Tensor segments;   ///< [T] row of each token, or undefined
    at::Tensor positions;  ///< [N] token indices answered, or undefined = all
    bool keys_only = false;
  };
  /// Self-attention of one layer over normed x [B, T, hidden]: appends this
  /// call's keys/values to `cache` and returns [B, T or N, hidden], or an
  /// undefined tensor when `rows.keys_only`.
  at::Tensor attention(const Layer& layer, std::size_t index, const at::Tensor& x,
                       const at::Tensor& cos, const at::Tensor& sin, const KvCache* prefix,
                       KvCache* cache, std::int64_t past, const QueryRows& rows) const;

  Qwen2Config config_;
  at::ScalarType dtype_;
  at::Tensor embed_tokens_;
  std::vector<Layer> layers_;
  at::Tensor final_norm_;
  at::Tensor lm_head_;             // dense rows: logits_for() reads a few of them
  runtime::Linear lm_head_linear_;  // the full head in the store's linear format (decoding)
  at::Tensor inv_freq_;  // [head_dim / 2] float32
};

/// rotate_half(x) = cat(-x2, x1) over the last dim.
at::Tensor rotate_half(const at::Tensor& x);

}  // namespace imgjudge::models
