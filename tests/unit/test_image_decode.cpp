// Decoding every supported format and colour model to the right pixels,
// EXIF orientation, alpha compositing and limits. Inputs are encoded in the
// test with the same libraries (image_test_encoders.hpp).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "image/exif.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "unit/image_test_encoders.hpp"

using namespace imgjudge;
using imgjudge::test::Bytes;

namespace {

using Rgb = std::array<std::uint8_t, 3>;

Rgb pixel_at(const Image& image, int x, int y) {
  const std::size_t i = (std::size_t(y) * image.width + x) * 3;
  return {image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]};
}

bool near(const Rgb& a, const Rgb& b, int tolerance) {
  for (int c = 0; c < 3; ++c) {
    if (std::abs(int(a[c]) - int(b[c])) > tolerance) return false;
  }
  return true;
}

Image decode(const Bytes& bytes, DecodeInfo* info = nullptr, const DecodeOptions& options = {}) {
  return decode_image(bytes.data(), bytes.size(), options, info);
}

// A 16x24 picture of 2x3 flat 8x8 blocks; flat blocks survive JPEG at q100
// within a few levels, and the six colours tell every corner apart.
constexpr int kBlocksWide = 2, kBlocksHigh = 3, kBlock = 8;
const Rgb kBlockColours[kBlocksHigh][kBlocksWide] = {
    {{{220, 30, 30}}, {{30, 200, 40}}},
    {{{40, 40, 210}}, {{230, 220, 40}}},
    {{{20, 200, 210}}, {{200, 40, 200}}},
};

std::vector<std::uint8_t> block_picture_rgb() {
  std::vector<std::uint8_t> rgb;
  for (int y = 0; y < kBlocksHigh * kBlock; ++y) {
    for (int x = 0; x < kBlocksWide * kBlock; ++x) {
      const Rgb& c = kBlockColours[y / kBlock][x / kBlock];
      rgb.insert(rgb.end(), c.begin(), c.end());
    }
  }
  return rgb;
}

// Every pixel different: for lossless formats.
std::vector<std::uint8_t> gradient_rgb(int width, int height, int channels) {
  std::vector<std::uint8_t> pixels;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      pixels.push_back(std::uint8_t(x * 17 + y * 3));
      pixels.push_back(std::uint8_t(y * 29 + 7));
      pixels.push_back(std::uint8_t((x ^ y) * 11));
      if (channels == 4) pixels.push_back(std::uint8_t(x * 40 + y * 13));
    }
  }
  return pixels;
}

std::uint8_t over(std::uint8_t colour, std::uint8_t alpha, std::uint8_t background) {
  return std::uint8_t((colour * alpha + background * (255 - alpha) + 127) / 255);
}

}  // namespace

TEST_CASE("detect_image_format sniffs magic numbers, not names", "[unit][image]") {
  const Bytes jpeg = {0xFF, 0xD8, 0xFF, 0xE0};
  const Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const Bytes gif = {'G', 'I', 'F', '8', '9', 'a'};
  const Bytes webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
  const Bytes riff_wave = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'A', 'V', 'E'};
  CHECK(detect_image_format(jpeg.data(), jpeg.size()) == ImageFormat::Jpeg);
  CHECK(detect_image_format(png.data(), png.size()) == ImageFormat::Png);
  CHECK(detect_image_format(gif.data(), gif.size()) == ImageFormat::Gif);
  CHECK(detect_image_format(webp.data(), webp.size()) == ImageFormat::WebP);
  CHECK(detect_image_format(riff_wave.data(), riff_wave.size()) == ImageFormat::Unknown);
  CHECK(detect_image_format(png.data(), 4) == ImageFormat::Unknown);
  CHECK(detect_image_format(nullptr, 10) == ImageFormat::Unknown);
  CHECK(std::string(image_format_name(ImageFormat::WebP)) == "webp");
  CHECK(std::string(image_format_name(ImageFormat::Unknown)) == "unknown");
}

TEST_CASE("JPEG colour models decode to RGB", "[unit][image]") {
  const auto rgb = block_picture_rgb();
  const int w = kBlocksWide * kBlock, h = kBlocksHigh * kBlock;
  DecodeInfo info;

  SECTION("YCbCr") {
    const Image image = decode(test::encode_jpeg(rgb.data(), w, h, {}), &info);
    CHECK(info.format == ImageFormat::Jpeg);
    CHECK(info.color_model == "rgb");
    REQUIRE(image.width == w);
    REQUIRE(image.height == h);
    CHECK(near(pixel_at(image, 3, 3), kBlockColours[0][0], 4));
    CHECK(near(pixel_at(image, 12, 20), kBlockColours[2][1], 4));
  }
  SECTION("progressive") {
    test::JpegOptions options;
    options.progressive = true;
    const Image image = decode(test::encode_jpeg(rgb.data(), w, h, options), &info);
    CHECK(near(pixel_at(image, 12, 11), kBlockColours[1][1], 4));
  }
  SECTION("grayscale") {
    std::vector<std::uint8_t> gray(std::size_t(w) * h);
    for (int i = 0; i < w * h; ++i) gray[std::size_t(i)] = std::uint8_t((i % w) < 8 ? 40 : 200);
    test::JpegOptions options;
    options.input_space = JCS_GRAYSCALE;
    options.stored_space = JCS_GRAYSCALE;
    const Image image = decode(test::encode_jpeg(gray.data(), w, h, options), &info);
    CHECK(info.color_model == "gray");
    CHECK(near(pixel_at(image, 2, 2), {40, 40, 40}, 2));
    CHECK(near(pixel_at(image, 13, 2), {200, 200, 200}, 2));
  }
  SECTION("CMYK and YCCK, Adobe-inverted and plain") {
    // One flat colour, C=0.2 M=0.6 Y=0.1 K=0.3 in 0..255 units.
    const unsigned C = 51, M = 153, Y = 26, K = 77;
    auto expected_channel = [&](unsigned ink) {  // (255 - ink) * (255 - K) / 255
      return std::uint8_t(((255 - ink) * (255 - K) + 127) / 255);
    };
    const Rgb expected = {expected_channel(C), expected_channel(M), expected_channel(Y)};
    for (J_COLOR_SPACE stored : {JCS_CMYK, JCS_YCCK}) {
      for (bool adobe : {true, false}) {
        if (stored == JCS_YCCK && !adobe) continue;  // YCCK is only signalled by the Adobe marker
        CAPTURE(int(stored), adobe);
        std::vector<std::uint8_t> cmyk;
        for (int i = 0; i < w * h; ++i) {
          // Adobe files store inverted ink amounts (255 = no ink).
          for (unsigned v : {C, M, Y, K}) cmyk.push_back(std::uint8_t(adobe ? 255 - v : v));
        }
        test::JpegOptions options;
        options.input_space = JCS_CMYK;
        options.stored_space = stored;
        options.adobe_marker = adobe;
        const Image image = decode(test::encode_jpeg(cmyk.data(), w, h, options), &info);
        CHECK(info.color_model == (stored == JCS_CMYK ? "cmyk" : "ycck"));
        CHECK(near(pixel_at(image, 5, 5), expected, 3));
      }
    }
  }
}

TEST_CASE("EXIF orientations 1..8 put the stored corners where they display", "[unit][image]") {
  const auto rgb = block_picture_rgb();
  const int w = kBlocksWide * kBlock, h = kBlocksHigh * kBlock;  // stored 16x24
  const Rgb top_left = kBlockColours[0][0], top_right = kBlockColours[0][1];
  struct Case {
    int orientation;
    bool swaps;
    // Display corners (0 = top-left, 1 = top-right, 2 = bottom-left, 3 = bottom-right)
    // where the stored top-left and top-right blocks must appear.
    int top_left_goes_to, top_right_goes_to;
  };
  const Case cases[] = {
      {1, false, 0, 1}, {2, false, 1, 0}, {3, false, 3, 2}, {4, false, 2, 3},
      {5, true, 0, 2},  {6, true, 1, 3},  {7, true, 3, 1},  {8, true, 2, 0},
  };
  for (const Case& c : cases) {
    for (bool big_endian : {false, true}) {
      CAPTURE(c.orientation, big_endian);
      test::JpegOptions options;
      options.app1 = test::exif_app1_with_orientation(c.orientation, big_endian);
      const Bytes jpeg = test::encode_jpeg(rgb.data(), w, h, options);
      DecodeInfo info;
      const Image image = decode(jpeg, &info);
      CHECK(info.exif_orientation == c.orientation);
      CHECK(info.encoded_width == w);
      CHECK(info.encoded_height == h);
      REQUIRE(image.width == (c.swaps ? h : w));
      REQUIRE(image.height == (c.swaps ? w : h));
      auto corner = [&](int which) {
        const int x = (which & 1) ? image.width - 3 : 2;
        const int y = (which & 2) ? image.height - 3 : 2;
        return pixel_at(image, x, y);
      };
      CHECK(near(corner(c.top_left_goes_to), top_left, 4));
      CHECK(near(corner(c.top_right_goes_to), top_right, 4));

      DecodeOptions as_stored;
      as_stored.apply_exif_orientation = false;
      const Image raw = decode(jpeg, &info, as_stored);
      CHECK(info.exif_orientation == c.orientation);  // reported, not applied
      CHECK(raw.width == w);
      CHECK(near(pixel_at(raw, 2, 2), top_left, 4));
    }
  }
}

TEST_CASE("apply_exif_orientation maps every pixel exactly", "[unit][image]") {
  // 3x2 image whose pixels are numbered 0..5 in the red channel.
  Image stored;
  stored.width = 3;
  stored.height = 2;
  for (int i = 0; i < 6; ++i) stored.rgb.insert(stored.rgb.end(), {std::uint8_t(i), 0, 0});
  auto reds = [](const Image& image) {
    std::vector<int> out;
    for (std::size_t i = 0; i < image.rgb.size(); i += 3) out.push_back(image.rgb[i]);
    return out;
  };
  // Stored:  0 1 2
  //          3 4 5
  CHECK(reds(image::apply_exif_orientation(stored, 1)) == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(reds(image::apply_exif_orientation(stored, 2)) == std::vector<int>{2, 1, 0, 5, 4, 3});
  CHECK(reds(image::apply_exif_orientation(stored, 3)) == std::vector<int>{5, 4, 3, 2, 1, 0});
  CHECK(reds(image::apply_exif_orientation(stored, 4)) == std::vector<int>{3, 4, 5, 0, 1, 2});
  CHECK(reds(image::apply_exif_orientation(stored, 5)) == std::vector<int>{0, 3, 1, 4, 2, 5});
  CHECK(reds(image::apply_exif_orientation(stored, 6)) == std::vector<int>{3, 0, 4, 1, 5, 2});
  CHECK(reds(image::apply_exif_orientation(stored, 7)) == std::vector<int>{5, 2, 4, 1, 3, 0});
  CHECK(reds(image::apply_exif_orientation(stored, 8)) == std::vector<int>{2, 5, 1, 4, 0, 3});
  CHECK(image::apply_exif_orientation(stored, 6).width == 2);
  CHECK(reds(image::apply_exif_orientation(stored, 9)) == reds(stored));
}

TEST_CASE("EXIF parser rejects malformed blocks quietly", "[unit][image]") {
  Bytes good = test::exif_app1_with_orientation(6);
  CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 6);
  SECTION("truncated anywhere") {
    for (std::size_t cut = 0; cut < good.size(); ++cut) {
      const int orientation = image::exif_orientation_from_app1(good.data(), cut);
      CHECK((orientation == 1 || (orientation == 6 && cut >= 26)));
    }
  }
  SECTION("IFD offset past the end") {
    good[6 + 4] = 0xF0;
    CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 1);
  }
  SECTION("IFD offset near 2^32") {
    good[6 + 4] = 0xFF; good[6 + 5] = 0xFF; good[6 + 6] = 0xFF; good[6 + 7] = 0xFF;
    CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 1);
  }
  SECTION("out-of-range value") {
    good[6 + 8 + 2 + 8] = 9;
    CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 1);
  }
  SECTION("wrong type") {
    good[6 + 8 + 2 + 2] = 4;  // LONG
    CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 1);
  }
  SECTION("no Exif header") {
    good[0] = 'X';
    CHECK(image::exif_orientation_from_app1(good.data(), good.size()) == 1);
  }
}

TEST_CASE("PNG colour types, bit depths and interlacing decode exactly", "[unit][image]") {
  const int w = 5, h = 4;
  DecodeInfo info;

  SECTION("RGB 8-bit, plain and interlaced") {
    const auto rgb = gradient_rgb(w, h, 3);
    for (bool interlaced : {false, true}) {
      std::vector<Bytes> rows;
      for (int y = 0; y < h; ++y) rows.emplace_back(rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
      test::PngOptions options;
      options.interlaced = interlaced;
      const Image image = decode(test::encode_png_rows(w, h, rows, options), &info);
      CHECK(info.format == ImageFormat::Png);
      CHECK(info.color_model == "rgb");
      CHECK_FALSE(info.had_alpha);
      CHECK(image.rgb == rgb);
    }
  }
  SECTION("RGBA is composited onto the background") {
    const auto rgba = gradient_rgb(w, h, 4);
    std::vector<Bytes> rows;
    for (int y = 0; y < h; ++y) rows.emplace_back(rgba.begin() + y * w * 4, rgba.begin() + (y + 1) * w * 4);
    test::PngOptions options;
    options.color_type = PNG_COLOR_TYPE_RGB_ALPHA;
    const Bytes png = test::encode_png_rows(w, h, rows, options);
    for (Rgb background : {Rgb{255, 255, 255}, Rgb{0, 0, 0}, Rgb{10, 128, 250}}) {
      DecodeOptions decode_options;
      decode_options.alpha_background = background;
      const Image image = decode(png, &info, decode_options);
      CHECK(info.had_alpha);
      for (int i = 0; i < w * h; ++i) {
        for (int c = 0; c < 3; ++c) {
          REQUIRE(image.rgb[std::size_t(i) * 3 + c] ==
                  over(rgba[std::size_t(i) * 4 + c], rgba[std::size_t(i) * 4 + 3], background[std::size_t(c)]));
        }
      }
    }
  }
  SECTION("compositing rounds to nearest (worked example)") {
    // (200, 100, 50) at alpha 128 over white: (200*128 + 255*127 + 127) / 255 = 227.
    std::vector<Bytes> rows = {{200, 100, 50, 128}};
    test::PngOptions options;
    options.color_type = PNG_COLOR_TYPE_RGB_ALPHA;
    const Image image = decode(test::encode_png_rows(1, 1, rows, options));
    CHECK(pixel_at(image, 0, 0) == Rgb{227, 177, 152});
  }
  SECTION("gray 1, 2, 4 and 8 bits") {
    for (int depth : {1, 2, 4, 8}) {
      CAPTURE(depth);
      const int max = (1 << depth) - 1;
      std::vector<Bytes> rows;
      std::vector<int> levels;
      for (int y = 0; y < h; ++y) {
        Bytes row(std::size_t((w * depth + 7) / 8), 0);
        for (int x = 0; x < w; ++x) {
          const int level = (x + y) % (max + 1);
          levels.push_back(level);
          const int bit = x * depth;
          row[std::size_t(bit / 8)] |= std::uint8_t(level << (8 - depth - bit % 8));
        }
        rows.push_back(row);
      }
      test::PngOptions options;
      options.color_type = PNG_COLOR_TYPE_GRAY;
      options.bit_depth = depth;
      const Image image = decode(test::encode_png_rows(w, h, rows, options), &info);
      CHECK(info.color_model == "gray");
      CHECK(info.bit_depth == depth);
      for (int i = 0; i < w * h; ++i) {
        const auto expected = std::uint8_t(levels[std::size_t(i)] * 255 / max);
        REQUIRE(pixel_at(image, i % w, i / w) == Rgb{expected, expected, expected});
      }
    }
  }
  SECTION("gray + alpha") {
    std::vector<Bytes> rows = {{100, 255, 100, 0, 100, 51}};
    test::PngOptions options;
    options.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
    const Image image = decode(test::encode_png_rows(3, 1, rows, options), &info);
    CHECK(info.color_model == "gray");
    CHECK(info.had_alpha);
    CHECK(pixel_at(image, 0, 0) == Rgb{100, 100, 100});
    CHECK(pixel_at(image, 1, 0) == Rgb{255, 255, 255});
    const auto mixed = over(100, 51, 255);
    CHECK(pixel_at(image, 2, 0) == Rgb{mixed, mixed, mixed});
  }
  SECTION("palette with tRNS") {
    test::PngOptions options;
    options.color_type = PNG_COLOR_TYPE_PALETTE;
    options.palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    options.trns = {255, 0, 128};  // entry 3 has no alpha: opaque
    std::vector<Bytes> rows = {{0, 1, 2, 3}};
    DecodeOptions black;
    black.alpha_background = {0, 0, 0};
    const Image image = decode(test::encode_png_rows(4, 1, rows, options), &info, black);
    CHECK(info.color_model == "palette");
    CHECK(info.had_alpha);
    CHECK(pixel_at(image, 0, 0) == Rgb{255, 0, 0});
    CHECK(pixel_at(image, 1, 0) == Rgb{0, 0, 0});
    CHECK(pixel_at(image, 2, 0) == Rgb{0, 0, over(255, 128, 0)});
    CHECK(pixel_at(image, 3, 0) == Rgb{10, 20, 30});
  }
  SECTION("tRNS colour key on RGB") {
    test::PngOptions options;
    options.trns_color = true;
    options.trns_value.red = 1;
    options.trns_value.green = 2;
    options.trns_value.blue = 3;
    std::vector<Bytes> rows = {{1, 2, 3, 4, 5, 6}};
    const Image image = decode(test::encode_png_rows(2, 1, rows, options), &info);
    CHECK(info.had_alpha);
    CHECK(pixel_at(image, 0, 0) == Rgb{255, 255, 255});
    CHECK(pixel_at(image, 1, 0) == Rgb{4, 5, 6});
  }
  SECTION("16-bit RGB keeps the high byte") {
    std::vector<Bytes> rows = {{0x12, 0x34, 0xAB, 0xCD, 0xFF, 0xFF}};
    test::PngOptions options;
    options.bit_depth = 16;
    const Image image = decode(test::encode_png_rows(1, 1, rows, options), &info);
    CHECK(info.bit_depth == 16);
    CHECK(pixel_at(image, 0, 0) == Rgb{0x12, 0xAB, 0xFF});
  }
  SECTION("eXIf orientation") {
    const auto rgb = gradient_rgb(w, h, 3);
    std::vector<Bytes> rows;
    for (int y = 0; y < h; ++y) rows.emplace_back(rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
    test::PngOptions options;
    const Bytes app1 = test::exif_app1_with_orientation(8);
    options.exif.assign(app1.begin() + 6, app1.end());  // eXIf holds the bare TIFF block
    const Image image = decode(test::encode_png_rows(w, h, rows, options), &info);
    CHECK(info.exif_orientation == 8);
    CHECK(image.width == h);
    CHECK(image.height == w);
    // Rotating counter-clockwise brings the stored top-right pixel to the top-left.
    CHECK(pixel_at(image, 0, 0) == Rgb{rgb[(w - 1) * 3], rgb[(w - 1) * 3 + 1], rgb[(w - 1) * 3 + 2]});
  }
}

TEST_CASE("WebP lossless, alpha, lossy and EXIF", "[unit][image]") {
  const int w = 7, h = 5;
  DecodeInfo info;
  SECTION("lossless RGB is exact") {
    const auto rgb = gradient_rgb(w, h, 3);
    const Image image = decode(test::encode_webp_lossless(rgb.data(), w, h, 3), &info);
    CHECK(info.format == ImageFormat::WebP);
    CHECK_FALSE(info.had_alpha);
    CHECK(image.rgb == rgb);
  }
  SECTION("lossless RGBA is composited") {
    const auto rgba = gradient_rgb(w, h, 4);
    const Image image = decode(test::encode_webp_lossless(rgba.data(), w, h, 4), &info);
    CHECK(info.had_alpha);
    for (int i = 0; i < w * h; ++i) {
      for (int c = 0; c < 3; ++c) {
        // libwebp may drop the colour of fully transparent pixels; they show
        // the background anyway.
        REQUIRE(image.rgb[std::size_t(i) * 3 + c] ==
                over(rgba[std::size_t(i) * 4 + c], rgba[std::size_t(i) * 4 + 3], 255));
      }
    }
  }
  SECTION("lossy is close") {
    const auto rgb = block_picture_rgb();
    const Image image =
        decode(test::encode_webp_lossy(rgb.data(), kBlocksWide * kBlock, kBlocksHigh * kBlock, 100), &info);
    CHECK(near(pixel_at(image, 4, 4), kBlockColours[0][0], 12));
    CHECK(near(pixel_at(image, 12, 20), kBlockColours[2][1], 12));
  }
  SECTION("EXIF chunk in an extended (VP8X) file") {
    const auto rgb = gradient_rgb(w, h, 3);
    const Bytes simple = test::encode_webp_lossless(rgb.data(), w, h, 3);
    // simple = "RIFF" size "WEBP" + one VP8L chunk; rebuild as VP8X + VP8L + EXIF.
    const Bytes image_chunk(simple.begin() + 12, simple.end());
    const Bytes app1 = test::exif_app1_with_orientation(3);
    const Bytes tiff(app1.begin() + 6, app1.end());
    auto le32 = [](Bytes& out, std::uint32_t v) {
      for (int i = 0; i < 4; ++i) out.push_back(std::uint8_t(v >> (8 * i)));
    };
    Bytes body = {'W', 'E', 'B', 'P', 'V', 'P', '8', 'X'};
    le32(body, 10);
    body.insert(body.end(), {0x08, 0, 0, 0});  // flags: EXIF present
    body.insert(body.end(), {std::uint8_t(w - 1), 0, 0, std::uint8_t(h - 1), 0, 0});
    body.insert(body.end(), image_chunk.begin(), image_chunk.end());
    body.insert(body.end(), {'E', 'X', 'I', 'F'});
    le32(body, std::uint32_t(tiff.size()));
    body.insert(body.end(), tiff.begin(), tiff.end());
    if (tiff.size() % 2) body.push_back(0);
    Bytes file = {'R', 'I', 'F', 'F'};
    le32(file, std::uint32_t(body.size()));
    file.insert(file.end(), body.begin(), body.end());
    const Image image = decode(file, &info);
    CHECK(info.exif_orientation == 3);
    // Rotated 180 degrees: the last stored pixel comes first.
    const std::size_t last = rgb.size() - 3;
    CHECK(pixel_at(image, 0, 0) == Rgb{rgb[last], rgb[last + 1], rgb[last + 2]});
  }
}

TEST_CASE("GIF first frame, transparency, interlacing, small frames", "[unit][image]") {
  test::GifFrameSpec spec;
  spec.width = 6;
  spec.height = 9;
  spec.palette = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  for (int i = 0; i < spec.width * spec.height; ++i) spec.indices.push_back(std::uint8_t((i * 7 + i / 6) % 4));
  auto expected_colour = [&](int i) {
    const GifColorType& c = spec.palette[spec.indices[std::size_t(i)]];
    return Rgb{c.Red, c.Green, c.Blue};
  };
  DecodeInfo info;
  SECTION("plain, interlaced and animated files give the same first frame") {
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(variant);
      test::GifFrameSpec s = spec;
      s.interlaced = variant == 1;
      s.extra_frames = variant == 2 ? 3 : 0;
      const Image image = decode(test::encode_gif(s), &info);
      CHECK(info.format == ImageFormat::Gif);
      CHECK(info.color_model == "palette");
      CHECK_FALSE(info.had_alpha);
      REQUIRE(image.width == 6);
      REQUIRE(image.height == 9);
      for (int i = 0; i < 54; ++i) REQUIRE(pixel_at(image, i % 6, i / 6) == expected_colour(i));
    }
  }
  SECTION("transparent index shows the background") {
    spec.transparent_index = 2;
    DecodeOptions options;
    options.alpha_background = {7, 8, 9};
    const Image image = decode(test::encode_gif(spec), &info, options);
    CHECK(info.had_alpha);
    for (int i = 0; i < 54; ++i) {
      const Rgb expected = spec.indices[std::size_t(i)] == 2 ? Rgb{7, 8, 9} : expected_colour(i);
      REQUIRE(pixel_at(image, i % 6, i / 6) == expected);
    }
  }
  SECTION("a frame smaller than the screen sits on a transparent canvas") {
    spec.screen_width = 10;
    spec.screen_height = 12;
    spec.left = 2;
    spec.top = 3;
    const Image image = decode(test::encode_gif(spec), &info);
    CHECK(info.had_alpha);
    REQUIRE(image.width == 10);
    REQUIRE(image.height == 12);
    CHECK(pixel_at(image, 0, 0) == Rgb{255, 255, 255});
    CHECK(pixel_at(image, 2, 3) == expected_colour(0));
    CHECK(pixel_at(image, 7, 11) == expected_colour(53));
  }
}

TEST_CASE("limits are enforced before pixels are allocated", "[unit][image]") {
  const auto rgb = block_picture_rgb();
  const Bytes jpeg = test::encode_jpeg(rgb.data(), 16, 24, {});
  auto expect_limit = [&](const DecodeOptions& options, const std::string& fragment) {
    try {
      decode(jpeg, nullptr, options);
      FAIL("decoding should have failed");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::LimitExceeded);
      CHECK_THAT(e.what(), Catch::Contains(fragment));
    }
  };
  DecodeOptions options;
  options.limits.max_encoded_bytes = jpeg.size() - 1;
  expect_limit(options, "max_encoded_bytes=" + std::to_string(jpeg.size() - 1));
  options = {};
  options.limits.max_width = 15;
  expect_limit(options, "width 16 exceeds the limit max_width=15");
  options = {};
  options.limits.max_height = 23;
  expect_limit(options, "height 24 exceeds the limit max_height=23");
  options = {};
  options.limits.max_pixels = 16 * 24 - 1;
  expect_limit(options, "16x24 = 384 pixels exceeds the limit max_pixels=383");
  options = {};
  options.limits.max_pixels = 16 * 24;
  CHECK_NOTHROW(decode(jpeg, nullptr, options));
}

TEST_CASE("empty and null input", "[unit][image]") {
  const std::uint8_t byte = 0;
  try {
    decode_image(&byte, 0);
    FAIL("empty input should fail");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidImage);
    CHECK_THAT(e.what(), Catch::Contains("empty input"));
  }
  try {
    decode_image(nullptr, 5);
    FAIL("null input should fail");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
  }
}

TEST_CASE("every prefix of a valid file fails cleanly or decodes", "[unit][image]") {
  // Truncation at every length must never crash; most prefixes are errors.
  const auto rgb = gradient_rgb(9, 7, 3);
  std::vector<Bytes> rows;
  for (int y = 0; y < 7; ++y) rows.emplace_back(rgb.begin() + y * 27, rgb.begin() + (y + 1) * 27);
  test::GifFrameSpec gif;
  gif.width = 4;
  gif.height = 4;
  gif.palette = {{0, 0, 0}, {255, 255, 255}};
  gif.indices.assign(16, 1);
  const Bytes files[] = {
      test::encode_jpeg(rgb.data(), 9, 7, {}),
      test::encode_png_rows(9, 7, rows, {}),
      test::encode_webp_lossless(rgb.data(), 9, 7, 3),
      test::encode_gif(gif),
  };
  for (const Bytes& file : files) {
    for (std::size_t cut = 1; cut < file.size(); ++cut) {
      try {
        decode_image(file.data(), cut);
      } catch (const Error& e) {
        REQUIRE((e.code() == ErrorCode::InvalidImage));
      }
    }
    CHECK_NOTHROW(decode(file));
  }
}
