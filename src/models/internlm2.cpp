#include "models/internlm2.hpp"

#include <ATen/ATen.h>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

DecoderConfig internlm2_decoder_config(const runtime::HfConfig& text) {
  // InternLM2Config's defaults (configuration_internlm2.py).
  DecoderDefaults defaults;
  defaults.vocab_size = 103168;
  defaults.hidden_size = 4096;
  defaults.intermediate_size = 11008;
  defaults.num_layers = 32;
  defaults.num_heads = 32;
  defaults.max_position_embeddings = 2048;
  defaults.rms_norm_eps = 1e-6;
  defaults.rope_theta = 10000.0;
  if (text.has("head_dim")) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}': InternLM2 has no head_dim setting (it is hidden_size / num_attention_heads)",
                            text.file(), text.qualified("head_dim")));
  }
  DecoderConfig c = DecoderConfig::from_config(text, defaults);
  // InternLM2Config._rope_scaling_validation: only these two, with a factor.
  if (c.rope.scaling != RopeConfig::Scaling::None && c.rope.scaling != RopeConfig::Scaling::Linear &&
      c.rope.scaling != RopeConfig::Scaling::Dynamic) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: '{}' must be of type linear or dynamic for InternLM2",
                                                     text.file(), text.qualified("rope_scaling")));
  }
  c.rope.scale_positions = true;
  return c;
}

DecoderWeights bind_internlm2_layout(const DecoderConfig& c, const runtime::WeightStore& transformer,
                                     const runtime::WeightStore& root, const std::string& lm_head, bool bias) {
  const std::int64_t dim = c.head_dim, kv = c.num_kv_heads, groups = c.num_heads / c.num_kv_heads;
  const std::int64_t q_dim = c.num_heads * dim;
  const runtime::LinearFormat format = transformer.linear_format();
  DecoderWeights w;
  w.embed_tokens = transformer.get("tok_embeddings.weight", {c.vocab_size, c.hidden_size});
  for (std::int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    DecoderLayerWeights layer;
    layer.input_norm = transformer.get(p + "attention_norm.weight", {c.hidden_size});
    layer.post_attention_norm = transformer.get(p + "ffn_norm.weight", {c.hidden_size});
    // [(G + 2) * KV * D, hidden] -> [KV, G + 2, D, hidden]: per KV head its G queries, its key, its value.
    const at::Tensor wqkv =
        transformer.get(p + "attention.wqkv.weight", {(c.num_heads + 2 * kv) * dim, c.hidden_size})
            .view({kv, groups + 2, dim, c.hidden_size});
    std::optional<at::Tensor> bqkv;
    if (bias) bqkv = transformer.get(p + "attention.wqkv.bias", {(c.num_heads + 2 * kv) * dim}).view({kv, groups + 2, dim});
    const auto part = [&](std::int64_t first, std::int64_t count, std::int64_t rows) {
      const at::Tensor weight = wqkv.narrow(1, first, count).reshape({rows, c.hidden_size}).contiguous();
      std::optional<at::Tensor> part_bias;
      if (bqkv) part_bias = bqkv->narrow(1, first, count).reshape({rows}).contiguous();
      return runtime::Linear(weight, part_bias, format);
    };
    layer.q_proj = part(0, groups, q_dim);  // query head j * G + g, as repeat_kv pairs them
    layer.k_proj = part(groups, 1, kv * dim);
    layer.v_proj = part(groups + 1, 1, kv * dim);
    layer.o_proj = transformer.linear(p + "attention.wo", c.hidden_size, q_dim, bias);
    layer.gate_proj = transformer.linear(p + "feed_forward.w1", c.intermediate_size, c.hidden_size, false);
    layer.up_proj = transformer.linear(p + "feed_forward.w3", c.intermediate_size, c.hidden_size, false);
    layer.down_proj = transformer.linear(p + "feed_forward.w2", c.hidden_size, c.intermediate_size, false);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = transformer.get("norm.weight", {c.hidden_size});
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : root.get(lm_head, {c.vocab_size, c.hidden_size});
  return w;
}

std::unique_ptr<const Decoder> load_internlm2_decoder(const DecoderConfig& config, const runtime::HfConfig& text,
                                                      const runtime::WeightStore& transformer,
                                                      const runtime::WeightStore& root, const std::string& lm_head) {
  // InternLM2Config: "bias" defaults to True; released checkpoints say false.
  const bool bias = text.get_bool("bias", true);
  return std::make_unique<const Decoder>(config, bind_internlm2_layout(config, transformer, root, lm_head, bias),
                                         transformer.dtype(), transformer.linear_format());
}

}  // namespace imgjudge::models
