// The torch backend: loads Hugging Face model folders through the family
// table (models/families.hpp).
#pragma once

#include "imgjudge/backend.hpp"

namespace imgjudge::backends::torch {

/// Loads config.model_dir as a VisionLanguageModel (a text-only LLM loads too,
/// for the constitution tools) and, if given, config.relevance_model_dir as a
/// RelevanceModel. The family is chosen by each folder's config.json
/// "model_type". Throws Error(Unsupported) for a family this build does not
/// implement, naming the ones it does.
Models load_models(const ModelConfig& config);

}  // namespace imgjudge::backends::torch
