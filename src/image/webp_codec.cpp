// WebP decoding with libwebp: lossy, lossless, with or without alpha
// (decode_webp); animated WebP through libwebpdemux's WebPAnimDecoder
// (decode_webp_frames).
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include "image/codecs.hpp"
#include "image/exif.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::image {
namespace {

const char* status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
  }
  return "unknown error";
}

std::uint32_t read_le32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 |
         std::uint32_t{p[3]} << 24;
}

// Walks the RIFF chunks of an extended (VP8X) WebP file for an "EXIF" chunk,
// which holds a bare TIFF block. Malformed chunk sizes end the walk quietly:
// the orientation is a nicety, libwebp alone judges the file's validity.
int webp_exif_orientation(const std::uint8_t* bytes, std::size_t size) {
  constexpr std::size_t kRiffHeaderBytes = 12;  // "RIFF", size, "WEBP"
  constexpr std::size_t kChunkHeaderBytes = 8;  // fourcc, size
  std::size_t offset = kRiffHeaderBytes;
  while (offset <= size && size - offset >= kChunkHeaderBytes) {
    const std::uint8_t* chunk = bytes + offset;
    const std::size_t payload = read_le32(chunk + 4);
    if (payload > size - offset - kChunkHeaderBytes) break;
    if (std::memcmp(chunk, "EXIF", 4) == 0) {
      return exif_orientation_from_tiff(chunk + kChunkHeaderBytes, payload);
    }
    offset += kChunkHeaderBytes + payload + (payload & 1);  // chunks are padded to even size
  }
  return 1;
}

}  // namespace

CodecResult decode_webp(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(bytes, size, &features);
  if (status != VP8_STATUS_OK) {
    throw Error(ErrorCode::InvalidImage, fmt::format("webp: bad header: {}", status_text(status)));
  }
  if (features.has_animation) {
    throw Error(ErrorCode::Unsupported, "webp: an animated WebP has several frames: decode it with decode_image_frames");
  }
  check_dimensions("webp", features.width, features.height, limits);

  CodecResult result;
  result.had_alpha = features.has_alpha != 0;
  result.color_model = "rgb";
  result.exif_orientation = webp_exif_orientation(bytes, size);
  const int channels = result.had_alpha ? 4 : 3;
  result.pixels = allocate_pixels(features.width, features.height, channels);
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) {
    throw Error(ErrorCode::Internal, "webp: libwebp version mismatch");
  }
  // Decode straight into our buffer (is_external_memory): libwebp allocates no pixels.
  config.output.colorspace = result.had_alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = result.pixels.data.data();
  config.output.u.RGBA.stride = features.width * channels;
  config.output.u.RGBA.size = result.pixels.data.size();
  const VP8StatusCode decode_status = WebPDecode(bytes, size, &config);
  WebPFreeDecBuffer(&config.output);
  if (decode_status != VP8_STATUS_OK) {
    throw Error(ErrorCode::InvalidImage,
                fmt::format("webp: cannot decode image data: {}", status_text(decode_status)));
  }
  return result;
}

bool webp_is_animated(const std::uint8_t* bytes, std::size_t size) {
  WebPBitstreamFeatures features;
  return WebPGetFeatures(bytes, size, &features) == VP8_STATUS_OK && features.has_animation;
}

CodecFrames decode_webp_frames(const std::uint8_t* bytes, std::size_t size, const ImageLimits& limits,
                               const AnimationLimits& animation) {
  // The canvas and frame count come from the demuxer before any frame is decoded.
  const WebPData data{bytes, size};
  const std::unique_ptr<WebPDemuxer, void (*)(WebPDemuxer*)> demux(WebPDemux(&data), WebPDemuxDelete);
  if (!demux) throw Error(ErrorCode::InvalidImage, "webp: cannot parse the animation's container");
  const auto width = static_cast<std::int64_t>(WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_WIDTH));
  const auto height = static_cast<std::int64_t>(WebPDemuxGetI(demux.get(), WEBP_FF_CANVAS_HEIGHT));
  const auto frame_count = static_cast<std::int64_t>(WebPDemuxGetI(demux.get(), WEBP_FF_FRAME_COUNT));
  check_dimensions("webp", width, height, limits);
  if (frame_count <= 0) throw Error(ErrorCode::InvalidImage, "webp: the animation holds no frame");
  if (frame_count > animation.max_file_frames) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("webp: {} frames, more than {} (the limit max_file_frames)", frame_count,
                            animation.max_file_frames));
  }
  // Every frame is composited on the whole canvas.
  if (std::uint64_t(width) * std::uint64_t(height) * std::uint64_t(frame_count) > animation.max_file_pixels) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("webp: {} frames of {}x{} hold more than {} pixels (the limit max_file_pixels)", frame_count,
                            width, height, animation.max_file_pixels));
  }
  CodecFrames out;
  out.frame_count = static_cast<int>(frame_count);
  out.indices = sample_frames(out.frame_count, static_cast<int>(width), static_cast<int>(height), animation);

  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) throw Error(ErrorCode::Internal, "webp: libwebpdemux version mismatch");
  options.color_mode = MODE_RGBA;  // straight alpha; image.cpp composites it
  options.use_threads = 0;
  const std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> decoder(WebPAnimDecoderNew(&data, &options),
                                                                           WebPAnimDecoderDelete);
  if (!decoder) throw Error(ErrorCode::InvalidImage, "webp: cannot start decoding the animation");
  const std::size_t canvas_bytes = std::size_t(width) * std::size_t(height) * 4;
  std::size_t next = 0;
  for (int index = 0; next < out.indices.size(); ++index) {
    std::uint8_t* canvas = nullptr;
    int timestamp = 0;
    if (!WebPAnimDecoderHasMoreFrames(decoder.get()) || !WebPAnimDecoderGetNext(decoder.get(), &canvas, &timestamp)) {
      throw Error(ErrorCode::InvalidImage, fmt::format("webp: cannot decode frame {} of the animation", index));
    }
    if (index != out.indices[next]) continue;
    CodecResult kept;
    kept.pixels = allocate_pixels(static_cast<int>(width), static_cast<int>(height), 4);
    std::memcpy(kept.pixels.data.data(), canvas, canvas_bytes);
    kept.had_alpha = true;
    kept.color_model = "rgb";
    out.frames.push_back(std::move(kept));
    ++next;
  }
  return out;
}

}  // namespace imgjudge::image
