// PNG decoding and encoding with libpng, hardened for untrusted input.
//
// libpng reports errors by longjmp to png_jmpbuf(); our error callback records
// the message first, and every libpng call runs inside guarded(), a frame that
// owns no C++ objects, so the longjmp never skips a destructor. Warnings
// (including "benign" errors such as a known-bad sRGB profile) are ignored.
#include <csetjmp>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <png.h>

#include "image/codecs.hpp"
#include "image/exif.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::image {
namespace {

// Ancillary chunks (text, ICC profiles) larger than this are a memory attack,
// not a picture.
constexpr png_alloc_size_t kMaxChunkBytes = 8u << 20;

struct PngContext {
  const std::uint8_t* data = nullptr;  // reading: the encoded bytes
  std::size_t size = 0;
  std::size_t offset = 0;
  std::vector<std::uint8_t>* output = nullptr;  // writing: the encoded PNG
  std::string message;
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  if (context != nullptr) context->message = message != nullptr ? message : "unknown error";
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  if (context->size - context->offset < length) {
    png_error(png, "truncated file (unexpected end of data)");
  }
  std::memcpy(out, context->data + context->offset, length);
  context->offset += length;
}

void write_to_vector(png_structp png, png_bytep data, png_size_t length) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  context->output->insert(context->output->end(), data, data + length);
}

void flush_nothing(png_structp) {}

// Runs libpng calls with the longjmp target in a frame without C++ objects.
// `step` captures by reference only; a libpng error becomes an exception here.
template <typename Step>
void guarded(png_structp png, PngContext& context, ErrorCode code, const char* what, Step step) {
  if (setjmp(png_jmpbuf(png)) != 0) {
    throw Error(code, fmt::format("png: {}: {}", what, context.message));
  }
  step();
}

std::uint32_t read_be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

struct ReadStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~ReadStructs() { png_destroy_read_struct(&png, info != nullptr ? &info : nullptr, nullptr); }
};

struct WriteStructs {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~WriteStructs() { png_destroy_write_struct(&png, info != nullptr ? &info : nullptr); }
};

}  // namespace

CodecResult decode_png(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits) {
  // Signature (8 bytes), then the IHDR chunk: length, "IHDR", width, height.
  // Reading the declared size here rejects a decompression bomb before libpng
  // allocates anything for it.
  constexpr std::size_t kIhdrEnd = 8 + 4 + 4 + 8;
  if (size < kIhdrEnd || std::memcmp(bytes + 12, "IHDR", 4) != 0) {
    throw Error(ErrorCode::InvalidImage, "png: truncated or missing IHDR header");
  }
  check_dimensions("png", read_be32(bytes + 16), read_be32(bytes + 20), limits);

  PngContext context;
  context.data = bytes;
  context.size = size;
  ReadStructs structs;
  structs.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, on_png_error, on_png_warning);
  if (structs.png == nullptr) throw Error(ErrorCode::OutOfMemory, "png: cannot create decoder");
  structs.info = png_create_info_struct(structs.png);
  if (structs.info == nullptr) throw Error(ErrorCode::OutOfMemory, "png: cannot create decoder");
  png_structp png = structs.png;
  png_infop info = structs.info;

  CodecResult result;
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  guarded(png, context, ErrorCode::InvalidImage, "bad header", [&] {
    png_set_read_fn(png, &context, read_from_memory);
    png_set_user_limits(png, static_cast<png_uint_32>(limits.max_width),
                        static_cast<png_uint_32>(limits.max_height));
    png_set_chunk_malloc_max(png, kMaxChunkBytes);
    png_read_info(png, info);
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
  });
  check_dimensions("png", width, height, limits);

  const bool has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  result.had_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0 || has_trns;
  result.bit_depth = bit_depth;
  result.color_model = color_type == PNG_COLOR_TYPE_PALETTE       ? "palette"
                       : (color_type & PNG_COLOR_MASK_COLOR) != 0 ? "rgb"
                                                                  : "gray";
#ifdef PNG_eXIf_SUPPORTED
  png_bytep exif = nullptr;
  png_uint_32 exif_size = 0;
  if (png_get_valid(png, info, PNG_INFO_eXIf) != 0 &&
      png_get_eXIf_1(png, info, &exif_size, &exif) != 0) {
    result.exif_orientation = exif_orientation_from_tiff(exif, exif_size);
  }
#endif

  int channels = 0;
  png_size_t row_bytes = 0;
  guarded(png, context, ErrorCode::InvalidImage, "bad header", [&] {
    // Everything becomes 8-bit RGB or RGBA: palettes and low-bit grey expand,
    // tRNS becomes an alpha channel, 16-bit samples keep their high byte (as
    // Pillow does for RGB), grey is replicated, interlacing is undone.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (has_trns) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16) png_set_strip_16(png);
    if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    channels = png_get_channels(png, info);
    row_bytes = png_get_rowbytes(png, info);
  });
  if ((channels != 3 && channels != 4) || row_bytes != png_size_t(width) * channels) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("png: unexpected decoder output ({} channels, {} bytes per row)",
                            channels, row_bytes));
  }

  result.pixels = allocate_pixels(static_cast<int>(width), static_cast<int>(height), channels);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = &result.pixels.data[std::size_t(y) * row_bytes];
  png_bytepp row_pointers = rows.data();
  guarded(png, context, ErrorCode::InvalidImage, "corrupt image data",
          [&] { png_read_image(png, row_pointers); });
  // The chunks after IDAT are not read: they hold no pixels.
  return result;
}

}  // namespace imgjudge::image

namespace imgjudge {

std::vector<std::uint8_t> encode_png(const Image& image) {
  using namespace image;  // the libpng helpers above
  if (image.empty() || image.rgb.size() != std::size_t(image.width) * image.height * 3) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("encode_png: image is empty or its pixel buffer ({} bytes) does not "
                            "match {}x{} RGB",
                            image.rgb.size(), image.width, image.height));
  }
  std::vector<std::uint8_t> encoded;
  PngContext context;
  context.output = &encoded;
  WriteStructs structs;
  structs.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, on_png_error, on_png_warning);
  if (structs.png == nullptr) throw Error(ErrorCode::OutOfMemory, "png: cannot create encoder");
  structs.info = png_create_info_struct(structs.png);
  if (structs.info == nullptr) throw Error(ErrorCode::OutOfMemory, "png: cannot create encoder");
  png_structp png = structs.png;
  png_infop info = structs.info;

  std::vector<png_bytep> rows(image.height);
  for (int y = 0; y < image.height; ++y) {
    rows[y] = const_cast<png_bytep>(&image.rgb[std::size_t(y) * image.width * 3]);
  }
  png_bytepp row_pointers = rows.data();
  guarded(png, context, ErrorCode::Internal, "encoding failed", [&] {
    png_set_write_fn(png, &context, write_to_vector, flush_nothing);
    png_set_IHDR(png, info, static_cast<png_uint_32>(image.width),
                 static_cast<png_uint_32>(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, row_pointers);
    png_write_end(png, nullptr);
  });
  return encoded;
}

}  // namespace imgjudge
