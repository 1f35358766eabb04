#include "models/qwen2.hpp"

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "runtime/nn.hpp"

namespace imgjudge::models {
namespace {

using json = nlohmann::json;

// The text settings live in "text_config" in newer VL configs; older ones (and
// plain Qwen2) keep them at the top level. A key is looked up in the nested
// object first, then at the top level.
const json* find_key(const json& config, const char* key) {
  if (config.contains("text_config") && config["text_config"].is_object() &&
      config["text_config"].contains(key) && !config["text_config"][key].is_null()) {
    return &config["text_config"][key];
  }
  if (config.contains(key) && !config[key].is_null()) return &config[key];
  return nullptr;
}

std::int64_t positive_int(const json& config, const char* key, const std::string& where) {
  const json* value = find_key(config, key);
  if (value == nullptr || !value->is_number_integer() || value->get<std::int64_t>() <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: \"{}\" must be a positive integer", where, key));
  }
  return value->get<std::int64_t>();
}

double number_or(const json& config, const char* key, double fallback, const std::string& where) {
  const json* value = find_key(config, key);
  if (value == nullptr) return fallback;
  if (!value->is_number()) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: \"{}\" must be a number", where, key));
  }
  return value->get<double>();
}

}  // namespace

Qwen2Config Qwen2Config::from_json(const json& config, const std::string& where) {
  if (!config.is_object()) throw Error(ErrorCode::InvalidModel, where + ": not a JSON object");
  Qwen2Config c;
  c.vocab_size = positive_int(config, "vocab_size", where);
  c.hidden_size = positive_int(config, "hidden_size", where);
  c.intermediate_size = positive_int(config, "intermediate_size", where);
  c.num_layers = positive_int(config, "num_hidden_layers", where);
  c.num_heads = positive_int(config, "num_attention_heads", where);
  c.num_kv_heads = find_key(config, "num_key_value_heads") != nullptr
                       ? positive_int(config, "num_key_value_heads", where)
                       : c.num_heads;
  c.head_dim = find_key(config, "head_dim") != nullptr ? positive_int(config, "head_dim", where)
                                                       : c.hidden_size / c.num_heads;
  if (find_key(config, "head_dim") == nullptr && c.hidden_size % c.num_heads != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", where,
                            c.hidden_size, c.num_heads));
  }
  if (c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: num_attention_heads {} must be a multiple of num_key_value_heads {} "
                            "and head_dim {} even",
                            where, c.num_heads, c.num_kv_heads, c.head_dim));
  }
  c.rms_norm_eps = number_or(config, "rms_norm_eps", 1e-6, where);
  c.rope_theta = number_or(config, "rope_theta", 10000.0, where);
  if (const json* tie = find_key(config, "tie_word_embeddings")) {
    if (!tie->is_boolean()) {
      throw Error(ErrorCode::InvalidModel, where + ": \"tie_word_embeddings\" must be a boolean");
    }
    c.tie_word_embeddings = tie->get<bool>();
  }
  if (const json* scaling = find_key(config, "rope_scaling"); scaling && scaling->is_object()) {
    // "default" and "mrope" only change position ids, not frequencies; scaled
    // variants (yarn, dynamic, linear) would silently change every logit.
    std::string type = scaling->value("rope_type", scaling->value("type", std::string("default")));
    if (type != "default" && type != "mrope") {
      throw Error(ErrorCode::Unsupported,
                  fmt::format("{}: rope_scaling type \"{}\" is not supported", where, type));
    }
    if (scaling->contains("mrope_section")) {
      std::int64_t pairs = 0;
      for (const json& section : (*scaling)["mrope_section"]) {
        if (!section.is_number_integer() || section.get<std::int64_t>() < 0) {
          throw Error(ErrorCode::InvalidModel, where + ": mrope_section must hold non-negative integers");
        }
        c.mrope_section.push_back(section.get<std::int64_t>());
        pairs += c.mrope_section.back();
      }
      if (c.mrope_section.size() != 3 || pairs != c.head_dim / 2) {
        throw Error(ErrorCode::InvalidModel,
                    fmt::format("{}: mrope_section must be 3 numbers summing to head_dim/2 = {}",
                                where, c.head_dim / 2));
      }
    }
  }
  return c;
}

std::int64_t KvCache::length() const { return keys.empty() ? 0 : keys.front().size(2); }
std::int64_t KvCache::batch() const { return keys.empty() ? 0 : keys.front().size(0); }

at::Tensor rotate_half(const at::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

Qwen2Decoder::Qwen2Decoder(Qwen2Config config, const runtime::WeightStore& transformer,
                           const runtime::WeightStore& root, const std::string& lm_head_name)
    : config_(std::move(config)), dtype_(transformer.dtype()) {
  const auto weights = [&transformer](const std::string& name, at::IntArrayRef shape) {
    return transformer.get(name, shape);
  };
  const auto& c = config_;
  const std::int64_t q_dim = c.num_heads * c.head_dim;
  const std::int64_t kv_dim = c.num_kv_heads * c.head_dim;
  embed_tokens_ = weights("embed_tokens.weight", {c.vocab_size, c.hidden_size});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    Layer layer;
    layer.input_norm = weights(p + "input_layernorm.weight", {c.hidden_size});
    layer.post_attention_norm = weights(p + "post_attention_layernorm.weight", {c.hidden_size});
    layer.q_proj = transformer.linear(p + "self_attn.q_proj", q_dim, c.hidden_size, true);
    layer.k_proj = transformer.linear(p + "self_attn.k_proj", kv_dim, c.hidden_size, true);
    layer.v_proj = transformer.linear(p + "self_attn.v_proj", kv_dim, c.hidden_size, true);
    layer.o_proj = transformer.linear(p + "self_attn.o_proj", c.hidden_size, q_dim, false);
    layer.gate_proj = transformer.linear(p + "mlp.gate_proj", c.intermediate_size, c.hidden_size, false);
    layer.up_proj = transformer.linear(p + "mlp.up_proj", c.intermediate_size, c.hidden_size, false);
    layer.down_proj = transformer.linear(p + "mlp.down_proj", c.hidden_size, c.intermediate_size, false);
    layers_.push_back(std::move(layer));
  }
  final_norm_ = weights("norm.weight", {c.hidden_size});
  lm_head_ = c.tie_word_embeddings ? embed_tokens_
                                   : root.get(lm_head_name, {c.vocab_size, c.hidden_size});
  lm_head_linear_ = runtime::Linear(lm_head_, std::nullopt, transformer.linear_format());
  // inv_freq = 1 / theta^(2i / head_dim), computed in float32 as HF does.
  inv_freq_ = 1.0 / at::pow(c.rope_theta, at::arange(0, c.head_dim, 2, at::kLong).to(at::kFloat) /
                                              static_cast<double>(c.head_dim));
}

at::Tensor Qwen2Decoder::embed(const at::Tensor& ids) const {
  if (ids.numel() > 0) {
    const std::int64_t lo = ids.min().item<std::int64_t>();
    const std::int64_t hi = ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("token id {} is outside the vocabulary [0, {})", lo < 0 ? lo : hi,
                              config_.vocab_size));
    }
  }
  return at::embedding(embed_tokens_, ids);
}

std::pair<at::Tensor, at::Tensor> Qwen2Decoder::rotary(const at::Tensor& position_ids) const {
  // freqs [3, B, T, head_dim/2] = position * inv_freq (one float32 product, as HF's outer matmul).
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_;
  at::Tensor emb = at::cat({freqs, freqs}, -1);  // [3, B, T, head_dim]
  at::Tensor cos = emb.cos();
  at::Tensor sin = emb.sin();
  if (config_.mrope_section.empty()) {
    return {cos[0].to(dtype_), sin[0].to(dtype_)};
  }
  // M-RoPE: the rotary dims are split into sections [t, h, w, t, h, w]; section
  // i takes its angles from position row i % 3.
  std::vector<at::Tensor> cos_parts, sin_parts;
  std::int64_t offset = 0;
  for (int i = 0; i < 6; ++i) {
    const std::int64_t width = config_.mrope_section[static_cast<std::size_t>(i % 3)];
    cos_parts.push_back(cos[i % 3].narrow(-1, offset, width));
    sin_parts.push_back(sin[i % 3].narrow(-1, offset, width));
    offset += width;
  }
  return {at::cat(cos_parts, -1).to(dtype_), at::cat(sin_parts, -1).to(dtype_)};
}

at::Tensor Qwen2Decoder::attention(const Layer& layer, std::size_t index, const at::Tensor& x,
                                   const at::Tensor& cos, const at::Tensor& sin,
                                   const KvCache* prefix, KvCache* cache, std::int64_t past, const QueryRows& rows) const {
  const auto& c = config_;
  const std::int64_t batch = x.size(0), steps = x.size(1), dim = c.head_dim;
  const std::int64_t kv_heads = c.num_kv_heads, groups = c.num_heads / c.num_kv_heads;
  const at::Tensor cos_h = cos.unsqueeze(1), sin_h = sin.unsqueeze(1);  // [B, 1, T, D]
  // k/v [B, KV, T, D] for every token: later queries (or calls) read them.
  at::Tensor k = layer.k_proj(x).view({batch, steps, kv_heads, dim}).transpose(1, 2);
  at::Tensor v = layer.v_proj(x).view({batch, steps, kv_heads, dim}).transpose(1, 2);
  k = k * cos_h + rotate_half(k) * sin_h;

  if (cache != nullptr) {
    if (cache->keys.size() <= index) {
      cache->keys.push_back(k.contiguous());
      cache->values.push_back(v.contiguous());
    } else {
      cache->keys[index] = at::cat({cache->keys[index], k}, 2);
      cache->values[index] = at::cat({cache->values[index], v}, 2);
    }
    k = cache->keys[index];
    v = cache->values[index];
  }
  if (rows.keys_only) return at::Tensor();

  // Queries q [B, H, Tq, D]: every token, or (batch 1) the read positions only.
  const at::Tensor query_index = rows.positions.defined() ? rows.positions : at::arange(steps, at::kLong);  // [Tq]
  const std::int64_t queries = query_index.size(0);
  const at::Tensor xq = rows.positions.defined() ? x.index_select(1, query_index) : x;
  at::Tensor q = layer.q_proj(xq).view({batch, queries, c.num_heads, dim}).transpose(1, 2);
  if (rows.positions.defined()) {
    q = q * cos_h.index_select(2, query_index) + rotate_half(q) * sin_h.index_select(2, query_index);
  } else {
    q = q * cos_h + rotate_half(q) * sin_h;
  }
  const std::int64_t own = k.size(2);  // past + T
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));

  // Grouped queries: the H heads are KV-major, so q viewed as [B, KV, G*Tq, D]
  // meets its KV head without repeating keys.
  at::Tensor qg = q.reshape({batch, kv_heads, groups * queries, dim});
  at::Tensor own_scores = at::matmul(qg, k.transpose(2, 3)) * scale;  // [B, KV, G*Tq, S]
  // Causal within the own part: query t (absolute past + t) sees own keys j <= past + t,
  // and with packed rows only the keys of its own row.
  const at::Tensor query_pos = (query_index + past).view({queries, 1});
  const at::Tensor key_pos = at::arange(own, at::kLong).view({1, own});
  at::Tensor hidden_keys = key_pos > query_pos;  // [Tq, S]
  if (rows.segments.defined()) {
    hidden_keys = hidden_keys.logical_or(rows.segments.index_select(0, query_index).view({queries, 1}) !=
                                         rows.segments.view({1, own}));
  }
  const at::Tensor mask = at::zeros({queries, own}, own_scores.options())
                              .masked_fill(hidden_keys, -std::numeric_limits<double>::infinity());
  own_scores = (own_scores.view({batch, kv_heads, groups, queries, own}) + mask)
                   .view({batch, kv_heads, groups * queries, own});

  if (prefix == nullptr || prefix->empty()) {
    at::Tensor probs = at::softmax(own_scores, -1, at::kFloat).to(v.scalar_type());
    at::Tensor out = at::matmul(probs, v);  // [B, KV, G*Tq, D]
    out = out.view({batch, c.num_heads, queries, dim}).transpose(1, 2).reshape({batch, queries, c.num_heads * dim});
    return layer.o_proj(out);
  }

  // Shared prefix [1, KV, P, D]: fold the batch into the query rows so one GEMM
  // per KV head reads the prefix once: [KV, B*G*Tq, D] x [KV, D, P].
  const at::Tensor& pk = prefix->keys[index];
  const at::Tensor& pv = prefix->values[index];
  const std::int64_t plen = pk.size(2);
  at::Tensor q_rows = qg.transpose(0, 1).reshape({kv_heads, batch * groups * queries, dim});
  at::Tensor prefix_scores = at::matmul(q_rows, pk[0].transpose(1, 2)) * scale;  // [KV, B*G*Tq, P]
  prefix_scores = prefix_scores.view({kv_heads, batch, groups * queries, plen}).transpose(0, 1);
  // One softmax over [prefix keys ; own keys].
  at::Tensor probs = at::softmax(at::cat({prefix_scores, own_scores}, -1), -1, at::kFloat).to(v.scalar_type());
  at::Tensor prefix_probs = probs.narrow(-1, 0, plen);   // [B, KV, G*Tq, P]
  at::Tensor own_probs = probs.narrow(-1, plen, own);    // [B, KV, G*Tq, S]
  at::Tensor out_prefix = at::matmul(prefix_probs.transpose(0, 1).reshape({kv_heads, batch * groups * queries, plen}), pv[0])
                              .view({kv_heads, batch, groups * queries, dim})
                              .transpose(0, 1);
  at::Tensor out = out_prefix + at::matmul(own_probs, v);  // [B, KV, G*Tq, D]
  out = out.reshape({batch, c.num_heads, queries, dim}).transpose(1, 2).reshape({batch, queries, c.num_heads * dim});
  return layer.o_proj(out);
}

DecoderOutput Qwen2Decoder::forward(const DecoderInput& input) const {
  const at::Tensor& embeds = input.embeds;
  if (embeds.dim() != 3 || embeds.size(2) != config_.hidden_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Qwen2Decoder: embeds must be [B, T, {}]", config_.hidden_size));
  }
  const std::int64_t batch = embeds.size(0), steps = embeds.size(1);
  if (input.position_ids.dim() != 3 || input.position_ids.size(0) != 3 ||
      input.position_ids.size(1) != batch || input.position_ids.size(2) != steps) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: position_ids must be [3, B, T]");
  }
  if (input.shared_prefix != nullptr && !input.shared_prefix->empty() &&
      (input.shared_prefix->batch() != 1 ||
       input.shared_prefix->keys.size() != static_cast<std::size_t>(config_.num_layers))) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: the shared prefix must be one full batch-1 cache");
  }
  if (input.cache != nullptr && !input.cache->empty() && input.cache->batch() != batch) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: the cache batch differs from the input batch");
  }
  if ((input.segments.defined() || input.read_positions.defined()) && batch != 1) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: packed rows and read positions need batch 1");
  }
  if (input.segments.defined() &&
      (input.segments.dim() != 1 || input.segments.size(0) != steps || (input.cache != nullptr && !input.cache->empty()))) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: segments must be [T] and the own cache empty");
  }
  if (input.read_positions.defined() &&
      (input.read_positions.dim() != 1 || input.read_positions.size(0) == 0 ||
       input.read_positions.min().item<std::int64_t>() < 0 || input.read_positions.max().item<std::int64_t>() >= steps)) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("Qwen2Decoder: read_positions must be [N > 0] in [0, {})", steps));
  }
  if (input.cache_only && (input.cache == nullptr || input.collect_hidden_states)) {
    throw Error(ErrorCode::InvalidArgument, "Qwen2Decoder: cache_only needs a cache and no collected hidden states");
  }
  auto [cos, sin] = rotary(input.position_ids);
  const std::int64_t past = input.cache != nullptr ? input.cache->length() : 0;
  DecoderOutput output;
  at::Tensor x = embeds.to(dtype_);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (input.call != nullptr) input.call->check();
    if (input.collect_hidden_states) output.hidden_states.push_back(x);
    const Layer& layer = layers_[i];
    // Only the last layer's outputs can be left out: every earlier layer feeds
    // the keys and values of the next.
    const bool last = i + 1 == layers_.size();
    QueryRows rows{input.segments, last ? input.read_positions : at::Tensor(), last && input.cache_only};
    const at::Tensor attended = attention(layer, i, runtime::nn::rms_norm(x, layer.input_norm, config_.rms_norm_eps),
                                          cos, sin, input.shared_prefix, input.cache, past, rows);
    if (rows.keys_only) return output;
    if (rows.positions.defined()) x = x.index_select(1, rows.positions);
    x = x + attended;
    at::Tensor h = runtime::nn::rms_norm(x, layer.post_attention_norm, config_.rms_norm_eps);
    x = x + layer.down_proj(at::silu(layer.gate_proj(h)) * layer.up_proj(h));
  }
  output.last_hidden = runtime::nn::rms_norm(x, final_norm_, config_.rms_norm_eps);
  if (input.collect_hidden_states) output.hidden_states.push_back(output.last_hidden);
  return output;
}

at::Tensor Qwen2Decoder::logits(const at::Tensor& hidden) const {
  return lm_head_linear_(hidden.to(dtype_)).to(at::kFloat);
}

at::Tensor Qwen2Decoder::logits_for(const at::Tensor& hidden, const at::Tensor& token_ids) const {
  if (token_ids.numel() > 0 &&
      (token_ids.min().item<std::int64_t>() < 0 || token_ids.max().item<std::int64_t>() >= config_.vocab_size)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("logits_for: a token id is outside the vocabulary [0, {})", config_.vocab_size));
  }
  // [N, hidden] rows of the LM head; contiguous so the product is one plain GEMM.
  return runtime::nn::linear(hidden.to(dtype_), lm_head_.index_select(0, token_ids)).to(at::kFloat);
}

}  // namespace imgjudge::models
