#include "models/qwen2.hpp"

#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

DecoderConfig qwen2_decoder_config(const runtime::HfConfig& text) {
  // Qwen2Config's defaults (configuration_qwen2.py).
  DecoderDefaults defaults;
  defaults.vocab_size = 151936;
  defaults.intermediate_size = 22016;
  defaults.max_position_embeddings = 32768;
  return DecoderConfig::from_config(text, defaults);
}

std::unique_ptr<const Decoder> load_qwen2_decoder(const DecoderConfig& config, const runtime::WeightStore& transformer,
                                                  const runtime::WeightStore& root, const std::string& lm_head) {
  LlamaLayoutBiases biases;
  biases.qkv = true;
  return std::make_unique<const Decoder>(config, bind_llama_layout(config, transformer, root, lm_head, biases),
                                         transformer.dtype(), transformer.linear_format());
}

}  // namespace imgjudge::models
