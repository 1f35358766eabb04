// The VisionLanguageModel of the Qwen2-VL / Qwen2.5-VL families.
#pragma once

#include <memory>

#include "imgjudge/backend.hpp"

namespace imgjudge::backends::torch {

/// Loads config.model_dir (model_type qwen2_vl or qwen2_5_vl: config.json,
/// safetensors, tokenizer files, preprocessor_config.json).
///
/// Prompts follow the Qwen2-VL chat template: the default system turn, then
/// one user turn `<|vision_start|><|image_pad|>xN<|vision_end|>{question}`,
/// then `<|im_start|>assistant\n`; the answer is read from the first assistant
/// token. prepare() runs the vision tower and prefills everything up to
/// <|vision_end|> once; score() runs all questions as one right-padded batch
/// that attends to that prefix KV cache without copying it, with the LM head
/// only at each question's last token. score(nullptr, ...) removes the image
/// span (m0) and shares the common token head of the questions instead.
///
/// Answer tokens (AnswerWords::spellings): exact, the word's own token; or
/// any, every single-token spelling ("Yes", " Yes", "yes", " yes") summed.
std::shared_ptr<const VisionLanguageModel> load_qwen_vl_judge(const ModelConfig& config);

}  // namespace imgjudge::backends::torch
