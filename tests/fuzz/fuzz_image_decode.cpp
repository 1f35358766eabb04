// decode_image() on untrusted bytes, the format sniffed from the magic number
// as the Judge does it (JPEG, PNG, WebP, GIF). Seeds: tests/fuzz/corpus/image_decode.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "imgjudge/image.hpp"

namespace {

// Tighter than the defaults so one input costs milliseconds, not seconds;
// the check that the limits hold before allocation is the same code.
imgjudge::DecodeOptions fuzz_options() {
  imgjudge::DecodeOptions options;
  options.limits.max_width = 4096;
  options.limits.max_height = 4096;
  options.limits.max_pixels = 4u << 20;
  return options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imgjudge;
  static const DecodeOptions options = fuzz_options();
  fuzz::expect_only_imgjudge_errors([&] {
    DecodeInfo info;
    const Image image = decode_image(data, size, options, &info);
    fuzz::require(image.width > 0 && image.height > 0, "decoded image has a zero dimension");
    fuzz::require(image.rgb.size() == std::size_t(image.width) * std::size_t(image.height) * 3,
                  "rgb buffer size != width * height * 3");
    fuzz::require(std::uint64_t(image.width) * std::uint64_t(image.height) <= options.limits.max_pixels,
                  "decoded image exceeds max_pixels");
    fuzz::require(info.format == detect_image_format(data, size), "DecodeInfo.format != sniffed format");
    fuzz::require(info.exif_orientation >= 1 && info.exif_orientation <= 8, "orientation outside 1..8");
  });
  return 0;
}
