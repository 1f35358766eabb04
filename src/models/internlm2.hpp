// InternLM2 / InternLM2.5 (InternLM2ForCausalLM, OpenGVLab's
// internvl/model/internlm2/modeling_internlm2.py, the trust_remote_code copy
// the InternVL checkpoints ship): the Llama block on the shared decoder, with
// its own weight names and one packed q/k/v projection:
//
//   tok_embeddings, layers.{i}.{attention_norm, attention.wqkv, attention.wo,
//   ffn_norm, feed_forward.{w1 (gate), w3 (up), w2 (down)}}, norm; output (head)
//
// wqkv [(H + 2 KV) * D, hidden] is grouped per KV head: for KV head j, its
// G = H / KV query heads, then its key, then its value (rows
// ((j * (G + 2) + g) * D + d)). It is split once, at load, into the q/k/v
// projections of the Llama layout (query head j * G + g), which is exact.
// The language model of InternVL2-2B/8B/26B and InternVL2.5-2B/8B/26B.
#pragma once

#include <memory>
#include <string>

#include "models/decoder.hpp"

namespace imgjudge::models {

/// The decoder settings of an InternLM2 config (InternLM2Config defaults for
/// absent keys; no head_dim key: hidden / heads). rope_scaling may be
/// {type: linear | dynamic, factor}; linear divides the positions, as InternLM2 does.
DecoderConfig internlm2_decoder_config(const runtime::HfConfig& text);

/// Binds the InternLM2 names: `transformer` is scoped to the transformer
/// ("model", "language_model.model"), `lm_head` is the head's full name in
/// `root` ("output.weight", "language_model.output.weight"); `bias` (config
/// key "bias", default true) puts biases on wqkv and wo.
DecoderWeights bind_internlm2_layout(const DecoderConfig& config, const runtime::WeightStore& transformer,
                                     const runtime::WeightStore& root, const std::string& lm_head, bool bias);

/// The decoder of an InternLM2 text config (`text` gives "bias").
std::unique_ptr<const Decoder> load_internlm2_decoder(const DecoderConfig& config, const runtime::HfConfig& text,
                                                      const runtime::WeightStore& transformer,
                                                      const runtime::WeightStore& root, const std::string& lm_head);

}  // namespace imgjudge::models
