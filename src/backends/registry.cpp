// The one place that knows every backend (explicit registration, no static
// self-registration: what a build contains is readable here).
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

}  // namespace

Models load_models(const ModelConfig& config) {
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
