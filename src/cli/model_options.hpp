// The options several subcommands share, read and documented in one place:
// the model options (--backend, --model, --relevance-model, --locator-model,
// --script, --device, --dtype, --threads) and the method options of judge and eval
// (stage switches, --reasoning-tokens, --timeout-ms).
#pragma once

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/args.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/judge.hpp"

namespace imgjudge::cli {

/// Value options of the model block.
inline const std::vector<std::string> kModelOptions = {"backend", "model", "relevance-model", "locator-model",
                                                       "script",  "device", "dtype",          "threads",
                                                       "image-memory-mb"};
/// Value options and flags of the method block.
inline const std::vector<std::string> kMethodOptions = {"constitution", "timeout-ms", "reasoning-tokens"};
inline const std::vector<std::string> kMethodFlags = {"no-relevance", "no-debias",     "no-chains",
                                                      "no-cascade",   "no-early-exit", "no-locator"};

inline constexpr const char* kModelOptionsHelp = R"(models:
  --backend NAME            torch (default) or scripted
  --model DIR               Hugging Face folder of the vision-language model (torch)
  --relevance-model DIR     Hugging Face folder of CLIP/SigLIP for relevance scanning (optional)
  --locator-model DIR       Hugging Face folder of OWLv2/OWL-ViT for strategy 2, region removal (optional)
  --script FILE             answer script of the scripted backend
  --device DEV              cpu (default) or cuda[:N]
  --dtype T                 auto (default), float32, bfloat16 or int8
  --threads N               intra-op threads (default: all cores)
  --image-memory-mb N       memory one image may take in the model, estimated before encoding; an image
                            over it fails alone with limit_exceeded (default: half the RAM, at most 8192)
)";

inline constexpr const char* kMethodOptionsHelp = R"(constitution and method:
  --constitution FILE       TOML rules (default: the bundled default constitution)
  --no-relevance --no-debias --no-chains --no-cascade --no-early-exit --no-locator
                            switch a stage off
  --reasoning-tokens N      token budget of each cascaded-reasoning turn (default 512)
  --timeout-ms N            per-image deadline (0, the default: none)
)";

/// `a` followed by `b`.
inline std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// The ModelConfig the options describe, with the library defaults for absent ones.
inline ModelConfig model_config_from(const Args& args) {
  ModelConfig config;
  config.backend = args.value_or("backend", config.backend);
  config.model_dir = args.value_or("model", "");
  config.relevance_model_dir = args.value_or("relevance-model", "");
  config.locator_model_dir = args.value_or("locator-model", "");
  config.script_path = args.value_or("script", "");
  config.device = args.value_or("device", config.device);
  config.dtype = args.value_or("dtype", config.dtype);
  config.threads = args.int_value_or("threads", config.threads);
  if (const auto text = args.value("image-memory-mb")) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long mb = std::strtoull(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || (*text)[0] == '-' || errno == ERANGE || mb == 0) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--image-memory-mb: expected a positive number of MiB, not '{}'", *text));
    }
    config.image_memory_mb = mb;
  }
  return config;
}

/// The JudgeOptions of the method block.
inline JudgeOptions judge_options_from(const Args& args) {
  JudgeOptions options;
  options.relevance = !args.flag("no-relevance");
  options.debias = !args.flag("no-debias");
  options.chains = !args.flag("no-chains");
  options.cascade = !args.flag("no-cascade");
  options.early_exit = !args.flag("no-early-exit");
  options.locator = !args.flag("no-locator");
  options.reasoning_limits.max_new_tokens = args.int_value_or("reasoning-tokens", options.reasoning_limits.max_new_tokens);
  if (options.reasoning_limits.max_new_tokens < 1) {
    throw Error(ErrorCode::InvalidArgument, "--reasoning-tokens must be at least 1");
  }
  return options;
}

/// --timeout-ms (0: no deadline). Error(InvalidArgument) below 0, as the C API.
inline std::chrono::milliseconds timeout_from(const Args& args) {
  const int timeout_ms = args.int_value_or("timeout-ms", 0);
  if (timeout_ms < 0) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--timeout-ms must be 0 (none) or more, not {}", timeout_ms));
  }
  return std::chrono::milliseconds(timeout_ms);
}

/// The constitution of --constitution, or the bundled default.
inline Constitution constitution_from(const Args& args) {
  return args.value("constitution") ? Constitution::from_file(*args.value("constitution"))
                                    : Constitution::builtin_default();
}

}  // namespace imgjudge::cli
