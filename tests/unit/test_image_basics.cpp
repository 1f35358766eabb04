// Image::from_rgb, content_hash, encode_png, load_image_file, erase_region and
// crop_region: semantics documented in include/imgjudge/image.hpp and docs/images.md.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "util/sha256.hpp"

using namespace imgjudge;

namespace {

// width x height image whose pixel (x, y) is (x, y, 7).
Image coordinate_image(int width, int height) {
  Image image;
  image.width = width;
  image.height = height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) image.rgb.insert(image.rgb.end(), {std::uint8_t(x), std::uint8_t(y), 7});
  }
  return image;
}

Box box(float x0, float y0, float x1, float y1) {
  Box b;
  b.x0 = x0;
  b.y0 = y0;
  b.x1 = x1;
  b.y1 = y1;
  return b;
}

ErrorCode code_of(void (*call)()) {
  try {
    call();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::Internal;  // "did not throw"
}

}  // namespace

TEST_CASE("Image::from_rgb copies rows through a stride", "[unit][image]") {
  // Two rows of 2 pixels, each row padded to 8 bytes with 0xEE.
  const std::vector<std::uint8_t> padded = {1, 2, 3, 4, 5, 6, 0xEE, 0xEE, 7, 8, 9, 10, 11, 12, 0xEE, 0xEE};
  const Image image = Image::from_rgb(padded.data(), 2, 2, 8);
  CHECK(image.width == 2);
  CHECK(image.height == 2);
  CHECK(image.rgb == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(Image::from_rgb(padded.data(), 1, 1, 3).rgb == std::vector<std::uint8_t>{1, 2, 3});

  CHECK(code_of([] { Image::from_rgb(nullptr, 1, 1, 3); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([] { const std::uint8_t p[3] = {}; Image::from_rgb(p, 0, 1, 3); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([] { const std::uint8_t p[3] = {}; Image::from_rgb(p, 1, -1, 3); }) == ErrorCode::InvalidArgument);
  CHECK(code_of([] { const std::uint8_t p[6] = {}; Image::from_rgb(p, 2, 1, 5); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("content_hash is SHA-256 of \"WxH\\n\" and the pixels", "[unit][image]") {
  const std::vector<std::uint8_t> pixels = {1, 2, 3, 4, 5, 6};
  const Image wide = Image::from_rgb(pixels.data(), 2, 1, 6);
  const Image tall = Image::from_rgb(pixels.data(), 1, 2, 3);
  CHECK(wide.content_hash() == util::sha256_hex(std::string("2x1\n\x01\x02\x03\x04\x05\x06", 10)));
  CHECK(wide.content_hash().size() == 64);
  CHECK(wide.content_hash() != tall.content_hash());  // same bytes, different shape
  CHECK(Image::from_rgb(pixels.data(), 2, 1, 6).content_hash() == wide.content_hash());
  Image changed = wide;
  changed.rgb[5] ^= 1;
  CHECK(changed.content_hash() != wide.content_hash());
}

TEST_CASE("encode_png round-trips through decode_image", "[unit][image]") {
  const Image image = coordinate_image(11, 6);
  const std::vector<std::uint8_t> png = encode_png(image);
  CHECK(detect_image_format(png.data(), png.size()) == ImageFormat::Png);
  const Image decoded = decode_image(png.data(), png.size());
  CHECK(decoded.width == 11);
  CHECK(decoded.height == 6);
  CHECK(decoded.rgb == image.rgb);
  CHECK(code_of([] { encode_png(Image{}); }) == ErrorCode::InvalidArgument);
  Image inconsistent = image;
  inconsistent.rgb.pop_back();
  CHECK_THROWS_AS(encode_png(inconsistent), Error);
}

TEST_CASE("load_image_file reads, limits and names the file", "[unit][image]") {
  const std::string path = "/tmp/imgjudge_test_image_" + std::to_string(::getpid()) + ".png";
  const std::vector<std::uint8_t> png = encode_png(coordinate_image(4, 3));
  std::FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  std::fwrite(png.data(), 1, png.size(), file);
  std::fclose(file);

  DecodeInfo info;
  const Image image = load_image_file(path, {}, &info);
  CHECK(image.rgb == coordinate_image(4, 3).rgb);
  CHECK(info.format == ImageFormat::Png);
  CHECK(info.color_model == "rgb");

  DecodeOptions small;
  small.limits.max_encoded_bytes = png.size() - 1;
  try {
    load_image_file(path, small);
    FAIL("should exceed max_encoded_bytes");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::LimitExceeded);
    CHECK_THAT(e.what(), Catch::Contains(path));
  }
  std::remove(path.c_str());
  try {
    load_image_file(path);
    FAIL("missing file should fail");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Io);
    CHECK_THAT(e.what(), Catch::Contains(path));
  }
}

TEST_CASE("erase_region fills the box rounded outward and clipped", "[unit][image]") {
  const Image image = coordinate_image(6, 4);
  auto erased = [](const Image& out, int x, int y) {
    const std::size_t i = (std::size_t(y) * out.width + x) * 3;
    return out.rgb[i] == 128 && out.rgb[i + 1] == 128 && out.rgb[i + 2] == 128;
  };
  SECTION("fractional box covers every pixel it touches") {
    const Image out = erase_region(image, box(1.5f, 0.2f, 3.1f, 1.0f));
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 6; ++x) {
        CAPTURE(x, y);
        // x: floor(1.5) = 1 .. ceil(3.1) = 4 (exclusive); y: 0 .. 1 (exclusive).
        CHECK(erased(out, x, y) == (x >= 1 && x < 4 && y == 0));
      }
    }
    CHECK(image.rgb == coordinate_image(6, 4).rgb);  // the input is untouched
  }
  SECTION("custom fill, clipping, degenerate and outside boxes") {
    const Image out = erase_region(image, box(-10, 2, 100, 100), {1, 2, 3});
    CHECK(out.rgb[(2 * 6 + 0) * 3] == 1);
    CHECK(out.rgb[(3 * 6 + 5) * 3 + 2] == 3);
    CHECK(out.rgb[(1 * 6 + 5) * 3] == 5);  // row 1 untouched
    CHECK(erase_region(image, box(2, 2, 2, 2)).rgb == image.rgb);
    CHECK(erase_region(image, box(50, 50, 60, 60)).rgb == image.rgb);
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(erase_region(image, box(3, 0, 1, 1)), Error);
    CHECK_THROWS_AS(erase_region(image, box(std::nanf(""), 0, 1, 1)), Error);
    CHECK_THROWS_AS(erase_region(image, box(0, 0, std::numeric_limits<float>::infinity(), 1)), Error);
    CHECK_THROWS_AS(erase_region(Image{}, box(0, 0, 1, 1)), Error);
  }
}

TEST_CASE("crop_region grows by the margin, rounds outward, clips, never empty", "[unit][image]") {
  const Image image = coordinate_image(20, 10);
  auto origin = [](const Image& crop) { return std::pair<int, int>{crop.rgb[0], crop.rgb[1]}; };
  SECTION("margin 0.1 of a 10x5 box") {
    // Box (5, 2)-(15, 7) grows by 1 and 0.5: (4, 1.5)-(16, 7.5) -> [4, 16) x [1, 8).
    const Image crop = crop_region(image, box(5, 2, 15, 7), 0.1f);
    CHECK(crop.width == 12);
    CHECK(crop.height == 7);
    CHECK(origin(crop) == std::pair<int, int>{4, 1});
  }
  SECTION("no margin, fractional box") {
    const Image crop = crop_region(image, box(2.5f, 3.2f, 4.1f, 3.9f), 0.f);
    CHECK(crop.width == 3);  // [2, 5)
    CHECK(crop.height == 1);  // [3, 4)
    CHECK(origin(crop) == std::pair<int, int>{2, 3});
  }
  SECTION("clipped to the image") {
    const Image crop = crop_region(image, box(15, 5, 25, 15), 0.5f);
    CHECK(origin(crop) == std::pair<int, int>{10, 0});
    CHECK(crop.width == 10);
    CHECK(crop.height == 10);
  }
  SECTION("degenerate or outside boxes give the nearest pixel") {
    const Image point = crop_region(image, box(3, 4, 3, 4), 0.1f);
    CHECK(point.width == 1);
    CHECK(point.height == 1);
    CHECK(origin(point) == std::pair<int, int>{3, 4});
    const Image outside = crop_region(image, box(100, 100, 200, 200), 0.f);
    CHECK(outside.width == 1);
    CHECK(outside.height == 1);
    CHECK(origin(outside) == std::pair<int, int>{19, 9});
  }
  SECTION("bad arguments") {
    CHECK_THROWS_AS(crop_region(image, box(0, 0, 1, 1), -0.1f), Error);
    CHECK_THROWS_AS(crop_region(image, box(0, 0, 1, 1), std::nanf("")), Error);
    CHECK_THROWS_AS(crop_region(image, box(5, 5, 1, 1), 0.f), Error);
    CHECK_THROWS_AS(crop_region(Image{}, box(0, 0, 1, 1), 0.f), Error);
  }
}
