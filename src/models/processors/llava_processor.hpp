// The image processors of the LLaVA families (transformers 4.50.3):
//   llava            CLIPImageProcessor: one tile (shortest edge, center crop)
//   llava_next       LlavaNextImageProcessor: "anyres": the image resized into
//                    the best of image_grid_pinpoints, zero-padded, cut into
//                    tiles; the whole image squashed to one base tile first;
//                    each tile through CLIP's pipeline
//   llava_onevision  LlavaOnevisionImageProcessor: the same tiling, each tile
//                    resized straight to size (no crop)
// and the geometry the models share with them (best resolution, grid shape,
// unpadding), with Python's rounding where HF relies on it.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "image/preprocess.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::models {

/// [height, width] candidates of anyres tiling.
using GridPinpoints = std::vector<std::array<std::int64_t, 2>>;

/// image_grid_pinpoints of a config (JSON list of [height, width]); Error(InvalidModel) naming `where`.
GridPinpoints read_grid_pinpoints(const nlohmann::json& value, const std::string& where);

struct LlavaImageProcessorConfig {
  enum class Kind { Clip, Next, OneVision };
  Kind kind = Kind::Clip;
  image::ImageProcessorConfig tile;  ///< What every tile goes through (resize, crop, rescale, normalize).
  GridPinpoints pinpoints;           ///< Next, OneVision.
  static LlavaImageProcessorConfig from_file(const std::string& path);
  /// The tile side: crop_size (Next, CLIP) or size.height (OneVision).
  std::int64_t tile_size() const;
};

struct LlavaProcessedImage {
  at::Tensor pixel_values;  ///< [tiles, 3, S, S] float32: the base tile first, then the grid row-major.
  std::int64_t height = 0, width = 0;  ///< The image as given (HF image_sizes).
};

/// What the family's HF processor gives for one image.
LlavaProcessedImage llava_preprocess(const Image& image, const LlavaImageProcessorConfig& config);

/// HF select_best_resolution: the pinpoint that keeps the most of the image's
/// resolution, then wastes the least; the first on ties. {height, width}.
std::array<std::int64_t, 2> select_best_resolution(std::int64_t height, std::int64_t width, const GridPinpoints& pinpoints);

/// The size the image is resized to inside `target` before padding (HF _get_patch_output_size).
std::array<std::int64_t, 2> patch_output_size(std::int64_t height, std::int64_t width, std::array<std::int64_t, 2> target);

/// HF unpad_image on a feature map [C, H, W] of an image of `height` x `width`:
/// the rows (or columns) that were padding are cut off.
at::Tensor unpad_image(const at::Tensor& features, std::int64_t height, std::int64_t width);

/// Python's round(x, 7) (correctly rounded to 7 decimals).
double python_round7(double x);
/// Python's float floor division a // b.
double python_floordiv(double a, double b);

}  // namespace imgjudge::models
