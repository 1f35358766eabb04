// The torch backend: loads Hugging Face model folders into src/models families.
#pragma once

#include <string>
#include <vector>

#include "imgjudge/backend.hpp"

namespace imgjudge::backends::torch {

/// Loads config.model_dir as a VisionLanguageModel and, if given,
/// config.relevance_model_dir as a RelevanceModel. The family is chosen by the
/// folder's config.json "model_type". Throws Error(Unsupported) for a family
/// this build does not implement, naming the ones it does.
Models load_models(const ModelConfig& config);

/// model_type values of config.json this build can load, per role.
std::vector<std::string> supported_vlm_model_types();
std::vector<std::string> supported_relevance_model_types();

/// Reads "model_type" from <dir>/config.json (Error(InvalidModel) if absent).
std::string read_model_type(const std::string& dir);

}  // namespace imgjudge::backends::torch
