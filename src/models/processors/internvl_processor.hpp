// The image processing of InternVL2 / InternVL2.5 (the model card's
// load_image; internvl/train/dataset.py dynamic_preprocess + build_transform),
// whose settings live in config.json, not in a preprocessor_config.json:
//
//   the grid (columns x rows) whose aspect ratio is closest to the image's,
//   among all grids of min..max tiles; the image resized to that many tiles
//   (PIL bicubic) and cut into tiles row-major; when there is more than one
//   tile, a thumbnail of the whole image last; each tile to float, /255,
//   ImageNet mean/std.
//
// Each tile becomes (tile / patch)^2 * downsample_ratio^2 image tokens.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

#include "imgjudge/image.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

struct InternVLProcessorConfig {
  std::int64_t tile_size = 448;  ///< force_image_size, else vision_config.image_size.
  bool dynamic = false;          ///< dynamic_image_size: tiling (else one tile of the whole image).
  std::int64_t min_tiles = 1;    ///< min_dynamic_patch
  std::int64_t max_tiles = 6;    ///< max_dynamic_patch
  bool use_thumbnail = false;    ///< A thumbnail tile after the grid when it has more than one tile.

  /// The settings of an InternVLChatConfig config.json (its class defaults
  /// for absent keys). Error(InvalidModel) naming the key for bad values.
  static InternVLProcessorConfig from_config(const runtime::HfConfig& config);
};

/// {columns, rows} of every candidate grid of min..max tiles, in the order the
/// reference tries them: sorted (stably) by tile count, equal counts in the
/// iteration order of the CPython set it builds them in (which decides exact
/// ties; this emulates CPython 3.8+'s tuple hash and set table).
std::vector<std::array<std::int64_t, 2>> internvl_candidate_grids(std::int64_t min_tiles, std::int64_t max_tiles);

/// find_closest_aspect_ratio: the {columns, rows} grid for a width x height
/// image (Error(InvalidArgument) when min..max holds no grid).
std::array<std::int64_t, 2> internvl_tile_grid(std::int64_t width, std::int64_t height,
                                               const InternVLProcessorConfig& config);

/// pixel_values [tiles, 3, T, T] float32: the grid's tiles row-major, then the
/// thumbnail (when used); one tile when tiling is off.
at::Tensor internvl_preprocess(const Image& image, const InternVLProcessorConfig& config);

}  // namespace imgjudge::models
