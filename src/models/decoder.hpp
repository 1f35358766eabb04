// One decoder-only transformer for every language model family whose blocks are
//
//   x = x + o_proj(attention(rope(q_proj(norm1(x))), rope(k_proj(norm1(x))), v_proj(norm1(x))))
//   x = x + down_proj(act(gate_proj(norm2(x))) * up_proj(norm2(x)))
//
// with RMSNorm, a final RMSNorm and an LM head: Llama 2/3, Qwen2/2.5, Mistral,
// Yi, InternLM2 (modeling_llama.py, modeling_qwen2.py in transformers). A
// family file reads its config.json into a DecoderConfig and binds its
// weights, by their HF names, into DecoderWeights; attention, positions and
// caches are written once, here and in models/attention.hpp.
//
// Positions are [R, B, T] int64: R = 1 for 1-D RoPE, R = 3 for M-RoPE (rows
// t/h/w, Qwen2-VL). A 1-D model reads row 0 of a 3-row input.
//
// Forward modes, all equal to the plain no-cache forward of the whole sequence
// (tests/parity/test_decoder.cpp checks each on a 4-layer GQA model):
// - no cache; a fresh or growing own cache (prefill, one-token decode);
// - a *shared prefix*: a batch-1 cache attended by every row without being
//   copied (queries against the prefix keys are one GEMM with the batch folded
//   into the query rows, joined to the own part by one softmax);
// - packed rows (`segments`): many short continuations of one prefix as one
//   sequence with no padding;
// - padded rows (`key_padding`): a batch of rows whose own caches hold
//   different lengths, right-padded, each row decoding at its own positions;
// - read positions: the last layer computes only the positions read;
// - cache only: the last layer stops after its keys and values.
// A call's past length (the own cache before the call) is fixed once, before
// the first layer: every layer of the call sees the same causal mask.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "runtime/linear.hpp"

namespace imgjudge::runtime {
class HfConfig;
class WeightStore;
}  // namespace imgjudge::runtime

namespace imgjudge::models {

/// Rotary frequencies (transformers modeling_rope_utils.py).
struct RopeConfig {
  enum class Scaling { None, Linear, Llama3, Dynamic };
  double theta = 10000.0;
  Scaling scaling = Scaling::None;
  double factor = 1.0;                      ///< linear / llama3 / dynamic
  /// Linear: divide the positions by `factor` (InternLM2's
  /// LinearScalingRotaryEmbedding) instead of the frequencies (transformers);
  /// the angles differ in the last bit, which long positions amplify.
  bool scale_positions = false;
  double low_freq_factor = 1.0;             ///< llama3
  double high_freq_factor = 4.0;            ///< llama3
  std::int64_t original_max_positions = 0;  ///< llama3 / dynamic
  /// M-RoPE sections (t, h, w) in rotary pairs, summing to head_dim / 2; empty = 1-D RoPE.
  std::vector<std::int64_t> mrope_section;

  /// Reads "rope_theta" and "rope_scaling" of a (text) config. `head_dim` checks
  /// the M-RoPE sections. Error(Unsupported) for scalings not implemented
  /// (yarn, longrope: they change every logit, so they are never ignored).
  static RopeConfig from_config(const runtime::HfConfig& config, std::int64_t head_dim,
                                std::int64_t max_position_embeddings, double default_theta);
};

/// A text model class's defaults: transformers' config classes, and so
/// save_pretrained, leave out every value equal to them (a LLaVA config's
/// text_config often holds only vocab_size and max_position_embeddings).
struct DecoderDefaults {
  std::int64_t vocab_size = 32000;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 11008;
  std::int64_t num_layers = 32;
  std::int64_t num_heads = 32;
  std::int64_t num_kv_heads = 0;  ///< 0: num_attention_heads
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  /// Mistral's sliding window when the key is absent (an explicit null means none); 0 = none.
  std::int64_t sliding_window = 0;
};

struct DecoderConfig {
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_layers = 0;
  std::int64_t num_heads = 0;
  std::int64_t num_kv_heads = 0;
  std::int64_t head_dim = 0;  ///< hidden_size / num_heads unless config.json says otherwise.
  double rms_norm_eps = 1e-6;
  std::string hidden_act = "silu";
  bool tie_word_embeddings = false;
  RopeConfig rope;
  /// Per layer: attend only to the last `window` positions (0 = full causal).
  /// Empty = no layer has a window.
  std::vector<std::int64_t> sliding_window;

  /// Reads the settings every Llama-like config.json spells the same way
  /// (vocab_size, hidden_size, intermediate_size, num_hidden_layers,
  /// num_attention_heads, num_key_value_heads, head_dim, rms_norm_eps,
  /// hidden_act, tie_word_embeddings, rope_theta, rope_scaling, sliding
  /// windows), absent keys taking the text model class's `defaults`, and
  /// checks them (Error(InvalidModel) naming the file and key). `config` is
  /// the text config (see HfConfig::section_with_fallback).
  static DecoderConfig from_config(const runtime::HfConfig& config, const DecoderDefaults& defaults);
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
  at::Tensor position_ids;  ///< [R, B, T] int64, R = 1 (1-D RoPE) or 3 (M-RoPE).
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
  /// [B, past + T] bool, true where a row's own key is padding: hidden from
  /// every query of that row. Rows of different lengths decode as one batch
  /// this way (their caches right-padded to one length, each row's positions
  /// its own). Not with packed rows or a sliding window. Undefined = none.
  at::Tensor key_padding;
  /// Only fill `cache`: the last layer stops after its keys and values, and
  /// last_hidden stays undefined (a prefix whose outputs are never read).
  bool cache_only = false;
  /// Checked between layers (deadline / cancellation). May be null.
  const CallContext* call = nullptr;
};

struct DecoderOutput {
  at::Tensor last_hidden;                 ///< [B, T, hidden] after the final norm ([1, N, hidden] with read_positions).
  std::vector<at::Tensor> hidden_states;  ///< num_layers + 1 entries when collected.
};

struct DecoderLayerWeights {
  at::Tensor input_norm, post_attention_norm;  ///< [hidden]
  runtime::Linear q_proj, k_proj, v_proj, o_proj;
  runtime::Linear gate_proj, up_proj, down_proj;
};

struct DecoderWeights {
  at::Tensor embed_tokens;  ///< [vocab, hidden]
  std::vector<DecoderLayerWeights> layers;
  at::Tensor final_norm;  ///< [hidden]
  at::Tensor lm_head;     ///< [vocab, hidden]; the embedding when tied.
};

/// Which projections of the Llama layout carry biases.
struct LlamaLayoutBiases {
  bool qkv = false;  ///< Qwen2: true; Llama: attention_bias.
  bool o = false;    ///< Llama: attention_bias.
  bool mlp = false;  ///< Llama: mlp_bias.
};

/// Binds the weights named as Llama and Qwen2 name them: `transformer` is
/// scoped to the transformer ("model", "language_model.model", ...):
/// embed_tokens, layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj,
/// post_attention_layernorm, mlp.{gate,up,down}_proj}, norm; `lm_head` is
/// the head's full name in `root` (unused when tied).
DecoderWeights bind_llama_layout(const DecoderConfig& config, const runtime::WeightStore& transformer,
                                 const runtime::WeightStore& root, const std::string& lm_head,
                                 const LlamaLayoutBiases& biases);

class Decoder {
 public:
  /// `dtype` is the compute dtype (the weights' floating dtype).
  Decoder(DecoderConfig config, DecoderWeights weights, at::ScalarType dtype, runtime::LinearFormat linear_format);

  const DecoderConfig& config() const { return config_; }
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
  /// cos, sin [B, T, head_dim] in the compute dtype.
  std::pair<at::Tensor, at::Tensor> rotary(const at::Tensor& position_ids) const;
  void check(const DecoderInput& input) const;

  DecoderConfig config_;
  DecoderWeights weights_;
  at::ScalarType dtype_;
  runtime::Linear lm_head_linear_;  // the full head in the linear format (decoding)
  std::function<at::Tensor(const at::Tensor&)> activation_;  // the MLP's hidden_act
  at::Tensor inv_freq_;             // [head_dim / 2] float32
};

/// rotate_half(x) = cat(-x2, x1) over the last dim.
at::Tensor rotate_half(const at::Tensor& x);

}  // namespace imgjudge::models
