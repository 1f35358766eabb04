// The image-processor half of a golden fixture (preprocess.safetensors): the
// uint8 input image(s) and what the HF image processor made of them in one
// call. One check per image_processor_type, beside the family's processor.
#pragma once

#include <string>
#include <vector>

#include "devtools/fixture_runners.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::devtools {

/// Runs our processor for `processor_config` (a preprocessor_config.json) on
/// `images` as one call and returns its outputs under the HF names
/// (pixel_values, image_grid_thw, image_sizes, ...).
using PreprocessCheck = NamedTensors (*)(const std::string& processor_config, const std::vector<Image>& images);

/// The check of an image_processor_type, or null. A family whose processing
/// settings are in its config.json (InternVL) is found by its model_type,
/// and its check reads that config.json.
PreprocessCheck find_preprocess_check(const std::string& image_processor_type);

/// The fixture's input images: `image`, or `image_0`, `image_1`, ... (uint8
/// [H, W, 3]). Error(InvalidModel) naming `where` when there is none or one is
/// malformed.
std::vector<Image> fixture_images(const NamedTensors& preprocess, const std::string& where);

}  // namespace imgjudge::devtools
