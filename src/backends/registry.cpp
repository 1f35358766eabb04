// The one place that knows every backend (explicit registration, no static
// self-registration: what a build contains is readable here).
#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backends/scripted/scripted_backend.hpp"
#include "backends/torch/torch_backend.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge {

std::vector<std::string> available_backends() { return {"scripted", "torch"}; }

namespace {

// An option the chosen backend would silently ignore is a mistake of the
// caller's (a model folder given to the scripted backend judges nothing with it).
void refuse_unused(const std::string& backend, const char* option, const std::string& value) {
  if (value.empty()) return;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("{} is \"{}\" but the {} backend does not use it", option, value, backend));
}

// The execution options' syntax, checked for every backend: the scripted one
// ignores them, and a test configuration that passes with nonsense would fail
// the day it switches to torch. Whether a CUDA device exists is the torch
// backend's question.
void check_execution_options(const ModelConfig& config) {
  static const std::vector<std::string> dtypes = {"auto", "float32", "f32", "fp32", "bfloat16", "bf16", "int8"};
  if (std::find(dtypes.begin(), dtypes.end(), config.dtype) == dtypes.end()) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("unknown dtype \"{}\" (expected auto, float32, bfloat16 or int8)", config.dtype));
  }
  const std::string& device = config.device;
  const bool cuda_index = device.size() > 5 && device.size() <= 8 && device.rfind("cuda:", 0) == 0 &&
                          device.find_first_not_of("0123456789", 5) == std::string::npos;
  if (!(device.empty() || device == "cpu" || device == "cuda" || cuda_index)) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown device \"{}\" (expected cpu or cuda[:N])", device));
  }
  if (config.image_memory_mb > kMaxImageMemoryMb) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("image_memory_mb must be at most {} (1 PiB), got {}",
                                                        kMaxImageMemoryMb, config.image_memory_mb));
  }
  if (config.threads < 0 || config.threads > kMaxThreads) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("threads must be 0 (all cores) to {}, got {}", kMaxThreads, config.threads));
  }
}

}  // namespace

Models load_models(const ModelConfig& config) {
  check_execution_options(config);
  if (config.backend == "scripted") {
    refuse_unused(config.backend, "model_dir", config.model_dir);
    refuse_unused(config.backend, "relevance_model_dir", config.relevance_model_dir);
    refuse_unused(config.backend, "locator_model_dir", config.locator_model_dir);
    return backends::scripted::load_models(config.script_path);
  }
  if (config.backend == "torch") {
    refuse_unused(config.backend, "script_path", config.script_path);
    return backends::torch::load_models(config);
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown backend \"{}\" (available: {})", config.backend,
                          fmt::join(available_backends(), ", ")));
}

}  // namespace imgjudge
