// `imgjudge make-random-model`: a Hugging Face folder with random weights for
// a config.json, its parameter list taken from the family code itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace imgjudge::devtools {

struct RandomModelRequest {
  std::string config_path;    ///< A HF config.json (model_type picks the family).
  std::string tokenizer_dir;  ///< Optional: tokenizer files to copy; vocab_size follows it.
  std::string out_dir;        ///< Created if missing.
  std::uint64_t seed = 0;
  std::string dtype = "f32";  ///< "f32" or "bf16".
};

/// Writes config.json, model.safetensors, preprocessor_config.json (vision
/// families) and the tokenizer files. Returns the written file names.
/// Throws Error(Unsupported) for a family without a random-model entry.
std::vector<std::string> make_random_model(const RandomModelRequest& request);

std::vector<std::string> random_model_types();

}  // namespace imgjudge::devtools
