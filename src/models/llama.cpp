#include "models/llama.hpp"

#include "runtime/config.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {

DecoderConfig llama_decoder_config(const runtime::HfConfig& text) {
  return DecoderConfig::from_config(text, DecoderDefaults{});  // DecoderDefaults are LlamaConfig's
}

DecoderConfig mistral_decoder_config(const runtime::HfConfig& text) {
  DecoderDefaults defaults;
  defaults.intermediate_size = 14336;
  defaults.num_kv_heads = 8;
  defaults.max_position_embeddings = 4096 * 32;
  defaults.sliding_window = 4096;
  return DecoderConfig::from_config(text, defaults);
}

std::unique_ptr<const Decoder> load_llama_decoder(const DecoderConfig& config, const runtime::HfConfig& text,
                                                  const runtime::WeightStore& transformer,
                                                  const runtime::WeightStore& root, const std::string& lm_head) {
  LlamaLayoutBiases biases;
  biases.qkv = biases.o = text.get_bool("attention_bias", false);
  biases.mlp = text.get_bool("mlp_bias", false);
  return std::make_unique<const Decoder>(config, bind_llama_layout(config, transformer, root, lm_head, biases),
                                         transformer.dtype(), transformer.linear_format());
}

}  // namespace imgjudge::models
