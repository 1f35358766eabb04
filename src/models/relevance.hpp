// RelevanceModel over CLIP / SigLIP checkpoints (src/models), with the
// folder's own tokenizer and preprocessor_config.json.
#pragma once

#include <memory>
#include <string>

#include "imgjudge/backend.hpp"
#include "models/multimodal.hpp"  // LoadOptions

namespace imgjudge::models {

/// Loads a Hugging Face CLIP folder (model_type "clip") in `options.target`.
/// Throws Error(InvalidModel) for a broken folder.
std::shared_ptr<const RelevanceModel> load_clip_relevance_model(const std::string& dir, const LoadOptions& options);
/// The same for SigLIP (model_type "siglip"); texts are padded to max_length.
std::shared_ptr<const RelevanceModel> load_siglip_relevance_model(const std::string& dir, const LoadOptions& options);

}  // namespace imgjudge::models
