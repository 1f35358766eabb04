// The scripted backend: deterministic answers from a TOML script, so that every
// branch of the Judge can be tested and the CLI demonstrated without model
// weights. Format: docs/scripted-backend.md.
#pragma once

#include <string>

#include "imgjudge/backend.hpp"

namespace imgjudge::backends::scripted {

/// Loads the script at `path` (image files named in it are relative to its folder).
/// Throws Error(InvalidArgument) for a malformed script, naming line and column.
Models load_models(const std::string& path);

/// Same, from TOML text; `base_dir` resolves image file names.
Models load_models_from_string(const std::string& toml_text, const std::string& source_name,
                               const std::string& base_dir);

}  // namespace imgjudge::backends::scripted
