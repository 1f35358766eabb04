// The golden-fixture runner shared by the CLIP-like dual encoders (CLIP,
// SigLIP): both towers on <dir>/inputs.safetensors, outputs named as
// transformers names them. Included by those families' .cpp files only.
#pragma once

#include <string>

#include <ATen/ATen.h>

#include "models/fixture_registry.hpp"
#include "runtime/nn.hpp"

namespace imgjudge::models {

/// `Model` has encode_text(ids, mask, keep_hidden_states), encode_image(pixels,
/// keep_hidden_states) returning {last_hidden_state, pooled, features,
/// hidden_states}, and logits_per_image(image_embeds, text_embeds). A vision
/// tower without a pooling head (SigLIP's vision_use_head = false) leaves
/// `pooled` undefined, and the pooled outputs are then absent.
template <class Model>
NamedTensors run_dual_encoder_fixture(const Model& model, const std::string& dir) {
  const NamedTensors inputs = read_fixture_inputs(dir);
  const auto text = model.encode_text(fixture_input(inputs, "input_ids", dir),
                                      inputs.count("attention_mask") ? inputs.at("attention_mask") : at::Tensor(),
                                      /*keep_hidden_states=*/true);
  const auto vision = model.encode_image(fixture_input(inputs, "pixel_values", dir), /*keep_hidden_states=*/true);
  NamedTensors out = {
      {"text_hidden_states", at::stack(text.hidden_states)},
      {"text_last_hidden_state", text.last_hidden_state},
      {"text_pooler_output", text.pooled},
      {"text_features", text.features},
      {"text_embeds", runtime::nn::l2_normalize(text.features)},
      {"vision_hidden_states", at::stack(vision.hidden_states)},
      {"vision_last_hidden_state", vision.last_hidden_state},
  };
  if (vision.pooled.defined()) {
    out["vision_pooler_output"] = vision.pooled;
    out["image_features"] = vision.features;
    out["image_embeds"] = runtime::nn::l2_normalize(vision.features);
    out["logits_per_image"] = model.logits_per_image(out["image_embeds"], out["text_embeds"]);
  }
  return out;
}

}  // namespace imgjudge::models
