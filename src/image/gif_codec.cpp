// GIF decoding with giflib: the first frame placed on the logical screen
// (decode_gif), or the frames an animation is judged by (decode_gif_frames).
//
// Records are read one at a time (never DGifSlurp, which would decode every
// frame of an animation into memory). The Graphic Control Extension before the
// first image gives its transparent colour index. Canvas pixels the frame does
// not cover are transparent, as browsers show them.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <gif_lib.h>

#include "image/codecs.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::image {
namespace {

struct MemoryReader {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t offset;
};

int read_from_memory(GifFileType* gif, GifByteType* out, int length) {
  auto* reader = static_cast<MemoryReader*>(gif->UserData);
  if (length <= 0) return 0;
  const std::size_t available = reader->size - reader->offset;
  const std::size_t count = std::min<std::size_t>(std::size_t(length), available);
  std::memcpy(out, reader->data + reader->offset, count);
  reader->offset += count;
  return static_cast<int>(count);  // short count: giflib reports D_GIF_ERR_READ_FAILED
}

struct GifCloser {
  GifFileType* gif = nullptr;
  ~GifCloser() {
    int ignored = 0;
    if (gif != nullptr) DGifCloseFile(gif, &ignored);
  }
};

[[noreturn]] void fail(const char* what, int gif_error) {
  const char* detail = GifErrorString(gif_error);
  throw Error(ErrorCode::InvalidImage,
              fmt::format("gif: {}: {}", what, detail != nullptr ? detail : "unknown error"));
}

// Row order of an interlaced frame: four passes starting at rows 0, 4, 2, 1
// with steps 8, 8, 4, 2.
std::vector<int> interlaced_row_order(int height) {
  static constexpr int kStart[4] = {0, 4, 2, 1};
  static constexpr int kStep[4] = {8, 8, 4, 2};
  std::vector<int> order;
  order.reserve(std::size_t(height));
  for (int pass = 0; pass < 4; ++pass) {
    for (int y = kStart[pass]; y < height; y += kStep[pass]) order.push_back(y);
  }
  return order;
}

}  // namespace

CodecResult decode_gif(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits) {
  MemoryReader reader{bytes, size, 0};
  int error = 0;
  GifCloser closer;
  closer.gif = DGifOpen(&reader, read_from_memory, &error);
  if (closer.gif == nullptr) fail("bad header", error);
  GifFileType* gif = closer.gif;
  check_dimensions("gif", gif->SWidth, gif->SHeight, limits);

  int transparent_index = NO_TRANSPARENT_COLOR;
  while (true) {
    GifRecordType record = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif, &record) == GIF_ERROR) fail("bad record", gif->Error);
    if (record == TERMINATE_RECORD_TYPE) {
      throw Error(ErrorCode::InvalidImage, "gif: the file holds no image");
    }
    if (record == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;  // block[0] is the sub-block length
      if (DGifGetExtension(gif, &code, &block) == GIF_ERROR) fail("bad extension", gif->Error);
      if (code == GRAPHICS_EXT_FUNC_CODE && block != nullptr) {
        GraphicsControlBlock control{};
        if (DGifExtensionToGCB(block[0], block + 1, &control) == GIF_OK) {
          transparent_index = control.TransparentColor;
        }
      }
      // Each sub-block consumes input, so this ends within `size` bytes.
      while (block != nullptr) {
        if (DGifGetExtensionNext(gif, &block) == GIF_ERROR) fail("bad extension", gif->Error);
      }
      continue;
    }
    if (record != IMAGE_DESC_RECORD_TYPE) continue;

    if (DGifGetImageDesc(gif) == GIF_ERROR) fail("bad image descriptor", gif->Error);
    const GifImageDesc frame = gif->Image;
    check_dimensions("gif", frame.Width, frame.Height, limits);
    // A frame may stick out of a (too small or zero) logical screen; the canvas
    // grows to hold it, as in Pillow.
    const std::int64_t canvas_width =
        std::max<std::int64_t>(gif->SWidth, std::int64_t{frame.Left} + frame.Width);
    const std::int64_t canvas_height =
        std::max<std::int64_t>(gif->SHeight, std::int64_t{frame.Top} + frame.Height);
    check_dimensions("gif", canvas_width, canvas_height, limits);
    const ColorMapObject* palette = frame.ColorMap != nullptr ? frame.ColorMap : gif->SColorMap;
    if (palette == nullptr || palette->Colors == nullptr) {
      throw Error(ErrorCode::InvalidImage, "gif: the first frame has no colour table");
    }

    CodecResult result;
    result.color_model = "palette";
    result.bit_depth = palette->BitsPerPixel;
    const bool covers_canvas = frame.Left == 0 && frame.Top == 0 && frame.Width == canvas_width &&
                               frame.Height == canvas_height;
    const bool has_transparent_index =
        transparent_index >= 0 && transparent_index < palette->ColorCount;
    result.had_alpha = has_transparent_index || !covers_canvas;
    // Zero-filled RGBA: everything starts transparent.
    result.pixels = allocate_pixels(static_cast<int>(canvas_width), static_cast<int>(canvas_height), 4);

    std::vector<GifPixelType> line(std::size_t(frame.Width));
    const std::vector<int> rows = frame.Interlace ? interlaced_row_order(frame.Height) : std::vector<int>();
    for (int i = 0; i < frame.Height; ++i) {
      if (DGifGetLine(gif, line.data(), frame.Width) == GIF_ERROR) fail("corrupt image data", gif->Error);
      const int y = frame.Interlace ? rows[std::size_t(i)] : i;
      std::uint8_t* out =
          &result.pixels.data[((std::size_t(frame.Top) + y) * canvas_width + frame.Left) * 4];
      for (int x = 0; x < frame.Width; ++x, out += 4) {
        const int index = line[std::size_t(x)];
        if (has_transparent_index && index == transparent_index) continue;
        if (index < palette->ColorCount) {
          const GifColorType& colour = palette->Colors[index];
          out[0] = colour.Red;
          out[1] = colour.Green;
          out[2] = colour.Blue;
        }  // an index past the table is black, as in Pillow's zero-padded palette
        out[3] = 255;
      }
    }
    return result;
  }
}

namespace {

// Skips an image's compressed data (no LZW decoding).
void skip_image_data(GifFileType* gif) {
  int code_size = 0;
  GifByteType* block = nullptr;
  if (DGifGetCode(gif, &code_size, &block) == GIF_ERROR) fail("corrupt image data", gif->Error);
  while (block != nullptr) {
    if (DGifGetCodeNext(gif, &block) == GIF_ERROR) fail("corrupt image data", gif->Error);
  }
}

// Reads an extension record; returns its Graphic Control Block if it is one.
bool read_extension(GifFileType* gif, GraphicsControlBlock& control) {
  int code = 0;
  GifByteType* block = nullptr;
  if (DGifGetExtension(gif, &code, &block) == GIF_ERROR) fail("bad extension", gif->Error);
  bool found = false;
  if (code == GRAPHICS_EXT_FUNC_CODE && block != nullptr) {
    found = DGifExtensionToGCB(block[0], block + 1, &control) == GIF_OK;
  }
  while (block != nullptr) {
    if (DGifGetExtensionNext(gif, &block) == GIF_ERROR) fail("bad extension", gif->Error);
  }
  return found;
}

struct GifReader {
  MemoryReader memory;
  GifCloser closer;
  GifReader(const std::uint8_t* bytes, std::size_t size) : memory{bytes, size, 0} {
    int error = 0;
    closer.gif = DGifOpen(&memory, read_from_memory, &error);
    if (closer.gif == nullptr) fail("bad header", error);
  }
  GifFileType* get() const { return closer.gif; }
};

}  // namespace

CodecFrames decode_gif_frames(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits,
                              const AnimationLimits& animation) {
  // Pass 1: count the frames and find the canvas (the logical screen, grown to
  // hold every frame), without decoding any pixels.
  int frame_count = 0;
  std::int64_t canvas_width = 0, canvas_height = 0;
  std::uint64_t file_pixels = 0;
  {
    GifReader reader(bytes, size);
    GifFileType* gif = reader.get();
    check_dimensions("gif", gif->SWidth, gif->SHeight, limits);
    canvas_width = gif->SWidth;
    canvas_height = gif->SHeight;
    for (GifRecordType record = UNDEFINED_RECORD_TYPE; record != TERMINATE_RECORD_TYPE;) {
      if (DGifGetRecordType(gif, &record) == GIF_ERROR) fail("bad record", gif->Error);
      if (record == EXTENSION_RECORD_TYPE) {
        GraphicsControlBlock ignored{};
        read_extension(gif, ignored);
      } else if (record == IMAGE_DESC_RECORD_TYPE) {
        if (DGifGetImageDesc(gif) == GIF_ERROR) fail("bad image descriptor", gif->Error);
        const GifImageDesc& frame = gif->Image;
        check_dimensions("gif", frame.Width, frame.Height, limits);
        canvas_width = std::max<std::int64_t>(canvas_width, std::int64_t{frame.Left} + frame.Width);
        canvas_height = std::max<std::int64_t>(canvas_height, std::int64_t{frame.Top} + frame.Height);
        file_pixels += std::uint64_t(frame.Width) * std::uint64_t(frame.Height);
        if (file_pixels > animation.max_file_pixels) {
          throw Error(ErrorCode::LimitExceeded, fmt::format("gif: its frames hold more than {} pixels (the limit "
                                                            "max_file_pixels)", animation.max_file_pixels));
        }
        if (++frame_count > animation.max_file_frames) {
          throw Error(ErrorCode::LimitExceeded, fmt::format("gif: more than {} frames (the limit max_file_frames)",
                                                            animation.max_file_frames));
        }
        skip_image_data(gif);
      }
    }
  }
  if (frame_count == 0) throw Error(ErrorCode::InvalidImage, "gif: the file holds no image");
  check_dimensions("gif", canvas_width, canvas_height, limits);
  CodecFrames out;
  out.frame_count = frame_count;
  out.indices = sample_frames(frame_count, static_cast<int>(canvas_width), static_cast<int>(canvas_height), animation);

  // Pass 2: composite frame by frame up to the last one judged.
  GifReader reader(bytes, size);
  GifFileType* gif = reader.get();
  const auto width = static_cast<int>(canvas_width), height = static_cast<int>(canvas_height);
  RawPixels canvas = allocate_pixels(width, height, 4);  // transparent
  GraphicsControlBlock control{};
  control.TransparentColor = NO_TRANSPARENT_COLOR;
  bool any_alpha = false;
  std::size_t next = 0;  // the next index of out.indices to keep
  for (int frame_index = 0; next < out.indices.size();) {
    GifRecordType record = UNDEFINED_RECORD_TYPE;
    if (DGifGetRecordType(gif, &record) == GIF_ERROR) fail("bad record", gif->Error);
    if (record == TERMINATE_RECORD_TYPE) throw Error(ErrorCode::InvalidImage, "gif: fewer frames on the second read");
    if (record == EXTENSION_RECORD_TYPE) {
      GraphicsControlBlock found{};
      if (read_extension(gif, found)) control = found;
      continue;
    }
    if (record != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(gif) == GIF_ERROR) fail("bad image descriptor", gif->Error);
    const GifImageDesc frame = gif->Image;
    const ColorMapObject* palette = frame.ColorMap != nullptr ? frame.ColorMap : gif->SColorMap;
    if (palette == nullptr || palette->Colors == nullptr) {
      throw Error(ErrorCode::InvalidImage, fmt::format("gif: frame {} has no colour table", frame_index));
    }
    const bool has_transparent_index = control.TransparentColor >= 0 && control.TransparentColor < palette->ColorCount;
    any_alpha = any_alpha || has_transparent_index ||
                !(frame.Left == 0 && frame.Top == 0 && frame.Width == width && frame.Height == height);
    // "Restore to previous" puts back what was under the frame afterwards.
    std::vector<std::uint8_t> previous;
    if (control.DisposalMode == DISPOSE_PREVIOUS) previous = canvas.data;

    std::vector<GifPixelType> line(std::size_t(frame.Width));
    const std::vector<int> rows = frame.Interlace ? interlaced_row_order(frame.Height) : std::vector<int>();
    for (int i = 0; i < frame.Height; ++i) {
      if (DGifGetLine(gif, line.data(), frame.Width) == GIF_ERROR) fail("corrupt image data", gif->Error);
      const int y = frame.Interlace ? rows[std::size_t(i)] : i;
      std::uint8_t* px = &canvas.data[((std::size_t(frame.Top) + y) * std::size_t(width) + frame.Left) * 4];
      for (int x = 0; x < frame.Width; ++x, px += 4) {
        const int index = line[std::size_t(x)];
        if (has_transparent_index && index == control.TransparentColor) continue;
        if (index < palette->ColorCount) {
          const GifColorType& colour = palette->Colors[index];
          px[0] = colour.Red;
          px[1] = colour.Green;
          px[2] = colour.Blue;
        } else {
          px[0] = px[1] = px[2] = 0;  // past the table: black, as in Pillow
        }
        px[3] = 255;
      }
    }
    if (frame_index == out.indices[next]) {
      CodecResult kept;
      kept.pixels = canvas;
      kept.color_model = "palette";
      kept.bit_depth = palette->BitsPerPixel;
      kept.had_alpha = any_alpha;
      out.frames.push_back(std::move(kept));
      ++next;
    }
    if (control.DisposalMode == DISPOSE_BACKGROUND) {
      // Browsers clear the frame's rectangle to transparent (not the background colour).
      for (int y = 0; y < frame.Height; ++y) {
        std::memset(&canvas.data[((std::size_t(frame.Top) + y) * std::size_t(width) + frame.Left) * 4], 0,
                    std::size_t(frame.Width) * 4);
      }
    } else if (control.DisposalMode == DISPOSE_PREVIOUS) {
      canvas.data = std::move(previous);
    }
    control = GraphicsControlBlock{};  // a control block applies to the next image only
    control.TransparentColor = NO_TRANSPARENT_COLOR;
    ++frame_index;
  }
  return out;
}

}  // namespace imgjudge::image
