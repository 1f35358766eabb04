// Writes the hostile image corpus of this folder (provenance; not part of the
// build). Each file starts from a small valid image made with the encoders the
// unit tests use, then one defect is introduced. Regenerate with:
//
//   g++ -std=c++17 -I tests make_hostile_images.cpp -ljpeg -lpng -lwebp -lgif -lz -o /tmp/mk
//   (cd tests/data/hostile/images && /tmp/mk)
//
// tests/unit/test_image_hostile.cpp asserts the outcome of every file.
#include <cstdio>
#include <string>
#include <vector>

#include <zlib.h>

#include "unit/image_test_encoders.hpp"

using imgjudge::test::Bytes;
namespace t = imgjudge::test;

namespace {

void write(const std::string& name, const Bytes& bytes) {
  FILE* f = std::fopen(name.c_str(), "wb");
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

Bytes cut(const Bytes& bytes, std::size_t size) { return Bytes(bytes.begin(), bytes.begin() + size); }

std::size_t find(const Bytes& bytes, const std::string& needle, std::size_t from = 0) {
  for (std::size_t i = from; i + needle.size() <= bytes.size(); ++i) {
    if (std::equal(needle.begin(), needle.end(), bytes.begin() + i,
                   [](char a, std::uint8_t b) { return std::uint8_t(a) == b; })) {
      return i;
    }
  }
  std::fprintf(stderr, "marker not found\n");
  std::exit(1);
}

void put_be16(Bytes& b, std::size_t at, unsigned v) { b[at] = std::uint8_t(v >> 8); b[at + 1] = std::uint8_t(v); }
void put_be32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = std::uint8_t(v >> (24 - 8 * i));
}

// Recomputes the CRC of the PNG chunk whose type starts at `type_at`.
void fix_png_crc(Bytes& png, std::size_t type_at) {
  const std::uint32_t length = std::uint32_t(png[type_at - 4]) << 24 | png[type_at - 3] << 16 |
                               png[type_at - 2] << 8 | png[type_at - 1];
  const uLong crc = crc32(0, png.data() + type_at, 4 + length);
  put_be32(png, type_at + 4 + length, std::uint32_t(crc));
}

std::vector<std::uint8_t> gradient(int w, int h) {
  std::vector<std::uint8_t> rgb;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) rgb.insert(rgb.end(), {std::uint8_t(x * 9), std::uint8_t(y * 7), std::uint8_t(x * y)});
  return rgb;
}

}  // namespace

int main() {
  const int w = 24, h = 16;
  const auto rgb = gradient(w, h);

  // ---- generic ----
  write("empty.jpg", {});
  const std::string text = "this is not an image\n";
  write("wrong_magic.png", Bytes(text.begin(), text.end()));
  write("riff_not_webp.webp", Bytes{'R', 'I', 'F', 'F', 4, 0, 0, 0, 'A', 'V', 'I', ' '});

  // ---- JPEG ----
  const Bytes jpeg = t::encode_jpeg(rgb.data(), w, h, {});
  t::JpegOptions progressive_options;
  progressive_options.progressive = true;
  const Bytes progressive = t::encode_jpeg(rgb.data(), w, h, progressive_options);
  write("jpeg_truncated_header.jpg", cut(jpeg, 20));
  const std::size_t scan = find(jpeg, "\xFF\xDA");
  write("jpeg_truncated_scan.jpg", cut(jpeg, scan + (jpeg.size() - scan) / 2));
  write("jpeg_truncated_progressive.jpg", cut(progressive, progressive.size() * 2 / 3));
  {
    // Overwrite the middle of the entropy-coded data with stuffed 0xFF bytes
    // (FF 00): a run of one-bits, and an all-ones code is never a valid
    // Huffman code.
    Bytes corrupt = jpeg;
    const std::size_t start = scan + 20;
    for (std::size_t i = start; i < start + 40; i += 2) {
      corrupt[i] = 0xFF;
      corrupt[i + 1] = 0x00;
    }
    write("jpeg_corrupt_huffman.jpg", corrupt);
  }
  {
    Bytes huge = jpeg;
    const std::size_t sof = find(huge, "\xFF\xC0");
    put_be16(huge, sof + 5, 65500);  // height
    put_be16(huge, sof + 7, 65500);  // width
    write("jpeg_huge_dimensions.jpg", huge);
    Bytes zero = jpeg;
    put_be16(zero, sof + 7, 0);
    write("jpeg_zero_width.jpg", zero);
  }
  {
    // EXIF whose IFD0 offset points 4 GB away.
    t::JpegOptions options;
    options.app1 = t::exif_app1_with_orientation(6);
    options.app1[10] = 0x00; options.app1[11] = 0xFF; options.app1[12] = 0xFF; options.app1[13] = 0xFF;
    write("jpeg_exif_bad_offset.jpg", t::encode_jpeg(rgb.data(), w, h, options));
    // EXIF whose IFD0 claims 50 entries but the block ends after one.
    options.app1 = t::exif_app1_with_orientation(5);
    options.app1[6 + 8] = 50;
    options.app1[6 + 8 + 2 + 8] = 9;  // and the one entry is out of range
    write("jpeg_exif_entries_past_end.jpg", t::encode_jpeg(rgb.data(), w, h, options));
  }

  // ---- PNG ----
  std::vector<Bytes> rows;
  for (int y = 0; y < h; ++y) rows.emplace_back(rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
  const Bytes png = t::encode_png_rows(w, h, rows, {});
  const std::size_t idat = find(png, "IDAT");
  write("png_truncated.png", cut(png, idat + 30));
  {
    Bytes bad_crc = png;
    bad_crc[29] ^= 0xFF;  // IHDR CRC (8 signature + 4 length + 4 type + 13 data)
    write("png_bad_ihdr_crc.png", bad_crc);
    Bytes huge = png;
    put_be32(huge, 16, 100000);
    put_be32(huge, 20, 100000);
    fix_png_crc(huge, 12);
    write("png_huge_dimensions.png", huge);
    Bytes zero = png;
    put_be32(zero, 20, 0);
    fix_png_crc(zero, 12);
    write("png_zero_height.png", zero);
    Bytes corrupt = png;
    for (std::size_t i = idat + 4 + 2; i < idat + 4 + 30; ++i) corrupt[i] = std::uint8_t(i * 37);
    fix_png_crc(corrupt, idat);
    write("png_corrupt_idat.png", corrupt);
    Bytes no_ihdr(png.begin(), png.begin() + 8);
    const std::size_t iend = find(png, "IEND");
    no_ihdr.insert(no_ihdr.end(), png.begin() + iend - 4, png.end());
    write("png_missing_ihdr.png", no_ihdr);
  }

  // ---- WebP ----
  const Bytes webp = t::encode_webp_lossless(rgb.data(), w, h, 3);
  write("webp_truncated.webp", cut(webp, webp.size() / 2));
  {
    Bytes corrupt = webp;
    for (std::size_t i = 30; i < corrupt.size(); ++i) corrupt[i] = std::uint8_t(0xA5 ^ i);
    write("webp_corrupt.webp", corrupt);
    // VP8L header after "VP8L" + size: signature 0x2F, then 14 bits width-1, 14 bits height-1.
    Bytes huge = webp;
    const std::size_t vp8l = find(huge, "VP8L") + 8;
    const std::uint32_t bits = 16383u | (16383u << 14) | (std::uint32_t(huge[vp8l + 4] >> 4 & 0xF) << 28);
    for (int i = 0; i < 4; ++i) huge[vp8l + 1 + i] = std::uint8_t(bits >> (8 * i));
    write("webp_huge_dimensions.webp", huge);
    // An extended header announcing an animation (VP8X flag 0x02, 10x10
    // canvas) and its ANIM chunk: animated WebP is refused as Unsupported.
    Bytes animated = {'R', 'I', 'F', 'F', 36, 0, 0, 0, 'W', 'E', 'B', 'P',
                      'V', 'P', '8', 'X', 10, 0, 0, 0, 0x02, 0, 0, 0, 9, 0, 0, 9, 0, 0,
                      'A', 'N', 'I', 'M', 6, 0, 0, 0, 255, 255, 255, 255, 0, 0};
    write("webp_animated.webp", animated);
  }

  // ---- GIF ----
  t::GifFrameSpec spec;
  spec.width = w;
  spec.height = h;
  spec.palette = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  for (int i = 0; i < w * h; ++i) spec.indices.push_back(std::uint8_t(i % 4));
  const Bytes gif = t::encode_gif(spec);
  write("gif_truncated.gif", cut(gif, gif.size() - 20));
  {
    Bytes huge = gif;
    huge[6] = 0xFF; huge[7] = 0xFF; huge[8] = 0xFF; huge[9] = 0xFF;  // logical screen 65535x65535
    write("gif_huge_screen.gif", huge);
    // Header, screen descriptor and global colour table, then the trailer.
    const std::size_t table_end = 13 + 3 * 4;
    Bytes no_image(gif.begin(), gif.begin() + table_end);
    no_image.push_back(0x3B);
    write("gif_no_image.gif", no_image);
    // The image descriptor (0x2C) claims a 65535x65535 frame.
    Bytes huge_frame = gif;
    std::size_t descriptor = table_end;
    while (huge_frame[descriptor] != 0x2C) ++descriptor;
    huge_frame[descriptor + 5] = 0xFF; huge_frame[descriptor + 6] = 0xFF;
    huge_frame[descriptor + 7] = 0xFF; huge_frame[descriptor + 8] = 0xFF;
    write("gif_huge_frame.gif", huge_frame);
    // LZW minimum code size 12 is illegal (max 8).
    Bytes bad_lzw = gif;
    bad_lzw[descriptor + 10] = 12;
    write("gif_bad_lzw_code_size.gif", bad_lzw);
  }
  return 0;
}
