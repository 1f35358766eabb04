#include "models/decoder.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/attention.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {
namespace {

std::int64_t positive(const runtime::HfConfig& config, const char* key, std::int64_t fallback) {
  const std::int64_t value = config.get_int(key, fallback);
  if (value <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' must be a positive integer, found {}", config.file(), config.qualified(key), value));
  }
  return value;
}

// HF inv_freq = 1 / theta^(2i / dim), i < dim / 2, in float32.
at::Tensor default_inv_freq(double theta, std::int64_t dim) {
  return 1.0 / at::pow(theta, at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim));
}

// Llama 3.1 (modeling_rope_utils._compute_llama3_parameters): long wavelengths
// are divided by `factor`, short ones kept, and the band between blended.
at::Tensor llama3_inv_freq(const at::Tensor& inv_freq, const RopeConfig& rope) {
  const double old_context = static_cast<double>(rope.original_max_positions);
  const double low_freq_wavelen = old_context / rope.low_freq_factor;
  const double high_freq_wavelen = old_context / rope.high_freq_factor;
  // Written as HF's Python evaluates `2 * pi / inv_freq` (reciprocal, then scale) for bit equality.
  const at::Tensor wavelen = at::reciprocal(inv_freq) * (2.0 * M_PI);
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
  const at::Tensor smooth =
      (at::reciprocal(wavelen) * old_context - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
  const at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  const at::Tensor medium = (wavelen < high_freq_wavelen).logical_not().logical_and((wavelen > low_freq_wavelen).logical_not());
  return at::where(medium, smoothed, scaled);
}

}  // namespace

RopeConfig RopeConfig::from_config(const runtime::HfConfig& config, std::int64_t head_dim,
                                   std::int64_t max_position_embeddings, double default_theta) {
  RopeConfig rope;
  rope.theta = config.get_double("rope_theta", default_theta);
  if (!(rope.theta > 0) || !std::isfinite(rope.theta)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' must be a positive number", config.file(), config.qualified("rope_theta")));
  }
  if (!config.has("rope_scaling")) return rope;
  const runtime::HfConfig scaling = config.section("rope_scaling");
  // "rope_type" (transformers >= 4.45) or "type" (older configs).
  const std::string type = scaling.get_string("rope_type", scaling.get_string("type", "default"));
  const auto factor = [&] {
    const double value = scaling.get_double("factor");
    if (!(value >= 1.0) || !std::isfinite(value)) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: '{}' must be a number >= 1", scaling.file(), scaling.qualified("factor")));
    }
    return value;
  };
  if (type == "default" || type == "mrope") {
    // "mrope" only changes which position row each rotary pair reads.
  } else if (type == "linear") {
    rope.scaling = Scaling::Linear;
    rope.factor = factor();
  } else if (type == "llama3") {
    rope.scaling = Scaling::Llama3;
    rope.factor = factor();
    rope.low_freq_factor = scaling.get_double("low_freq_factor");
    rope.high_freq_factor = scaling.get_double("high_freq_factor");
    rope.original_max_positions = scaling.get_int("original_max_position_embeddings");
    if (!(rope.high_freq_factor > rope.low_freq_factor) || rope.low_freq_factor <= 0 || rope.original_max_positions <= 0) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: llama3 rope_scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
                              "original_max_position_embeddings",
                              scaling.file()));
    }
  } else if (type == "dynamic") {
    // Dynamic NTK equals the default frequencies until a sequence outgrows
    // max_position_embeddings; the forward refuses positions past that.
    rope.scaling = Scaling::Dynamic;
    rope.factor = factor();
    rope.original_max_positions = max_position_embeddings;
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: rope_scaling type \"{}\" is not supported (default, mrope, linear, llama3, dynamic)",
                            config.file(), type));
  }
  if (scaling.has("mrope_section")) {
    std::int64_t pairs = 0;
    for (double section : scaling.get_doubles("mrope_section", {})) {
      if (section < 0 || std::floor(section) != section) {
        throw Error(ErrorCode::InvalidModel, fmt::format("{}: mrope_section must hold non-negative integers", config.file()));
      }
      rope.mrope_section.push_back(static_cast<std::int64_t>(section));
      pairs += rope.mrope_section.back();
    }
    if (rope.mrope_section.size() != 3 || pairs != head_dim / 2) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: mrope_section must be 3 numbers summing to head_dim/2 = {}", config.file(), head_dim / 2));
    }
  }
  return rope;
}

DecoderConfig DecoderConfig::from_config(const runtime::HfConfig& config, const DecoderDefaults& defaults) {
  DecoderConfig c;
  c.vocab_size = positive(config, "vocab_size", defaults.vocab_size);
  c.hidden_size = positive(config, "hidden_size", defaults.hidden_size);
  c.intermediate_size = positive(config, "intermediate_size", defaults.intermediate_size);
  c.num_layers = positive(config, "num_hidden_layers", defaults.num_layers);
  c.num_heads = positive(config, "num_attention_heads", defaults.num_heads);
  c.num_kv_heads = positive(config, "num_key_value_heads", defaults.num_kv_heads > 0 ? defaults.num_kv_heads : c.num_heads);
  if (config.has("head_dim")) {
    c.head_dim = positive(config, "head_dim", 0);
  } else if (c.hidden_size % c.num_heads != 0) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}",
                                                     config.file(), c.hidden_size, c.num_heads));
  } else {
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: num_attention_heads {} must be a multiple of num_key_value_heads {} and head_dim {} even",
                            config.file(), c.num_heads, c.num_kv_heads, c.head_dim));
  }
  c.rms_norm_eps = config.get_double("rms_norm_eps", defaults.rms_norm_eps);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(c.rms_norm_eps)) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: rms_norm_eps must be a non-negative number", config.file()));
  }
  c.hidden_act = config.get_string("hidden_act", "silu");
  runtime::nn::activation(c.hidden_act);  // Error(Unsupported) now rather than at the first image
  c.tie_word_embeddings = config.get_bool("tie_word_embeddings", defaults.tie_word_embeddings);
  c.rope = RopeConfig::from_config(config, c.head_dim,
                                   config.get_int("max_position_embeddings", defaults.max_position_embeddings),
                                   defaults.rope_theta);
  // Qwen2 / Mistral sliding windows: Qwen2 applies one from layer
  // max_window_layers on when use_sliding_window is set; Mistral to every
  // layer unless sliding_window is null (its class default is 4096).
  std::int64_t window = 0;
  if (config.has("sliding_window")) {
    window = positive(config, "sliding_window", 0);
  } else if (!config.is_null("sliding_window")) {
    window = defaults.sliding_window;
  }
  if (window > 0 && config.get_bool("use_sliding_window", !config.has("max_window_layers"))) {
    const std::int64_t first = config.get_int("max_window_layers", 0);
    c.sliding_window.assign(static_cast<std::size_t>(c.num_layers), 0);
    for (std::int64_t i = std::max<std::int64_t>(first, 0); i < c.num_layers; ++i) {
      c.sliding_window[static_cast<std::size_t>(i)] = window;
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

DecoderWeights bind_llama_layout(const DecoderConfig& c, const runtime::WeightStore& transformer,
                                 const runtime::WeightStore& root, const std::string& lm_head,
                                 const LlamaLayoutBiases& biases) {
  const std::int64_t q_dim = c.num_heads * c.head_dim;
  const std::int64_t kv_dim = c.num_kv_heads * c.head_dim;
  DecoderWeights w;
  w.embed_tokens = transformer.get("embed_tokens.weight", {c.vocab_size, c.hidden_size});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    DecoderLayerWeights layer;
    layer.input_norm = transformer.get(p + "input_layernorm.weight", {c.hidden_size});
    layer.post_attention_norm = transformer.get(p + "post_attention_layernorm.weight", {c.hidden_size});
    layer.q_proj = transformer.linear(p + "self_attn.q_proj", q_dim, c.hidden_size, biases.qkv);
    layer.k_proj = transformer.linear(p + "self_attn.k_proj", kv_dim, c.hidden_size, biases.qkv);
    layer.v_proj = transformer.linear(p + "self_attn.v_proj", kv_dim, c.hidden_size, biases.qkv);
    layer.o_proj = transformer.linear(p + "self_attn.o_proj", c.hidden_size, q_dim, biases.o);
    layer.gate_proj = transformer.linear(p + "mlp.gate_proj", c.intermediate_size, c.hidden_size, biases.mlp);
    layer.up_proj = transformer.linear(p + "mlp.up_proj", c.intermediate_size, c.hidden_size, biases.mlp);
    layer.down_proj = transformer.linear(p + "mlp.down_proj", c.hidden_size, c.intermediate_size, biases.mlp);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = transformer.get("norm.weight", {c.hidden_size});
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : root.get(lm_head, {c.vocab_size, c.hidden_size});
  return w;
}

Decoder::Decoder(DecoderConfig config, DecoderWeights weights, at::ScalarType dtype,
                 runtime::LinearFormat linear_format)
    : config_(std::move(config)), weights_(std::move(weights)), dtype_(dtype) {
  if (static_cast<std::int64_t>(weights_.layers.size()) != config_.num_layers) {
    throw Error(ErrorCode::Internal, "Decoder: the weights do not have num_layers layers");
  }
  lm_head_linear_ = runtime::Linear(weights_.lm_head, std::nullopt, linear_format);
  activation_ = runtime::nn::activation(config_.hidden_act);
  at::Tensor inv_freq = default_inv_freq(config_.rope.theta, config_.head_dim);
  switch (config_.rope.scaling) {
    case RopeConfig::Scaling::Linear:
      if (!config_.rope.scale_positions) inv_freq = inv_freq / config_.rope.factor;
      break;
    case RopeConfig::Scaling::Llama3: inv_freq = llama3_inv_freq(inv_freq, config_.rope); break;
    case RopeConfig::Scaling::None:
    case RopeConfig::Scaling::Dynamic: break;
  }
  inv_freq_ = inv_freq;
}

at::Tensor Decoder::embed(const at::Tensor& ids) const {
  if (ids.numel() > 0) {
    const std::int64_t lo = ids.min().item<std::int64_t>();
    const std::int64_t hi = ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("token id {} is outside the vocabulary [0, {})",
                                                          lo < 0 ? lo : hi, config_.vocab_size));
    }
  }
  return at::embedding(weights_.embed_tokens, ids);
}

std::pair<at::Tensor, at::Tensor> Decoder::rotary(const at::Tensor& position_ids) const {
  const auto& rope = config_.rope;
  if (rope.scaling == RopeConfig::Scaling::Dynamic && position_ids.numel() > 0 &&
      position_ids.max().item<std::int64_t>() >= rope.original_max_positions) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("dynamic NTK RoPE past max_position_embeddings ({} positions) is not supported",
                            rope.original_max_positions));
  }
  // freqs [R, B, T, head_dim/2] = position * inv_freq (one float32 product, as HF's outer matmul).
  at::Tensor positions = position_ids.to(at::kFloat);
  if (rope.scaling == RopeConfig::Scaling::Linear && rope.scale_positions) positions = positions / rope.factor;
  const at::Tensor freqs = positions.unsqueeze(-1) * inv_freq_;
  const at::Tensor emb = at::cat({freqs, freqs}, -1);  // [R, B, T, head_dim]
  const at::Tensor cos = emb.cos(), sin = emb.sin();
  if (rope.mrope_section.empty()) return {cos[0].to(dtype_), sin[0].to(dtype_)};
  // M-RoPE: the rotary dims are split into sections [t, h, w, t, h, w]; section
  // i takes its angles from position row i % 3.
  std::vector<at::Tensor> cos_parts, sin_parts;
  std::int64_t offset = 0;
  for (int i = 0; i < 6; ++i) {
    const std::int64_t width = rope.mrope_section[static_cast<std::size_t>(i % 3)];
    cos_parts.push_back(cos[i % 3].narrow(-1, offset, width));
    sin_parts.push_back(sin[i % 3].narrow(-1, offset, width));
    offset += width;
  }
  return {at::cat(cos_parts, -1).to(dtype_), at::cat(sin_parts, -1).to(dtype_)};
}

void Decoder::check(const DecoderInput& input) const {
  const auto fail = [](const std::string& what) { throw Error(ErrorCode::InvalidArgument, "Decoder: " + what); };
  const at::Tensor& embeds = input.embeds;
  if (embeds.dim() != 3 || embeds.size(2) != config_.hidden_size) {
    fail(fmt::format("embeds must be [B, T, {}]", config_.hidden_size));
  }
  const std::int64_t batch = embeds.size(0), steps = embeds.size(1);
  const std::int64_t rows = config_.rope.mrope_section.empty() ? -1 : 3;
  if (input.position_ids.dim() != 3 || (rows > 0 && input.position_ids.size(0) != rows) ||
      (input.position_ids.size(0) != 1 && input.position_ids.size(0) != 3) || input.position_ids.size(1) != batch ||
      input.position_ids.size(2) != steps) {
    fail(rows > 0 ? "position_ids must be [3, B, T] (M-RoPE)" : "position_ids must be [1, B, T] or [3, B, T]");
  }
  if (input.shared_prefix != nullptr && !input.shared_prefix->empty() &&
      (input.shared_prefix->batch() != 1 ||
       input.shared_prefix->keys.size() != static_cast<std::size_t>(config_.num_layers))) {
    fail("the shared prefix must be one full batch-1 cache");
  }
  if (input.cache != nullptr && !input.cache->empty() &&
      (input.cache->batch() != batch || input.cache->keys.size() != static_cast<std::size_t>(config_.num_layers))) {
    fail("the cache must hold every layer for the input's batch");
  }
  if ((input.segments.defined() || input.read_positions.defined()) && batch != 1) {
    fail("packed rows and read positions need batch 1");
  }
  if (input.segments.defined() &&
      (input.segments.dim() != 1 || input.segments.size(0) != steps || (input.cache != nullptr && !input.cache->empty()))) {
    fail("segments must be [T] and the own cache empty");
  }
  if (input.read_positions.defined() &&
      (input.read_positions.dim() != 1 || input.read_positions.size(0) == 0 ||
       input.read_positions.min().item<std::int64_t>() < 0 || input.read_positions.max().item<std::int64_t>() >= steps)) {
    fail(fmt::format("read_positions must be [N > 0] in [0, {})", steps));
  }
  if (input.key_padding.defined()) {
    const std::int64_t own = (input.cache != nullptr ? input.cache->length() : 0) + steps;
    if (input.key_padding.scalar_type() != at::kBool || input.key_padding.dim() != 2 ||
        input.key_padding.size(0) != batch || input.key_padding.size(1) != own) {
      fail(fmt::format("key_padding must be bool [{}, {}] (batch, own keys)", batch, own));
    }
    if (input.segments.defined() || !config_.sliding_window.empty()) {
      fail("key_padding does not combine with packed rows or a sliding window");
    }
  }
  if (input.cache_only && (input.cache == nullptr || input.collect_hidden_states)) {
    fail("cache_only needs a cache and no collected hidden states");
  }
}

DecoderOutput Decoder::forward(const DecoderInput& input) const {
  check(input);
  const auto& c = config_;
  const std::int64_t batch = input.embeds.size(0), steps = input.embeds.size(1), dim = c.head_dim;
  const auto [cos, sin] = rotary(input.position_ids);
  const at::Tensor cos_h = cos.unsqueeze(1), sin_h = sin.unsqueeze(1);  // [B, 1, T, D]
  const bool has_prefix = input.shared_prefix != nullptr && !input.shared_prefix->empty();

  // Fixed for the whole call: every layer masks against the cache as it was
  // before this call, not as earlier layers of the call have extended it.
  AttentionSpan span;
  span.past = input.cache != nullptr ? input.cache->length() : 0;
  span.prefix_length = has_prefix ? input.shared_prefix->length() : 0;
  span.segments = input.segments;
  span.key_padding = input.key_padding;

  DecoderOutput output;
  at::Tensor x = input.embeds.to(dtype_);
  for (std::size_t i = 0; i < weights_.layers.size(); ++i) {
    if (input.call != nullptr) input.call->check();
    if (input.collect_hidden_states) output.hidden_states.push_back(x);
    const DecoderLayerWeights& layer = weights_.layers[i];
    // Only the last layer's outputs can be left out: every earlier layer feeds
    // the keys and values of the next.
    const bool last = i + 1 == weights_.layers.size();
    const at::Tensor h = runtime::nn::rms_norm(x, layer.input_norm, c.rms_norm_eps);

    // k/v [B, KV, T, D] for every token: later queries (or calls) read them.
    at::Tensor k = layer.k_proj(h).view({batch, steps, c.num_kv_heads, dim}).transpose(1, 2);
    at::Tensor v = layer.v_proj(h).view({batch, steps, c.num_kv_heads, dim}).transpose(1, 2);
    k = k * cos_h + rotate_half(k) * sin_h;
    if (input.cache != nullptr) {
      KvCache& cache = *input.cache;
      if (cache.keys.size() <= i) {
        cache.keys.push_back(k.contiguous());
        cache.values.push_back(v.contiguous());
      } else {
        cache.keys[i] = at::cat({cache.keys[i], k}, 2);
        cache.values[i] = at::cat({cache.values[i], v}, 2);
      }
      k = cache.keys[i];
      v = cache.values[i];
    }
    if (last && input.cache_only) return output;

    // Queries [B, H, Tq, D]: every token, or (batch 1, last layer) the read positions only.
    span.query_index = last ? input.read_positions : at::Tensor();
    span.window = c.sliding_window.empty() ? 0 : c.sliding_window[i];
    const bool subset = span.query_index.defined();
    const at::Tensor hq = subset ? h.index_select(1, span.query_index) : h;
    const std::int64_t queries = hq.size(1);
    at::Tensor q = layer.q_proj(hq).view({batch, queries, c.num_heads, dim}).transpose(1, 2);
    q = subset ? q * cos_h.index_select(2, span.query_index) + rotate_half(q) * sin_h.index_select(2, span.query_index)
               : q * cos_h + rotate_half(q) * sin_h;
    const at::Tensor attended = grouped_attention(
        q, k, v, has_prefix ? input.shared_prefix->keys[i] : at::Tensor(),
        has_prefix ? input.shared_prefix->values[i] : at::Tensor(), span);  // [B, Tq, H*D]

    if (subset) x = x.index_select(1, span.query_index);
    x = x + layer.o_proj(attended);
    const at::Tensor m = runtime::nn::rms_norm(x, layer.post_attention_norm, c.rms_norm_eps);
    x = x + layer.down_proj(activation_(layer.gate_proj(m)) * layer.up_proj(m));
  }
  output.last_hidden = runtime::nn::rms_norm(x, weights_.final_norm, c.rms_norm_eps);
  if (input.collect_hidden_states) output.hidden_states.push_back(output.last_hidden);
  return output;
}

at::Tensor Decoder::logits(const at::Tensor& hidden) const { return lm_head_linear_(hidden.to(dtype_)).to(at::kFloat); }

at::Tensor Decoder::logits_for(const at::Tensor& hidden, const at::Tensor& token_ids) const {
  if (token_ids.numel() > 0 &&
      (token_ids.min().item<std::int64_t>() < 0 || token_ids.max().item<std::int64_t>() >= config_.vocab_size)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("logits_for: a token id is outside the vocabulary [0, {})", config_.vocab_size));
  }
  // [N, hidden] rows of the LM head; contiguous so the product is one plain GEMM.
  return runtime::nn::linear(hidden.to(dtype_), weights_.lm_head.index_select(0, token_ids)).to(at::kFloat);
}

}  // namespace imgjudge::models
