#include "models/qwen2.hpp"

#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

DecoderConfig qwen2_decoder_config(const runtime::HfConfig& text) {
  return DecoderConfig::from_config(text, /*default_tie_word_embeddings=*/false);
}

std::unique_ptr<const Decoder> load_qwen2_decoder(const DecoderConfig& config, const runtime::WeightStore& transformer,
                                                  const runtime::WeightStore& root, const std::string& lm_head) {
  LlamaLayoutBiases biases;
  biases.qkv = true;
  return std::make_unique<const Decoder>(config, bind_llama_layout(config, transformer, root, lm_head, biases),
                                         transformer.dtype(), transformer.linear_format());
}

}  // namespace imgjudge::models
