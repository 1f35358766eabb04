// Resampling of 8-bit RGB images that reproduces Pillow's Image.resize()
// bit for bit (libImaging/Resample.c and the NEAREST affine path of
// Geometry.c). Hugging Face image processors resize uint8 images through PIL,
// so matching PIL is what makes our pixel_values match theirs.
//
// Pillow semantics reproduced here:
//  * separable convolution, horizontal pass first (only over the source rows
//    the vertical pass will read), then vertical;
//  * antialiasing: when downscaling by `scale`, the filter is stretched so its
//    support is `support * scale` source pixels;
//  * coefficients computed in double, normalised to sum 1, then converted to
//    fixed point with 22 fractional bits (PRECISION_BITS = 32 - 8 - 2),
//    rounded half away from zero; accumulation in int32 starting from 0.5,
//    result clipped to 0..255;
//  * an optional source box (float coordinates) selects the region to resample;
//  * NEAREST uses PIL's affine scale: source x = floor(x0 + (i + 0.5) * scale),
//    with the position accumulated by repeated addition as PIL does.
// Not reproduced: Pillow 12.2+'s vertical-first order for images more than 100
// times taller than wide, and `reducing_gap` (HF never passes it).
#pragma once

#include "imgjudge/image.hpp"

namespace imgjudge::image {

/// Resampling filters, numbered as PIL.Image.Resampling (and so as the
/// "resample" field of HF preprocessor_config.json).
enum class Resample : int {
  Nearest = 0,
  Lanczos = 1,
  Bilinear = 2,
  Bicubic = 3,  ///< Keys cubic, a = -0.5.
  Box = 4,
  Hamming = 5,
};

/// "nearest", "lanczos", "bilinear", "bicubic", "box", "hamming".
const char* resample_name(Resample filter) noexcept;

/// Maps PIL's integer code (0..5) to a filter; throws Error(InvalidArgument)
/// naming the value otherwise.
Resample resample_from_pil_code(int code);

/// Resizes the whole image to out_width x out_height.
/// Throws Error(InvalidArgument) for an empty image or a size < 1.
Image resize(const Image& image, int out_width, int out_height, Resample filter);

/// Resizes the region `source_box` of the image (Pillow's `box` argument:
/// float pixel coordinates, 0 <= x0 <= x1 <= width, same for y).
Image resize(const Image& image, int out_width, int out_height, Resample filter,
             const Box& source_box);

}  // namespace imgjudge::image
