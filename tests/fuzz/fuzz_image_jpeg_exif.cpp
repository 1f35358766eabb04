// EXIF orientation from untrusted bytes: the fuzz input is the TIFF block of
// an APP1 "Exif" segment inside an otherwise valid JPEG, decoded with
// orientation applied. Also calls the TIFF and APP1 readers directly.
// Seeds: tests/fuzz/corpus/image_jpeg_exif (TIFF blocks).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.hpp"
#include "image/exif.hpp"
#include "imgjudge/image.hpp"
#include "unit/image_test_encoders.hpp"

namespace {

using Bytes = std::vector<std::uint8_t>;

// A 6x4 baseline JPEG; non-square so a wrong swap of width and height shows.
constexpr int kWidth = 6, kHeight = 4;

Bytes jpeg_with_app1(const Bytes& app1) {
  std::vector<std::uint8_t> pixels(kWidth * kHeight * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 7);
  imgjudge::test::JpegOptions options;
  options.app1 = app1;
  return imgjudge::test::encode_jpeg(pixels.data(), kWidth, kHeight, options);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imgjudge;
  // An APP1 segment holds at most 65533 payload bytes.
  if (size > 65000) return 0;
  const int from_tiff = image::exif_orientation_from_tiff(data, size);
  fuzz::require(from_tiff >= 1 && from_tiff <= 8, "exif_orientation_from_tiff outside 1..8");

  Bytes app1 = {'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), data, data + size);
  const int from_app1 = image::exif_orientation_from_app1(app1.data(), app1.size());
  fuzz::require(from_app1 == from_tiff, "APP1 and TIFF readers disagree");

  const Bytes jpeg = jpeg_with_app1(app1);
  fuzz::expect_only_imgjudge_errors([&] {
    DecodeInfo info;
    const Image image = decode_image(jpeg.data(), jpeg.size(), {}, &info);
    fuzz::require(info.exif_orientation == from_tiff, "decoder's orientation != exif reader's");
    const bool swapped = from_tiff >= 5;
    fuzz::require(image.width == (swapped ? kHeight : kWidth) && image.height == (swapped ? kWidth : kHeight),
                  "oriented size does not match the orientation");
  });
  return 0;
}
