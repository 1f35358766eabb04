// Qwen2 / Qwen2.5 (modeling_qwen2.py): the Llama block layout with biases on
// q, k and v only. Also the language model of Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision
// and InternVL2 (1B, 2.5-1B..78B).
#pragma once

#include <memory>
#include <string>

#include "models/decoder.hpp"

namespace imgjudge::models {

/// The decoder settings of a Qwen2 text config. `text` is the text config (or
/// a VL config's text_config with the top level as fallback).
DecoderConfig qwen2_decoder_config(const runtime::HfConfig& text);

/// Binds a Qwen2 decoder: `transformer` is scoped to the transformer ("model",
/// "language_model.model", ...), `lm_head` is the head's name in `root`.
std::unique_ptr<const Decoder> load_qwen2_decoder(const DecoderConfig& config, const runtime::WeightStore& transformer,
                                                  const runtime::WeightStore& root, const std::string& lm_head);

}  // namespace imgjudge::models
