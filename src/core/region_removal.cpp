#include "core/region_removal.hpp"

namespace imgjudge::core {

std::optional<ChosenRegion> choose_region(const std::vector<std::vector<Detection>>& found, const Image& image,
                                          const Thresholds& thresholds) {
  std::optional<ChosenRegion> best;
  for (std::size_t k = 0; k < found.size(); ++k) {
    for (const Detection& detection : found[k]) {
      if (detection.confidence > thresholds.locator_confidence && detection.box.area() > 0 &&
          (!best || detection.confidence > best->detection.confidence)) {
        best = ChosenRegion{k, detection, 0, false};
      }
    }
  }
  if (!best) return best;
  const double image_area = double(image.width) * double(image.height);
  best->area_fraction = image_area > 0 ? best->detection.box.area() / image_area : 0.0;
  best->crop = best->area_fraction < thresholds.small_region_fraction;
  return best;
}

}  // namespace imgjudge::core
