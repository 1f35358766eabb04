// The model options every model-using subcommand takes (--backend, --model,
// --relevance-model, --script, --device, --dtype, --threads), read in one place.
#pragma once

#include "cli/args.hpp"
#include "imgjudge/backend.hpp"

namespace imgjudge::cli {

/// The ModelConfig the options describe, with the library defaults for absent ones.
inline ModelConfig model_config_from(const Args& args) {
  ModelConfig config;
  config.backend = args.value_or("backend", config.backend);
  config.model_dir = args.value_or("model", "");
  config.relevance_model_dir = args.value_or("relevance-model", "");
  config.script_path = args.value_or("script", "");
  config.device = args.value_or("device", config.device);
  config.dtype = args.value_or("dtype", config.dtype);
  config.threads = args.int_value_or("threads", config.threads);
  return config;
}

}  // namespace imgjudge::cli
