// The hostile image corpus (tests/data/hostile/images/, written by
// make_hostile_images.cpp there): each file must fail with the right
// ErrorCode and a message naming the format and the defect, or, for broken
// EXIF, decode as stored. Every file in the folder must be listed here.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <string>

#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"

using namespace imgjudge;

namespace {

const std::string kHostileDir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/hostile/images/";

struct HostileCase {
  const char* file;
  ErrorCode code;
  const char* fragment;
};

const HostileCase kFailures[] = {
    {"empty.jpg", ErrorCode::InvalidImage, "empty input (0 bytes)"},
    {"wrong_magic.png", ErrorCode::InvalidImage, "unknown image format"},
    {"riff_not_webp.webp", ErrorCode::InvalidImage, "unknown image format"},
    {"jpeg_truncated_header.jpg", ErrorCode::InvalidImage, "jpeg: Premature end of JPEG file"},
    {"jpeg_truncated_scan.jpg", ErrorCode::InvalidImage, "jpeg: Premature end of JPEG file"},
    {"jpeg_truncated_progressive.jpg", ErrorCode::InvalidImage, "jpeg: Premature end of JPEG file"},
    {"jpeg_corrupt_huffman.jpg", ErrorCode::InvalidImage, "jpeg: Corrupt JPEG data: bad Huffman code"},
    {"jpeg_huge_dimensions.jpg", ErrorCode::LimitExceeded, "jpeg: width 65500 exceeds the limit max_width=16384"},
    {"jpeg_zero_width.jpg", ErrorCode::InvalidImage, "jpeg: Empty JPEG image"},
    {"png_truncated.png", ErrorCode::InvalidImage, "png: corrupt image data: truncated file"},
    {"png_bad_ihdr_crc.png", ErrorCode::InvalidImage, "png: bad header: IHDR: CRC error"},
    {"png_huge_dimensions.png", ErrorCode::LimitExceeded, "png: width 100000 exceeds the limit max_width=16384"},
    {"png_zero_height.png", ErrorCode::InvalidImage, "png: invalid dimensions 24x0"},
    {"png_corrupt_idat.png", ErrorCode::InvalidImage, "png: corrupt image data: IDAT"},
    {"png_missing_ihdr.png", ErrorCode::InvalidImage, "png: truncated or missing IHDR header"},
    {"webp_truncated.webp", ErrorCode::InvalidImage, "webp: cannot decode image data: truncated data"},
    {"webp_corrupt.webp", ErrorCode::InvalidImage, "webp: cannot decode image data: corrupt bitstream"},
    {"webp_huge_dimensions.webp", ErrorCode::LimitExceeded,
     "webp: 16384x16384 = 268435456 pixels exceeds the limit max_pixels=67108864"},
    {"webp_animated.webp", ErrorCode::Unsupported, "webp: an animated WebP has several frames: decode it with decode_image_frames"},
    {"gif_truncated.gif", ErrorCode::InvalidImage, "gif: corrupt image data"},
    {"gif_huge_screen.gif", ErrorCode::LimitExceeded, "gif: width 65535 exceeds the limit max_width=16384"},
    {"gif_huge_frame.gif", ErrorCode::LimitExceeded, "gif: width 65535 exceeds the limit max_width=16384"},
    {"gif_no_image.gif", ErrorCode::InvalidImage, "gif: the file holds no image"},
    {"gif_bad_lzw_code_size.gif", ErrorCode::InvalidImage, "gif: bad image descriptor"},
};

// Broken EXIF is ignored: the picture decodes as stored (24x16, orientation 1).
const char* const kDecodeAsStored[] = {
    "jpeg_exif_bad_offset.jpg",
    "jpeg_exif_entries_past_end.jpg",
};

}  // namespace

TEST_CASE("hostile images fail with the right category and message", "[unit][image]") {
  for (const HostileCase& c : kFailures) {
    CAPTURE(c.file);
    const std::string path = kHostileDir + c.file;
    REQUIRE(std::filesystem::exists(path));
    try {
      load_image_file(path);
      FAIL("decoding should have failed");
    } catch (const Error& e) {
      CHECK(e.code() == c.code);
      CHECK_THAT(e.what(), Catch::Contains(c.fragment));
      CHECK_THAT(e.what(), Catch::StartsWith(path));  // load_image_file names the file
    }
  }
}

TEST_CASE("hostile EXIF blocks are ignored, not fatal", "[unit][image]") {
  for (const char* file : kDecodeAsStored) {
    CAPTURE(file);
    DecodeInfo info;
    const Image image = load_image_file(kHostileDir + file, {}, &info);
    CHECK(info.exif_orientation == 1);
    CHECK(image.width == 24);
    CHECK(image.height == 16);
  }
}

TEST_CASE("every file of the hostile image corpus is covered", "[unit][image]") {
  std::set<std::string> listed;
  for (const HostileCase& c : kFailures) listed.insert(c.file);
  for (const char* file : kDecodeAsStored) listed.insert(file);
  for (const auto& entry : std::filesystem::directory_iterator(kHostileDir)) {
    const std::string name = entry.path().filename().string();
    if (name == "make_hostile_images.cpp") continue;  // the generator
    CAPTURE(name);
    CHECK(listed.count(name) == 1);
  }
}
