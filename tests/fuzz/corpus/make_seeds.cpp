// Writes the generated seeds of the fuzz corpus (provenance; not part of the
// build): small VALID images of every format and colour model the decoders
// handle, and EXIF TIFF blocks for fuzz_image_jpeg_exif. The other seeds are
// copies of tests/data files (see corpus/README.md). Regenerate with:
//
//   g++ -std=c++17 -I tests tests/fuzz/corpus/make_seeds.cpp -ljpeg -lpng -lwebp -lgif -o /tmp/mkseeds
//   (cd tests/fuzz/corpus && /tmp/mkseeds)
#include <cstdio>
#include <string>
#include <vector>

#include "unit/image_test_encoders.hpp"

using imgjudge::test::Bytes;
namespace t = imgjudge::test;

namespace {

void write(const std::string& path, const Bytes& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) { std::perror(path.c_str()); std::exit(1); }
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

Bytes pattern(int width, int height, int channels) {
  Bytes pixels(std::size_t(width) * height * channels);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::uint8_t(i * 37 + i / 7);
  return pixels;
}

std::vector<Bytes> png_rows(int width, int height, int bytes_per_pixel) {
  std::vector<Bytes> rows;
  const Bytes pixels = pattern(width, height, bytes_per_pixel);
  for (int y = 0; y < height; ++y) {
    rows.emplace_back(pixels.begin() + std::ptrdiff_t(y) * width * bytes_per_pixel,
                      pixels.begin() + std::ptrdiff_t(y + 1) * width * bytes_per_pixel);
  }
  return rows;
}

Bytes tiff_of(const Bytes& app1) { return Bytes(app1.begin() + 6, app1.end()); }  // drop "Exif\0\0"

}  // namespace

int main() {
  const int w = 9, h = 7;  // odd sizes exercise the edges of blocks and rows
  const std::string img = "image_decode/";

  // JPEG: RGB, grayscale, CMYK (Adobe), progressive, EXIF-rotated.
  const Bytes rgb = pattern(w, h, 3);
  t::JpegOptions jpeg;
  write(img + "seed_rgb.jpg", t::encode_jpeg(rgb.data(), w, h, jpeg));
  t::JpegOptions gray;
  gray.input_space = JCS_GRAYSCALE;
  gray.stored_space = JCS_GRAYSCALE;
  write(img + "seed_gray.jpg", t::encode_jpeg(pattern(w, h, 1).data(), w, h, gray));
  t::JpegOptions cmyk;
  cmyk.input_space = JCS_CMYK;
  cmyk.stored_space = JCS_CMYK;
  write(img + "seed_cmyk.jpg", t::encode_jpeg(pattern(w, h, 4).data(), w, h, cmyk));
  t::JpegOptions progressive;
  progressive.progressive = true;
  write(img + "seed_progressive.jpg", t::encode_jpeg(rgb.data(), w, h, progressive));
  t::JpegOptions rotated;
  rotated.app1 = t::exif_app1_with_orientation(6);
  write(img + "seed_exif6.jpg", t::encode_jpeg(rgb.data(), w, h, rotated));

  // PNG: RGB, RGBA, palette with tRNS, 16-bit gray, interlaced, eXIf.
  write(img + "seed_rgb.png", t::encode_png_rows(w, h, png_rows(w, h, 3), {}));
  t::PngOptions rgba;
  rgba.color_type = PNG_COLOR_TYPE_RGBA;
  write(img + "seed_rgba.png", t::encode_png_rows(w, h, png_rows(w, h, 4), rgba));
  t::PngOptions palette;
  palette.color_type = PNG_COLOR_TYPE_PALETTE;
  palette.bit_depth = 8;
  for (int i = 0; i < 256; ++i) palette.palette.push_back({std::uint8_t(i), std::uint8_t(255 - i), std::uint8_t(i * 3)});
  palette.trns = {0, 64, 128, 255};
  write(img + "seed_palette_trns.png", t::encode_png_rows(w, h, png_rows(w, h, 1), palette));
  t::PngOptions gray16;
  gray16.color_type = PNG_COLOR_TYPE_GRAY;
  gray16.bit_depth = 16;
  write(img + "seed_gray16.png", t::encode_png_rows(w, h, png_rows(w, h, 2), gray16));
  t::PngOptions interlaced;
  interlaced.interlaced = true;
  interlaced.exif = tiff_of(t::exif_app1_with_orientation(3, /*big_endian=*/true));
  write(img + "seed_interlaced_exif.png", t::encode_png_rows(w, h, png_rows(w, h, 3), interlaced));

  // WebP: lossless RGBA, lossy RGB.
  write(img + "seed_lossless_rgba.webp", t::encode_webp_lossless(pattern(w, h, 4).data(), w, h, 4));
  write(img + "seed_lossy.webp", t::encode_webp_lossy(rgb.data(), w, h, 50));

  // GIF: a transparent frame on a larger screen, then an animation.
  t::GifFrameSpec gif;
  gif.screen_width = w + 2;
  gif.screen_height = h + 1;
  gif.left = 1;
  gif.width = w;
  gif.height = h;
  gif.interlaced = true;
  for (int i = 0; i < 4; ++i) gif.palette.push_back({std::uint8_t(i * 60), std::uint8_t(200 - i * 40), 9});
  gif.transparent_index = 2;
  for (int i = 0; i < w * h; ++i) gif.indices.push_back(std::uint8_t(i % 4));
  write(img + "seed_transparent.gif", t::encode_gif(gif));
  gif.interlaced = false;
  gif.extra_frames = 2;
  write(img + "seed_animated.gif", t::encode_gif(gif));

  // EXIF TIFF blocks (the input of fuzz_image_jpeg_exif): every orientation, both byte orders.
  for (int orientation = 1; orientation <= 8; ++orientation) {
    for (bool big_endian : {false, true}) {
      write("image_jpeg_exif/seed_orientation" + std::to_string(orientation) + (big_endian ? "_mm" : "_ii") + ".tiff",
            tiff_of(t::exif_app1_with_orientation(orientation, big_endian)));
    }
  }
  return 0;
}
