// The backend registry of the fuzz targets: the scripted backend only.
//
// src/backends/registry.cpp names the torch backend too, which would pull
// libtorch into the C API fuzzer. The fuzzers must link only torch-free code
// (imgjudge_core) so every line they run is instrumented, so this stands in for
// it: same functions, same error for an unknown backend.
#include <string>
#include <vector>

#include "backends/scripted/scripted_backend.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge {

std::vector<std::string> available_backends() { return {"scripted"}; }

Models load_models(const ModelConfig& config) {
  if (config.backend == "scripted") return backends::scripted::load_models(config.script_path);
  throw Error(ErrorCode::InvalidArgument,
              "unknown backend \"" + config.backend + "\" (this fuzz build has: scripted)");
}

}  // namespace imgjudge
