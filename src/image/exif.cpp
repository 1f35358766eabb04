#include "image/exif.hpp"

#include <cstring>

namespace imgjudge::image {
namespace {

constexpr std::uint16_t kOrientationTag = 0x0112;
constexpr std::uint16_t kTiffTypeShort = 3;
constexpr std::size_t kIfdEntryBytes = 12;
// IFD0 of a real file has a few dozen entries; a larger count is garbage (and
// would only make us scan the block longer).
constexpr std::uint16_t kMaxIfdEntries = 1024;

// Bounds-checked reader of a TIFF block in either byte order.
class TiffReader {
 public:
  TiffReader(const std::uint8_t* data, std::size_t size, bool little_endian)
      : data_(data), size_(size), little_endian_(little_endian) {}

  bool u16(std::size_t offset, std::uint16_t& out) const {
    if (offset > size_ || size_ - offset < 2) return false;
    const std::uint8_t* p = data_ + offset;
    out = little_endian_ ? static_cast<std::uint16_t>(p[0] | (p[1] << 8))
                         : static_cast<std::uint16_t>((p[0] << 8) | p[1]);
    return true;
  }
  bool u32(std::size_t offset, std::uint32_t& out) const {
    if (offset > size_ || size_ - offset < 4) return false;
    const std::uint8_t* p = data_ + offset;
    out = little_endian_ ? (std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 |
                            std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24)
                         : (std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 |
                            std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]});
    return true;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  bool little_endian_;
};

}  // namespace

int exif_orientation_from_tiff(const std::uint8_t* tiff, std::size_t size) noexcept {
  if (tiff == nullptr || size < 8) return 1;
  bool little_endian;
  if (std::memcmp(tiff, "II\x2a\x00", 4) == 0) {
    little_endian = true;
  } else if (std::memcmp(tiff, "MM\x00\x2a", 4) == 0) {
    little_endian = false;
  } else {
    return 1;
  }
  const TiffReader reader(tiff, size, little_endian);
  std::uint32_t ifd0_offset = 0;
  std::uint16_t entry_count = 0;
  if (!reader.u32(4, ifd0_offset) || !reader.u16(ifd0_offset, entry_count)) return 1;
  if (entry_count > kMaxIfdEntries) return 1;
  for (std::size_t i = 0; i < entry_count; ++i) {
    const std::size_t entry = std::size_t{ifd0_offset} + 2 + i * kIfdEntryBytes;
    std::uint16_t tag = 0, type = 0, value = 0;
    std::uint32_t count = 0;
    if (!reader.u16(entry, tag)) return 1;  // the entry table runs past the block
    if (tag != kOrientationTag) continue;
    // A SHORT with count 1 sits in the first two bytes of the 4-byte value field.
    if (!reader.u16(entry + 2, type) || !reader.u32(entry + 4, count) ||
        !reader.u16(entry + 8, value)) {
      return 1;
    }
    if (type != kTiffTypeShort || count != 1 || value < 1 || value > 8) return 1;
    return value;
  }
  return 1;
}

int exif_orientation_from_app1(const std::uint8_t* payload, std::size_t size) noexcept {
  static constexpr char kExifHeader[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (payload == nullptr || size < sizeof kExifHeader ||
      std::memcmp(payload, kExifHeader, sizeof kExifHeader) != 0) {
    return 1;
  }
  return exif_orientation_from_tiff(payload + sizeof kExifHeader, size - sizeof kExifHeader);
}

Image apply_exif_orientation(const Image& image, int orientation) {
  if (orientation < 2 || orientation > 8 || image.empty()) return image;
  const int in_w = image.width;
  const int in_h = image.height;
  const bool swaps_axes = orientation >= 5;
  Image out;
  out.width = swaps_axes ? in_h : in_w;
  out.height = swaps_axes ? in_w : in_h;
  out.rgb.resize(image.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      // (sx, sy): the stored pixel that displays at (x, y).
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = in_w - 1 - x; break;
        case 3: sx = in_w - 1 - x; sy = in_h - 1 - y; break;
        case 4: sy = in_h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = in_h - 1 - x; break;
        case 7: sx = in_w - 1 - y; sy = in_h - 1 - x; break;
        case 8: sx = in_w - 1 - y; sy = x; break;
        default: break;
      }
      const std::size_t src = (std::size_t(sy) * in_w + sx) * 3;
      const std::size_t dst = (std::size_t(y) * out.width + x) * 3;
      std::memcpy(&out.rgb[dst], &image.rgb[src], 3);
    }
  }
  return out;
}

}  // namespace imgjudge::image
