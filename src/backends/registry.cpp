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

Models load_models(const ModelConfig& config) {
  if (config.backend == "scripted") return backends::scripted::load_models(config.script_path);
  if (config.backend == "torch") return backends::torch::load_models(config);
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown backend \"{}\" (available: {})", config.backend,
                          fmt::join(available_backends(), ", ")));
}

}  // namespace imgjudge
