// CLUE strategy 2's choice of region, shared by the Judge and `imgjudge score`:
// of everything the locator found for an item's object phrases, the single
// most confident box above the threshold, and whether it is small enough to be
// judged on its crop (the paper's 1% rule) instead of being erased.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::core {

struct ChosenRegion {
  std::size_t query = 0;  ///< Index into the `found` list: which phrase the box belongs to.
  Detection detection;
  double area_fraction = 0;  ///< Of the whole image.
  bool crop = false;         ///< Under small_region_fraction: judge the crop, not the erased image.
};

/// `found[k]`: the locator's detections of phrase k (Locator::locate). Ties go
/// to the earlier phrase and the earlier detection; boxes of zero area and
/// confidences not strictly above `thresholds.locator_confidence` are skipped.
std::optional<ChosenRegion> choose_region(const std::vector<std::vector<Detection>>& found, const Image& image,
                                          const Thresholds& thresholds);

}  // namespace imgjudge::core
