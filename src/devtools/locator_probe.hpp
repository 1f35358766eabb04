// Times an OWLv2 / OWL-ViT locator through the Locator interface the Judge
// calls (models/owl.cpp): embedding the constitution's object phrases (once
// per Judge), encoding one image (once per image that has an uncertain item
// with objects: the image processor plus the ViT over every patch), and
// locating a batch of phrases in an encoded image (per item). Counts the
// vision tower's FLOPs so a benchmark can set it beside the same-shape GEMM.
// Torch-free header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "devtools/vlm_probe.hpp"  // ComponentTiming
#include "imgjudge/image.hpp"

namespace imgjudge::devtools {

struct LocatorComponents {
  std::string model_type;
  std::int64_t image_size = 0, patch_size = 0;
  std::int64_t vision_width = 0, vision_intermediate = 0;
  double load_seconds = 0;
  ComponentTiming preprocess;     ///< the image processor alone (pad, anti-aliased resize, normalize)
  ComponentTiming encode;         ///< Locator::prepare: preprocess + ViT + heads' image half; flops of the tower
  ComponentTiming embed_phrases;  ///< Locator::embed_queries of every phrase at once; tokens = phrases
  ComponentTiming locate;         ///< Locator::locate of every phrase in the encoded image; tokens = phrases
};

/// Loads the locator folder `model_dir` in `dtype` and times each component
/// on `image` with `phrases` (median of `repetitions` runs after a warm-up).
LocatorComponents probe_locator(const std::string& model_dir, const std::string& dtype, const Image& image,
                                const std::vector<std::string>& phrases, int repetitions = 3);

}  // namespace imgjudge::devtools
