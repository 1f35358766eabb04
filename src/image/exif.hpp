// EXIF orientation: reading tag 0x0112 from untrusted bytes, and applying it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "imgjudge/image.hpp"

namespace imgjudge::image {

/// Reads the Orientation tag (0x0112) of IFD0 from a TIFF-structured EXIF block
/// (starting at its "II*\0" or "MM\0*" header). Returns 1..8, or 1 when the block
/// is malformed, truncated, points outside itself, or holds no valid orientation:
/// broken EXIF never fails a decode, it just leaves the picture as stored.
int exif_orientation_from_tiff(const std::uint8_t* tiff, std::size_t size) noexcept;

/// The same for a JPEG APP1 payload, which starts with "Exif\0\0" before the TIFF block.
int exif_orientation_from_app1(const std::uint8_t* payload, std::size_t size) noexcept;

/// Rotates/flips `image` so it displays upright. Orientation values (EXIF 2.3):
///   1 as stored        2 mirror left-right    3 rotate 180     4 mirror top-bottom
///   5 transpose        6 rotate 90 clockwise  7 transverse     8 rotate 90 counter-clockwise
/// Orientations 5..8 swap width and height. Any other value returns the image unchanged.
Image apply_exif_orientation(const Image& image, int orientation);

}  // namespace imgjudge::image
