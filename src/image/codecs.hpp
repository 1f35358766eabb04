// Internal interface between decode_image() and the per-format decoders.
//
// Each decoder turns untrusted bytes into 8-bit RGB or RGBA pixels exactly as
// stored (no orientation applied, alpha straight, not premultiplied). The
// caller (image.cpp) then composites alpha and applies EXIF orientation, so
// those rules live in one place for every format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "imgjudge/image.hpp"

namespace imgjudge::image {

/// Decoded pixels before alpha compositing and orientation.
struct RawPixels {
  int width = 0;
  int height = 0;
  int channels = 3;                 ///< 3 (RGB) or 4 (RGBA, straight alpha).
  std::vector<std::uint8_t> data;   ///< height * width * channels bytes, row-major.
};

/// What a decoder reports besides the pixels.
struct CodecResult {
  RawPixels pixels;
  int exif_orientation = 1;  ///< From the format's EXIF block; 1 if absent or unreadable.
  bool had_alpha = false;    ///< The image carries transparency (alpha channel or tRNS/GCB).
  int bit_depth = 8;         ///< Bits per sample as stored.
  std::string color_model;   ///< "rgb", "gray", "palette", "cmyk", "ycck".
};

/// Throws Error(LimitExceeded) naming the format, the limit and the values when
/// the stored dimensions break `limits`, and Error(InvalidImage) for zero or
/// negative dimensions. Every decoder calls this after reading the header and
/// BEFORE allocating any pixel buffer.
void check_dimensions(const char* format, std::int64_t width, std::int64_t height,
                      const ImageLimits& limits);

/// Allocates a zeroed RGB/RGBA buffer for checked dimensions.
RawPixels allocate_pixels(int width, int height, int channels);

CodecResult decode_jpeg(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits);
CodecResult decode_png(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits);
CodecResult decode_webp(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits);
CodecResult decode_gif(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits);

/// The selected frames of an animation, each the whole canvas (RGBA) as shown at that frame.
struct CodecFrames {
  std::vector<CodecResult> frames;
  std::vector<int> indices;
  int frame_count = 0;
};
/// GIF: every frame composited with its disposal method (none/keep, restore to
/// background = transparent, restore to previous) and transparent index.
CodecFrames decode_gif_frames(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits,
                              const AnimationLimits& animation);
/// True for a WebP with the animation flag (decode_webp refuses those).
bool webp_is_animated(const std::uint8_t* bytes, std::size_t size);
/// Animated WebP through libwebpdemux's WebPAnimDecoder (blending and disposal as the format says).
CodecFrames decode_webp_frames(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits,
                               const AnimationLimits& animation);

}  // namespace imgjudge::image
