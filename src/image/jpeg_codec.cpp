// JPEG decoding with libjpeg-turbo, hardened for untrusted input.
//
// libjpeg reports fatal errors through error_exit(), which by default prints
// and calls exit(); ours longjmps back to decode_jpeg() instead. Warnings are
// never printed. Warnings that mean the entropy-coded data is truncated or
// corrupt are fatal too (libjpeg would otherwise "recover" by painting grey),
// except "extraneous bytes before marker", which many cameras write and which
// loses no pixels.
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <jerror.h>
#include <jpeglib.h>

#include "image/codecs.hpp"
#include "image/exif.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::image {
namespace {

// A hostile progressive JPEG can hold thousands of tiny scans, each making the
// decoder revisit the whole coefficient buffer; real encoders write at most ~20.
constexpr int kMaxProgressiveScans = 500;

struct ErrorManager {
  jpeg_error_mgr base;  // first member: libjpeg passes &base as cinfo->err
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_fatal_error(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}

bool is_fatal_warning(int code) {
  switch (code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_BOGUS_PROGRESSION:
      return true;
    default:
      return false;
  }
}

// msg_level -1 is a warning, >= 0 trace output; neither is ever printed.
void on_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0 && is_fatal_warning(cinfo->err->msg_code)) on_fatal_error(cinfo);
}

void on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->input_scan_number > kMaxProgressiveScans) {
    auto* manager = reinterpret_cast<ErrorManager*>(cinfo->err);
    std::snprintf(manager->message, sizeof manager->message,
                  "more than %d progressive scans", kMaxProgressiveScans);
    std::longjmp(manager->jump, 1);
  }
}

const char* color_model_name(J_COLOR_SPACE space) {
  switch (space) {
    case JCS_GRAYSCALE: return "gray";
    case JCS_CMYK: return "cmyk";
    case JCS_YCCK: return "ycck";
    default: return "rgb";
  }
}

// (a * b) / 255 rounded, the integer form Pillow's CMYK->RGB conversion uses.
inline std::uint8_t mul_div_255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return static_cast<std::uint8_t>(((t >> 8) + t) >> 8);
}

// Owns the libjpeg decompressor; destroyed on every path, including errors.
struct JpegState {
  jpeg_decompress_struct cinfo{};
  ErrorManager errors{};
  jpeg_progress_mgr progress{};
  bool created = false;
  ~JpegState() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// Runs one libjpeg call with the longjmp target set in this frame. longjmp must
// not skip C++ destructors, so the target frame and everything libjpeg calls
// own no C++ objects (`step` captures by reference only); the error becomes an
// exception once we are back here.
template <typename Step>
void guarded(ErrorManager& errors, Step step) {
  if (setjmp(errors.jump) != 0) {
    throw Error(ErrorCode::InvalidImage, fmt::format("jpeg: {}", errors.message));
  }
  step();
}

}  // namespace

CodecResult decode_jpeg(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits) {
  JpegState state;
  jpeg_decompress_struct& cinfo = state.cinfo;
  cinfo.err = jpeg_std_error(&state.errors.base);
  state.errors.base.error_exit = on_fatal_error;
  state.errors.base.emit_message = on_message;
  guarded(state.errors, [&] { jpeg_create_decompress(&cinfo); });
  state.created = true;
  state.progress.progress_monitor = on_progress;
  cinfo.progress = &state.progress;
  jpeg_mem_src(&cinfo, bytes, static_cast<unsigned long>(size));
  guarded(state.errors, [&] {
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
  });
  // The header gave the dimensions; nothing image-sized is allocated yet.
  check_dimensions("jpeg", cinfo.image_width, cinfo.image_height, limits);

  CodecResult result;
  for (jpeg_saved_marker_ptr marker = cinfo.marker_list; marker != nullptr; marker = marker->next) {
    if (marker->marker != JPEG_APP0 + 1) continue;
    const int orientation = exif_orientation_from_app1(marker->data, marker->data_length);
    if (orientation != 1) {
      result.exif_orientation = orientation;
      break;
    }
  }

  const J_COLOR_SPACE stored_space = cinfo.jpeg_color_space;
  const bool is_cmyk = stored_space == JCS_CMYK || stored_space == JCS_YCCK;
  // libjpeg converts YCCK to CMYK itself; gray and YCbCr go straight to RGB.
  cinfo.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
  result.color_model = color_model_name(stored_space);
  result.bit_depth = cinfo.data_precision;

  guarded(state.errors, [&] { jpeg_start_decompress(&cinfo); });
  const int out_channels = cinfo.output_components;  // 3 for RGB, 4 for CMYK
  if (out_channels != (is_cmyk ? 4 : 3) || cinfo.output_width != cinfo.image_width ||
      cinfo.output_height != cinfo.image_height) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("jpeg: unexpected decoder output ({} components, {}x{})", out_channels,
                            cinfo.output_width, cinfo.output_height));
  }
  const std::size_t width = cinfo.output_width;
  result.pixels = allocate_pixels(static_cast<int>(width), static_cast<int>(cinfo.output_height), 3);
  std::vector<std::uint8_t> row(width * out_channels);
  // Photoshop and most CMYK writers store inverted CMYK and mark it with an
  // Adobe APP14 segment; libjpeg hands those values through unchanged.
  const bool inverted_cmyk = is_cmyk && cinfo.saw_Adobe_marker;
  while (cinfo.output_scanline < cinfo.output_height) {
    const std::size_t y = cinfo.output_scanline;
    JSAMPROW row_pointer = row.data();
    JDIMENSION rows_read = 0;
    guarded(state.errors, [&] { rows_read = jpeg_read_scanlines(&cinfo, &row_pointer, 1); });
    if (rows_read != 1) {
      throw Error(ErrorCode::InvalidImage, fmt::format("jpeg: no data for row {}", y));
    }
    std::uint8_t* out = &result.pixels.data[y * width * 3];
    if (!is_cmyk) {
      std::memcpy(out, row.data(), row.size());
      continue;
    }
    for (std::size_t x = 0; x < width; ++x) {
      const std::uint8_t* cmyk = &row[x * 4];
      unsigned c = cmyk[0], m = cmyk[1], ye = cmyk[2], k = cmyk[3];
      if (inverted_cmyk) {
        c = 255 - c; m = 255 - m; ye = 255 - ye; k = 255 - k;
      }
      // Pillow's profile-free CMYK->RGB: R = (255-C)(255-K)/255, rounded.
      const unsigned not_k = 255 - k;
      out[x * 3 + 0] = static_cast<std::uint8_t>(not_k - mul_div_255(c, not_k));
      out[x * 3 + 1] = static_cast<std::uint8_t>(not_k - mul_div_255(m, not_k));
      out[x * 3 + 2] = static_cast<std::uint8_t>(not_k - mul_div_255(ye, not_k));
    }
  }
  // Every row is decoded. jpeg_finish_decompress() would now look for the EOI
  // marker, which many real files lack; JpegState's destructor aborts instead.
  return result;
}

}  // namespace imgjudge::image
