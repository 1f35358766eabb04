// Image basics and decode_image(): format sniffing, limits, alpha compositing,
// EXIF orientation, and the box operations used by CLUE strategy 2.
#include "imgjudge/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "image/codecs.hpp"
#include "image/exif.hpp"
#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/sha256.hpp"

namespace imgjudge {
namespace image {

void check_dimensions(const char* format, std::int64_t width, std::int64_t height,
                      const ImageLimits& limits) {
  if (width <= 0 || height <= 0) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("{}: invalid dimensions {}x{}", format, width, height));
  }
  if (width > limits.max_width) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("{}: width {} exceeds the limit max_width={}", format, width,
                            limits.max_width));
  }
  if (height > limits.max_height) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("{}: height {} exceeds the limit max_height={}", format, height,
                            limits.max_height));
  }
  // Both factors are below 2^31 here, so the product cannot overflow.
  const std::uint64_t pixels = std::uint64_t(width) * std::uint64_t(height);
  if (pixels > limits.max_pixels) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("{}: {}x{} = {} pixels exceeds the limit max_pixels={}", format, width,
                            height, pixels, limits.max_pixels));
  }
}

RawPixels allocate_pixels(int width, int height, int channels) {
  RawPixels pixels;
  pixels.width = width;
  pixels.height = height;
  pixels.channels = channels;
  try {
    pixels.data.assign(std::size_t(width) * std::size_t(height) * std::size_t(channels), 0);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cannot allocate {}x{}x{} pixel buffer", width, height, channels));
  }
  return pixels;
}

namespace {

// Straight (non-premultiplied) alpha over an opaque background, rounded to
// nearest: out = (c * a + bg * (255 - a) + 127) / 255.
// Takes the pixels by value so opaque RGB moves through without a copy.
Image composite_onto(RawPixels pixels, const std::array<std::uint8_t, 3>& background) {
  Image image;
  image.width = pixels.width;
  image.height = pixels.height;
  const std::size_t count = std::size_t(pixels.width) * pixels.height;
  if (pixels.channels == 3) {
    image.rgb = std::move(pixels.data);
    return image;
  }
  image.rgb.resize(count * 3);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* in = &pixels.data[i * 4];
    const unsigned alpha = in[3];
    for (int c = 0; c < 3; ++c) {
      image.rgb[i * 3 + c] =
          static_cast<std::uint8_t>((in[c] * alpha + background[c] * (255 - alpha) + 127) / 255);
    }
  }
  return image;
}

std::string leading_bytes_hex(const std::uint8_t* bytes, std::size_t size) {
  std::string hex;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 8); ++i) {
    hex += fmt::format("{}{:02x}", i == 0 ? "" : " ", bytes[i]);
  }
  return hex;
}

// Rounds a box outward to whole pixels (floor of the low edges, ceil of the
// high edges) and clips it to [0, limit]. A coordinate within kSnap of an
// integer counts as that integer, so float noise (5 - 0.1f * 10 = 3.99999998)
// never grows a box by a whole pixel. Done in double so huge coordinates clamp
// instead of overflowing an int.
constexpr double kSnap = 1e-3;
double snapped(double value) {
  const double nearest = std::round(value);
  return std::fabs(value - nearest) < kSnap ? nearest : value;
}
int floor_clamped(double value, int limit) {
  return static_cast<int>(std::clamp(std::floor(snapped(value)), 0.0, double(limit)));
}
int ceil_clamped(double value, int limit) {
  return static_cast<int>(std::clamp(std::ceil(snapped(value)), 0.0, double(limit)));
}

void check_box(const char* function, const Image& image, const Box& box) {
  if (image.empty() || image.rgb.size() != std::size_t(image.width) * image.height * 3) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: the image is empty or its pixel buffer does not match {}x{}",
                            function, image.width, image.height));
  }
  if (!std::isfinite(box.x0) || !std::isfinite(box.y0) || !std::isfinite(box.x1) ||
      !std::isfinite(box.y1) || box.x1 < box.x0 || box.y1 < box.y0) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: invalid box ({}, {})-({}, {}): need finite coordinates, x0 <= x1 and y0 <= y1",
                            function, box.x0, box.y0, box.x1, box.y1));
  }
}

// Decodes bytes of a known format, then composites alpha and applies orientation.
Image decode_detected(const std::uint8_t* data, std::size_t size, ImageFormat format,
                      const DecodeOptions& options, DecodeInfo* info) {
  CodecResult decoded;
  switch (format) {
    case ImageFormat::Jpeg: decoded = decode_jpeg(data, size, options.limits); break;
    case ImageFormat::Png: decoded = decode_png(data, size, options.limits); break;
    case ImageFormat::WebP: decoded = decode_webp(data, size, options.limits); break;
    case ImageFormat::Gif: decoded = decode_gif(data, size, options.limits); break;
    case ImageFormat::Unknown:
      throw Error(ErrorCode::InvalidImage,
                  fmt::format("unknown image format (not JPEG, PNG, WebP or GIF; first bytes: {})",
                              leading_bytes_hex(data, size)));
  }

  const int stored_width = decoded.pixels.width;
  const int stored_height = decoded.pixels.height;
  Image image = composite_onto(std::move(decoded.pixels), options.alpha_background);
  const int orientation = options.apply_exif_orientation ? decoded.exif_orientation : 1;
  if (orientation != 1) image = apply_exif_orientation(image, orientation);
  if (info != nullptr) {
    info->format = format;
    info->encoded_width = stored_width;
    info->encoded_height = stored_height;
    info->exif_orientation = decoded.exif_orientation;
    info->had_alpha = decoded.had_alpha;
    info->bit_depth = decoded.bit_depth;
    info->color_model = decoded.color_model;
  }
  return image;
}

// The judged frames of bytes of a known format: an animation's selected
// frames, or the one image of anything else.
ImageFrames decode_frames_detected(const std::uint8_t* data, std::size_t size, ImageFormat format,
                                   const DecodeOptions& options, DecodeInfo* info) {
  CodecFrames decoded;
  if (format == ImageFormat::Gif) {
    decoded = decode_gif_frames(data, size, options.limits, options.animation);
  } else if (format == ImageFormat::WebP && webp_is_animated(data, size)) {
    decoded = decode_webp_frames(data, size, options.limits, options.animation);
  } else {
    ImageFrames still;
    still.frames.push_back(decode_detected(data, size, format, options, info));
    still.indices.push_back(0);
    return still;
  }
  ImageFrames out;
  out.frame_count = decoded.frame_count;
  out.indices = decoded.indices;
  if (info != nullptr && !decoded.frames.empty()) {
    info->format = format;
    info->encoded_width = decoded.frames.front().pixels.width;
    info->encoded_height = decoded.frames.front().pixels.height;
    info->exif_orientation = 1;
    info->had_alpha = decoded.frames.front().had_alpha;
    info->bit_depth = decoded.frames.front().bit_depth;
    info->color_model = decoded.frames.front().color_model;
  }
  for (CodecResult& frame : decoded.frames) {
    out.frames.push_back(composite_onto(std::move(frame.pixels), options.alpha_background));
  }
  return out;
}

}  // namespace
}  // namespace image

std::vector<int> sample_frames(int frame_count, int width, int height, const AnimationLimits& limits) {
  if (frame_count <= 0) return {};
  const std::uint64_t frame_pixels = std::max<std::uint64_t>(1, std::uint64_t(std::max(width, 1)) * std::max(height, 1));
  std::uint64_t count = std::min<std::uint64_t>(std::uint64_t(frame_count), std::uint64_t(std::max(limits.max_frames, 1)));
  count = std::max<std::uint64_t>(1, std::min(count, limits.max_total_pixels / frame_pixels));
  std::vector<int> indices;
  for (std::uint64_t i = 0; i < count; ++i) {
    // First and last included, the rest evenly spaced (rounded to the nearest frame).
    const std::uint64_t index =
        count == 1 ? 0 : (i * std::uint64_t(frame_count - 1) * 2 + (count - 1)) / (2 * (count - 1));
    if (indices.empty() || indices.back() != static_cast<int>(index)) indices.push_back(static_cast<int>(index));
  }
  return indices;
}

Image Image::from_rgb(const std::uint8_t* pixels, int width, int height, std::size_t stride) {
  if (pixels == nullptr) throw Error(ErrorCode::InvalidArgument, "Image::from_rgb: pixels is null");
  if (width <= 0 || height <= 0) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Image::from_rgb: invalid size {}x{}", width, height));
  }
  const std::size_t row_bytes = std::size_t(width) * 3;
  if (stride < row_bytes) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Image::from_rgb: stride {} is smaller than 3 * width = {}", stride,
                            row_bytes));
  }
  // The last row starts at (height - 1) * stride: if that wraps around, the
  // caller's buffer cannot be that large and the copy would read anywhere.
  const std::size_t max_size = std::numeric_limits<std::size_t>::max();
  if (height > 1 && stride > (max_size - row_bytes) / std::size_t(height - 1)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("Image::from_rgb: stride {} x {} rows overflows the address space", stride, height));
  }
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(row_bytes * std::size_t(height));
  for (int y = 0; y < height; ++y) {
    std::memcpy(&image.rgb[std::size_t(y) * row_bytes], pixels + std::size_t(y) * stride, row_bytes);
  }
  return image;
}

// SHA-256 of the ASCII header "<width>x<height>\n" followed by the RGB bytes,
// so two pictures with the same bytes but different shapes never collide.
std::string Image::content_hash() const {
  util::Sha256 hash;
  hash.update(fmt::format("{}x{}\n", width, height));
  hash.update(rgb.data(), rgb.size());
  return hash.hex_digest();
}

const char* image_format_name(ImageFormat format) noexcept {
  switch (format) {
    case ImageFormat::Jpeg: return "jpeg";
    case ImageFormat::Png: return "png";
    case ImageFormat::WebP: return "webp";
    case ImageFormat::Gif: return "gif";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

ImageFormat detect_image_format(const void* bytes, std::size_t size) noexcept {
  if (bytes == nullptr) return ImageFormat::Unknown;
  const auto* b = static_cast<const std::uint8_t*>(bytes);
  auto starts_with = [&](std::size_t offset, const char* magic, std::size_t length) {
    return size >= offset + length && std::memcmp(b + offset, magic, length) == 0;
  };
  if (starts_with(0, "\xFF\xD8\xFF", 3)) return ImageFormat::Jpeg;
  if (starts_with(0, "\x89PNG\r\n\x1A\n", 8)) return ImageFormat::Png;
  if (starts_with(0, "GIF87a", 6) || starts_with(0, "GIF89a", 6)) return ImageFormat::Gif;
  if (starts_with(0, "RIFF", 4) && starts_with(8, "WEBP", 4)) return ImageFormat::WebP;
  return ImageFormat::Unknown;
}

namespace image {
namespace {

// The checks every entry point makes on untrusted bytes, then `decode(data,
// format)` with an allocation failure turned into OutOfMemory.
template <typename Decode>
auto decode_checked(const char* function, const void* bytes, std::size_t size, const DecodeOptions& options,
                    Decode&& decode) {
  if (bytes == nullptr && size != 0) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: bytes is null", function));
  }
  if (size == 0) throw Error(ErrorCode::InvalidImage, "empty input (0 bytes)");
  if (size > options.limits.max_encoded_bytes) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("encoded size {} bytes exceeds the limit max_encoded_bytes={}", size,
                            options.limits.max_encoded_bytes));
  }
  const auto* data = static_cast<const std::uint8_t*>(bytes);
  const ImageFormat format = detect_image_format(data, size);
  try {
    return decode(data, format);
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("{}: out of memory while decoding", image_format_name(format)));
  }
}

}  // namespace
}  // namespace image

Image decode_image(const void* bytes, std::size_t size, const DecodeOptions& options,
                   DecodeInfo* info) {
  return image::decode_checked("decode_image", bytes, size, options, [&](const std::uint8_t* data, ImageFormat format) {
    return image::decode_detected(data, size, format, options, info);
  });
}

ImageFrames decode_image_frames(const void* bytes, std::size_t size, const DecodeOptions& options, DecodeInfo* info) {
  return image::decode_checked("decode_image_frames", bytes, size, options,
                               [&](const std::uint8_t* data, ImageFormat format) {
                                 return image::decode_frames_detected(data, size, format, options, info);
                               });
}

ImageFrames load_image_frames(const std::string& path, const DecodeOptions& options, DecodeInfo* info) {
  const std::vector<std::uint8_t> bytes = util::read_file_bytes(path, options.limits.max_encoded_bytes);
  try {
    return decode_image_frames(bytes.data(), bytes.size(), options, info);
  } catch (const Error& error) {
    throw Error(error.code(), fmt::format("{}: {}", path, error.what()));
  }
}

Image load_image_file(const std::string& path, const DecodeOptions& options, DecodeInfo* info) {
  const std::vector<std::uint8_t> bytes = util::read_file_bytes(path, options.limits.max_encoded_bytes);
  try {
    return decode_image(bytes.data(), bytes.size(), options, info);
  } catch (const Error& error) {
    throw Error(error.code(), fmt::format("{}: {}", path, error.what()));
  }
}

Image erase_region(const Image& image, const Box& box, std::array<std::uint8_t, 3> fill) {
  image::check_box("erase_region", image, box);
  const int x0 = image::floor_clamped(box.x0, image.width);
  const int y0 = image::floor_clamped(box.y0, image.height);
  const int x1 = image::ceil_clamped(box.x1, image.width);
  const int y1 = image::ceil_clamped(box.y1, image.height);
  Image out = image;
  for (int y = y0; y < y1; ++y) {
    std::uint8_t* row = &out.rgb[std::size_t(y) * image.width * 3];
    for (int x = x0; x < x1; ++x) std::memcpy(row + std::size_t(x) * 3, fill.data(), 3);
  }
  return out;
}

Image crop_region(const Image& image, const Box& box, float margin) {
  image::check_box("crop_region", image, box);
  if (!(margin >= 0.f) || std::isinf(margin)) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("crop_region: margin must be finite and >= 0, got {}", margin));
  }
  const double grow_x = double(margin) * (double(box.x1) - box.x0);
  const double grow_y = double(margin) * (double(box.y1) - box.y0);
  // Round outward, clip, then keep at least one pixel per axis (a box outside
  // the image or of zero size yields the nearest edge pixel) so a crop is never empty.
  int x0 = image::floor_clamped(box.x0 - grow_x, image.width - 1);
  int y0 = image::floor_clamped(box.y0 - grow_y, image.height - 1);
  int x1 = std::max(image::ceil_clamped(box.x1 + grow_x, image.width), x0 + 1);
  int y1 = std::max(image::ceil_clamped(box.y1 + grow_y, image.height), y0 + 1);
  const std::size_t row_bytes = std::size_t(image.width) * 3;
  const std::uint8_t* top_left = &image.rgb[std::size_t(y0) * row_bytes + std::size_t(x0) * 3];
  return Image::from_rgb(top_left, x1 - x0, y1 - y0, row_bytes);
}

}  // namespace imgjudge
