// Llama 2 / 3 / 3.1 (modeling_llama.py) and Mistral (modeling_mistral.py): the
// Llama block layout, biases only where attention_bias / mlp_bias say, RoPE
// scaling (llama3, linear, dynamic), Mistral's sliding window. The language
// model of LLaVA-1.5 / LLaVA-NeXT and InternVL2-76B, and a text model for the
// constitution tools (Llama-3.1-Instruct).
#pragma once

#include <memory>
#include <string>

#include "models/decoder.hpp"

namespace imgjudge::models {

/// The decoder settings of a Llama text config (LlamaConfig defaults for absent keys).
DecoderConfig llama_decoder_config(const runtime::HfConfig& text);
/// The same for Mistral (MistralConfig defaults: 8 KV heads, sliding window 4096 unless null).
DecoderConfig mistral_decoder_config(const runtime::HfConfig& text);

/// Binds a Llama-layout decoder: `transformer` is scoped to the transformer
/// ("model", "language_model.model", ...), `lm_head` is the head's name in
/// `root`; biases as `text` (attention_bias, mlp_bias) says.
std::unique_ptr<const Decoder> load_llama_decoder(const DecoderConfig& config, const runtime::HfConfig& text,
                                                  const runtime::WeightStore& transformer,
                                                  const runtime::WeightStore& root, const std::string& lm_head);

}  // namespace imgjudge::models
