// Test-only encoders: build JPEG, PNG, WebP and GIF files in memory with the
// same libraries the decoder uses, so every colour model and option can be
// exercised without committing binary fixtures. (The hostile corpus under
// tests/data/hostile/images/ was derived from files these helpers write.)
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <webp/mux.h>

namespace imgjudge::test {

using Bytes = std::vector<std::uint8_t>;

// ---- JPEG ----------------------------------------------------------------------

struct JpegOptions {
  J_COLOR_SPACE input_space = JCS_RGB;  ///< JCS_RGB (3), JCS_GRAYSCALE (1) or JCS_CMYK (4)
  J_COLOR_SPACE stored_space = JCS_YCbCr;  ///< what the file holds: YCbCr, GRAYSCALE, CMYK, YCCK
  bool adobe_marker = true;  ///< libjpeg writes APP14 "Adobe" for CMYK/YCCK when true
  int quality = 100;
  bool progressive = false;
  Bytes app1;  ///< raw APP1 payload (e.g. "Exif\0\0" + TIFF), written when non-empty
};

inline Bytes encode_jpeg(const std::uint8_t* pixels, int width, int height, const JpegOptions& options) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  jpeg_mem_dest(&cinfo, &out, &out_size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.in_color_space = options.input_space;
  cinfo.input_components = options.input_space == JCS_GRAYSCALE ? 1 : options.input_space == JCS_CMYK ? 4 : 3;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, options.stored_space);
  cinfo.write_Adobe_marker = options.adobe_marker ? TRUE : FALSE;
  jpeg_set_quality(&cinfo, options.quality, TRUE);
  // No chroma subsampling, so flat colour blocks survive almost exactly.
  for (int i = 0; i < cinfo.num_components; ++i) {
    cinfo.comp_info[i].h_samp_factor = 1;
    cinfo.comp_info[i].v_samp_factor = 1;
  }
  if (options.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (!options.app1.empty()) {
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, options.app1.data(),
                      static_cast<unsigned>(options.app1.size()));
  }
  const std::size_t row_bytes = std::size_t(width) * cinfo.input_components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + cinfo.next_scanline * row_bytes);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes bytes(out, out + out_size);
  std::free(out);
  return bytes;
}

/// An EXIF APP1 payload holding only IFD0 with one Orientation entry.
inline Bytes exif_app1_with_orientation(int orientation, bool big_endian = false) {
  Bytes b = {'E', 'x', 'i', 'f', 0, 0};
  auto u16 = [&](unsigned v) {
    if (big_endian) { b.push_back(std::uint8_t(v >> 8)); b.push_back(std::uint8_t(v)); }
    else { b.push_back(std::uint8_t(v)); b.push_back(std::uint8_t(v >> 8)); }
  };
  auto u32 = [&](std::uint32_t v) {
    if (big_endian) { u16(v >> 16); u16(v & 0xFFFF); } else { u16(v & 0xFFFF); u16(v >> 16); }
  };
  if (big_endian) { b.push_back('M'); b.push_back('M'); } else { b.push_back('I'); b.push_back('I'); }
  u16(42);
  u32(8);        // IFD0 right after the header
  u16(1);        // one entry
  u16(0x0112);   // Orientation
  u16(3);        // SHORT
  u32(1);        // count
  u16(static_cast<unsigned>(orientation));
  u16(0);        // value field padding
  u32(0);        // no next IFD
  return b;
}

// ---- PNG -----------------------------------------------------------------------

struct PngOptions {
  int color_type = PNG_COLOR_TYPE_RGB;
  int bit_depth = 8;
  bool interlaced = false;
  std::vector<png_color> palette;   ///< for PNG_COLOR_TYPE_PALETTE
  std::vector<std::uint8_t> trns;   ///< palette alphas (palette images)
  bool trns_color = false;          ///< a tRNS single colour for gray/RGB images
  png_color_16 trns_value{};
  Bytes exif;                       ///< eXIf chunk payload (bare TIFF) when non-empty
};

inline void png_test_write(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<Bytes*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}
inline void png_test_flush(png_structp) {}

/// `rows`: height rows, each already packed as libpng expects for the colour
/// type and bit depth (16-bit samples big-endian).
inline Bytes encode_png_rows(int width, int height, const std::vector<Bytes>& rows, const PngOptions& o) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("test png encoder failed");
  }
  png_set_write_fn(png, &out, png_test_write, png_test_flush);
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), o.bit_depth, o.color_type,
               o.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!o.palette.empty()) png_set_PLTE(png, info, o.palette.data(), int(o.palette.size()));
  if (!o.trns.empty()) {
    png_set_tRNS(png, info, o.trns.data(), int(o.trns.size()), nullptr);
  } else if (o.trns_color) {
    png_color_16 value = o.trns_value;
    png_set_tRNS(png, info, nullptr, 0, &value);
  }
  if (!o.exif.empty()) png_set_eXIf_1(png, info, png_uint_32(o.exif.size()), const_cast<png_bytep>(o.exif.data()));
  png_write_info(png, info);
  const int passes = o.interlaced ? png_set_interlace_handling(png) : 1;
  for (int pass = 0; pass < passes; ++pass) {
    for (int y = 0; y < height; ++y) png_write_row(png, rows[std::size_t(y)].data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// ---- WebP ----------------------------------------------------------------------

/// Lossless WebP (exact pixels). `channels` 3 (RGB) or 4 (RGBA).
inline Bytes encode_webp_lossless(const std::uint8_t* pixels, int width, int height, int channels) {
  std::uint8_t* out = nullptr;
  const std::size_t size = channels == 4
                               ? WebPEncodeLosslessRGBA(pixels, width, height, width * 4, &out)
                               : WebPEncodeLosslessRGB(pixels, width, height, width * 3, &out);
  Bytes bytes(out, out + size);
  WebPFree(out);
  return bytes;
}

inline Bytes encode_webp_lossy(const std::uint8_t* rgb, int width, int height, float quality) {
  std::uint8_t* out = nullptr;
  const std::size_t size = WebPEncodeRGB(rgb, width, height, width * 3, quality, &out);
  Bytes bytes(out, out + size);
  WebPFree(out);
  return bytes;
}

// ---- GIF -----------------------------------------------------------------------

inline int gif_test_write(GifFileType* gif, const GifByteType* data, int length) {
  auto* out = static_cast<Bytes*>(gif->UserData);
  out->insert(out->end(), data, data + length);
  return length;
}

struct GifFrameSpec {
  int screen_width = 0, screen_height = 0;  ///< 0: same as the frame
  int left = 0, top = 0, width = 0, height = 0;
  bool interlaced = false;
  std::vector<GifColorType> palette;  ///< size must be a power of two (2..256)
  int transparent_index = NO_TRANSPARENT_COLOR;
  std::vector<std::uint8_t> indices;  ///< width * height palette indices, display order
  int extra_frames = 0;               ///< further identical frames (an animation)
};

inline Bytes encode_gif(const GifFrameSpec& s) {
  Bytes out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, gif_test_write, &error);
  EGifSetGifVersion(gif, true);
  ColorMapObject* map = GifMakeMapObject(int(s.palette.size()), s.palette.data());
  EGifPutScreenDesc(gif, s.screen_width ? s.screen_width : s.width,
                    s.screen_height ? s.screen_height : s.height, map->BitsPerPixel, 0, map);
  for (int frame = 0; frame <= s.extra_frames; ++frame) {
    if (s.transparent_index != NO_TRANSPARENT_COLOR) {
      GraphicsControlBlock gcb{};
      gcb.DisposalMode = DISPOSAL_UNSPECIFIED;
      gcb.TransparentColor = s.transparent_index;
      GifByteType extension[4];
      const std::size_t length = EGifGCBToExtension(&gcb, extension);
      EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, int(length), extension);
    }
    EGifPutImageDesc(gif, s.left, s.top, s.width, s.height, s.interlaced, nullptr);
    // giflib writes lines in the order given; interlaced files store passes.
    std::vector<int> order;
    if (s.interlaced) {
      const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
      for (int p = 0; p < 4; ++p) for (int y = start[p]; y < s.height; y += step[p]) order.push_back(y);
    } else {
      for (int y = 0; y < s.height; ++y) order.push_back(y);
    }
    for (int y : order) {
      EGifPutLine(gif, const_cast<GifPixelType*>(&s.indices[std::size_t(y) * s.width]), s.width);
    }
  }
  EGifCloseFile(gif, &error);
  GifFreeMapObject(map);
  return out;
}

/// One frame of a GIF animation: a rectangle of palette indices and how it is disposed of.
struct GifAnimationFrame {
  int left = 0, top = 0, width = 0, height = 0;
  int disposal = DISPOSAL_UNSPECIFIED;  ///< DISPOSE_DO_NOT, DISPOSE_BACKGROUND, DISPOSE_PREVIOUS
  int transparent_index = NO_TRANSPARENT_COLOR;
  std::vector<std::uint8_t> indices;    ///< width * height
};

inline Bytes encode_gif_animation(int screen_width, int screen_height, const std::vector<GifColorType>& palette,
                                  const std::vector<GifAnimationFrame>& frames) {
  Bytes out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out, gif_test_write, &error);
  EGifSetGifVersion(gif, true);
  ColorMapObject* map = GifMakeMapObject(int(palette.size()), palette.data());
  EGifPutScreenDesc(gif, screen_width, screen_height, map->BitsPerPixel, 0, map);
  for (const auto& f : frames) {
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = f.disposal;
    gcb.TransparentColor = f.transparent_index;
    GifByteType extension[4];
    const std::size_t length = EGifGCBToExtension(&gcb, extension);
    EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, int(length), extension);
    EGifPutImageDesc(gif, f.left, f.top, f.width, f.height, false, nullptr);
    for (int y = 0; y < f.height; ++y) {
      EGifPutLine(gif, const_cast<GifPixelType*>(&f.indices[std::size_t(y) * f.width]), f.width);
    }
  }
  EGifCloseFile(gif, &error);
  GifFreeMapObject(map);
  return out;
}

/// A lossless animated WebP of whole-canvas RGBA frames (WebPAnimEncoder).
inline Bytes encode_webp_animation(int width, int height, const std::vector<std::vector<std::uint8_t>>& rgba_frames) {
  WebPAnimEncoderOptions options;
  WebPAnimEncoderOptionsInit(&options);
  WebPAnimEncoder* encoder = WebPAnimEncoderNew(width, height, &options);
  WebPConfig config;
  WebPConfigInit(&config);
  config.lossless = 1;
  int timestamp = 0;
  for (const auto& rgba : rgba_frames) {
    WebPPicture picture;
    WebPPictureInit(&picture);
    picture.use_argb = 1;
    picture.width = width;
    picture.height = height;
    WebPPictureImportRGBA(&picture, rgba.data(), width * 4);
    WebPAnimEncoderAdd(encoder, &picture, timestamp, &config);
    WebPPictureFree(&picture);
    timestamp += 100;
  }
  WebPAnimEncoderAdd(encoder, nullptr, timestamp, nullptr);
  WebPData data;
  WebPDataInit(&data);
  WebPAnimEncoderAssemble(encoder, &data);
  Bytes bytes(data.bytes, data.bytes + data.size);
  WebPDataClear(&data);
  WebPAnimEncoderDelete(encoder);
  return bytes;
}

}  // namespace imgjudge::test
