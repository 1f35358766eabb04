// RelevanceModel over CLIP / SigLIP checkpoints (src/models), with the
// folder's own tokenizer and preprocessor_config.json.
#pragma once

#include <memory>
#include <string>

#include "imgjudge/backend.hpp"

namespace imgjudge::backends::torch {

/// Loads a Hugging Face CLIP folder (model_type "clip"). `config` supplies
/// device, dtype and threads. Throws Error(InvalidModel) for a broken folder.
std::shared_ptr<const RelevanceModel> load_clip_relevance_model(const std::string& dir, const ModelConfig& config);
/// The same for SigLIP (model_type "siglip"); texts are padded to max_length.
std::shared_ptr<const RelevanceModel> load_siglip_relevance_model(const std::string& dir, const ModelConfig& config);

}  // namespace imgjudge::backends::torch
