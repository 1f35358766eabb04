// imgjudge: images, and decoding them from untrusted bytes.
//
// An Image is always 8-bit RGB, row-major, tightly packed (stride = 3 * width).
// Decoding applies EXIF orientation and composites alpha onto a background, so
// every model sees the picture as a person would.
#pragma once

#include "imgjudge/export.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace imgjudge {

/// A decoded 8-bit RGB image.
struct IMGJUDGE_API Image {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;  ///< height * width * 3 bytes, row-major, RGB.

  bool empty() const noexcept { return width == 0 || height == 0; }

  /// Copies caller pixels (RGB, 3 bytes per pixel) whose rows are `stride` bytes
  /// apart (stride >= 3 * width). Throws Error(InvalidArgument) on bad sizes.
  static Image from_rgb(const std::uint8_t* pixels, int width, int height, std::size_t stride);

  /// SHA-256 (hex) of the dimensions and pixels: identifies the picture in
  /// verdicts and keys any per-image cache. Exactly: SHA-256 over the ASCII
  /// header "<width>x<height>\n" (e.g. "640x480\n") followed by the rgb bytes.
  std::string content_hash() const;
};

/// Limits applied while decoding untrusted bytes. Exceeding one is
/// Error(LimitExceeded); the limit is checked before any pixel buffer is allocated.
struct ImageLimits {
  std::size_t max_encoded_bytes = 64u << 20;  ///< 64 MiB of input.
  int max_width = 16384;
  int max_height = 16384;
  std::uint64_t max_pixels = 64ull << 20;     ///< 64 Mpx: guards decompression bombs.
};

enum class ImageFormat { Unknown, Jpeg, Png, WebP, Gif };

/// Stable lower-case name: "jpeg", "png", "webp", "gif", "unknown".
IMGJUDGE_API const char* image_format_name(ImageFormat format) noexcept;

/// Which frames of an animated GIF or WebP are judged (docs/images.md): the
/// first, the last and evenly spaced ones between, at most `max_frames`, and
/// fewer when their pixels together would pass `max_total_pixels`. Judging only
/// the first frame would let an animation hide anything after it.
struct AnimationLimits {
  int max_frames = 8;
  std::uint64_t max_total_pixels = 64ull << 20;
  /// Frames a file may hold at all (each is decoded up to the last one judged);
  /// more is Error(LimitExceeded), never a silent cut.
  int max_file_frames = 10000;
  /// Pixels of all the file's frames together (what decoding up to the last
  /// judged frame may cost); more is Error(LimitExceeded).
  std::uint64_t max_file_pixels = 1ull << 30;
};

struct DecodeOptions {
  ImageLimits limits;
  AnimationLimits animation;
  /// Transparent pixels are composited onto this colour (default white).
  /// Alpha is straight (not premultiplied): per channel,
  /// out = (c * a + bg * (255 - a) + 127) / 255 in integers (round to nearest).
  std::array<std::uint8_t, 3> alpha_background{255, 255, 255};
  /// Rotate/flip JPEG (and WebP/PNG eXIf) images as their EXIF orientation says.
  bool apply_exif_orientation = true;
};

/// What decoding found, for diagnostics (`imgjudge inspect-image`).
struct DecodeInfo {
  ImageFormat format = ImageFormat::Unknown;
  int encoded_width = 0;   ///< As stored, before orientation.
  int encoded_height = 0;
  int exif_orientation = 1;  ///< 1..8; 1 means upright.
  bool had_alpha = false;
  int bit_depth = 8;
  std::string color_model;  ///< "rgb", "gray", "palette", "cmyk", "ycck".
};

/// Sniffs the format from the first bytes (magic numbers), never the file name.
IMGJUDGE_API ImageFormat detect_image_format(const void* bytes, std::size_t size) noexcept;

/// Decodes JPEG, PNG, WebP or GIF (first frame). Throws Error(InvalidImage) for
/// corrupt or truncated data and Error(LimitExceeded) for over-limit input.
IMGJUDGE_API Image decode_image(const void* bytes, std::size_t size, const DecodeOptions& options = {},
                   DecodeInfo* info = nullptr);

/// The frames of an image that are judged: one for a still image; for an
/// animated GIF or WebP the frames options.animation selects, each composited
/// on the canvas as a browser shows it at that frame.
struct ImageFrames {
  std::vector<Image> frames;  ///< In order.
  std::vector<int> indices;   ///< Their 0-based frame numbers in the file.
  int frame_count = 1;        ///< Frames in the file.
};

/// decode_image() for every format, keeping the frames an animation must be judged by.
IMGJUDGE_API ImageFrames decode_image_frames(const void* bytes, std::size_t size, const DecodeOptions& options = {},
                                             DecodeInfo* info = nullptr);
IMGJUDGE_API ImageFrames load_image_frames(const std::string& path, const DecodeOptions& options = {},
                                           DecodeInfo* info = nullptr);

/// The frame numbers judged of an animation of `frame_count` frames of
/// `width` x `height` pixels under `limits`: first, last, evenly spaced.
IMGJUDGE_API std::vector<int> sample_frames(int frame_count, int width, int height, const AnimationLimits& limits);

/// Reads a file (at most limits.max_encoded_bytes) and decodes it.
IMGJUDGE_API Image load_image_file(const std::string& path, const DecodeOptions& options = {},
                      DecodeInfo* info = nullptr);

/// Encodes as PNG (lossless); used by tools and tests.
IMGJUDGE_API std::vector<std::uint8_t> encode_png(const Image& image);

/// An axis-aligned box in pixel coordinates, x0 <= x1, y0 <= y1.
struct Box {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float area() const noexcept { return (x1 > x0 && y1 > y0) ? (x1 - x0) * (y1 - y0) : 0.f; }
};

/// Returns a copy of `image` with `box` (clipped to the image) filled with
/// `fill`: the "non-central region" test of CLUE strategy 2 removes an object
/// this way.
///
/// Box coordinates are rounded outward to whole pixels everywhere: x0, y0 down
/// (floor), x1, y1 up (ceil), so every pixel the box touches is included; a
/// coordinate within 0.001 of an integer counts as that integer. Throws
/// Error(InvalidArgument) for an empty image, a non-finite coordinate, or
/// x1 < x0 / y1 < y0. A box of zero area or outside the image erases nothing.
IMGJUDGE_API Image erase_region(const Image& image, const Box& box,
                   std::array<std::uint8_t, 3> fill = {128, 128, 128});

/// Returns the part of `image` inside `box`, grown by `margin` (a fraction of the
/// box's width/height on each side) and clipped to the image. Never empty.
/// Rounds outward like erase_region(); a box of zero area or outside the image
/// yields the nearest 1-pixel-wide/high strip inside it. Throws
/// Error(InvalidArgument) for the cases erase_region() rejects and for a
/// negative or non-finite margin.
IMGJUDGE_API Image crop_region(const Image& image, const Box& box, float margin = 0.1f);

}  // namespace imgjudge
