// libimgjudge_sentencepiece.so: libsentencepiece behind a C interface, loaded
// by tokenizer/sentencepiece_model.cpp with dlopen(RTLD_LOCAL | RTLD_DEEPBIND).
//
// Why a separate module: Debian's libsentencepiece.so.0 carries its own
// protobuf 3.14 and exports its symbols, while libtorch loads the system
// libprotobuf.so.32 (3.21). Linked into one process the two bind to each
// other's functions and the process dies before main (or on the first model
// it reads). Loaded locally with deep binding, libsentencepiece keeps to its
// own protobuf and nothing else sees it. Only C types cross this boundary.
#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#define IMGJUDGE_SP_EXPORT __attribute__((visibility("default")))

extern "C" {

using ImgjudgeSpEmit = void (*)(void* context, const char* data, std::size_t size);

// 0: ok; otherwise the library's message went to `error`.
IMGJUDGE_SP_EXPORT int imgjudge_sp_load(const char* data, std::size_t size, void** out, ImgjudgeSpEmit error, void* context) {
  try {
    auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = processor->LoadFromSerializedProto(std::string_view(data, size));
    if (!status.ok()) {
      const std::string message = status.ToString();
      error(context, message.data(), message.size());
      return 1;
    }
    *out = processor.release();
    return 0;
  } catch (const std::exception& e) {
    error(context, e.what(), std::string(e.what()).size());
    return 1;
  }
}

IMGJUDGE_SP_EXPORT void imgjudge_sp_free(void* processor) { delete static_cast<sentencepiece::SentencePieceProcessor*>(processor); }

// Pieces of `text` to `emit`, one call each; on failure the message to `error`.
IMGJUDGE_SP_EXPORT int imgjudge_sp_encode(const void* processor, const char* text, std::size_t size, ImgjudgeSpEmit emit,
                       ImgjudgeSpEmit error, void* context) {
  try {
    std::vector<std::string> pieces;
    const auto status =
        static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Encode(std::string_view(text, size), &pieces);
    if (!status.ok()) {
      const std::string message = status.ToString();
      error(context, message.data(), message.size());
      return 1;
    }
    for (const std::string& piece : pieces) emit(context, piece.data(), piece.size());
    return 0;
  } catch (const std::exception& e) {
    error(context, e.what(), std::string(e.what()).size());
    return 1;
  }
}

// The text of `count` pieces (each data[i], sizes[i]) to `emit`, once.
IMGJUDGE_SP_EXPORT int imgjudge_sp_decode(const void* processor, const char* const* data, const std::size_t* sizes, std::size_t count,
                       ImgjudgeSpEmit emit, ImgjudgeSpEmit error, void* context) {
  try {
    std::vector<std::string> pieces;
    pieces.reserve(count);
    for (std::size_t i = 0; i < count; ++i) pieces.emplace_back(data[i], sizes[i]);
    std::string text;
    const auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Decode(pieces, &text);
    if (!status.ok()) {
      const std::string message = status.ToString();
      error(context, message.data(), message.size());
      return 1;
    }
    emit(context, text.data(), text.size());
    return 0;
  } catch (const std::exception& e) {
    error(context, e.what(), std::string(e.what()).size());
    return 1;
  }
}

IMGJUDGE_SP_EXPORT int imgjudge_sp_size(const void* processor) {
  return static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->GetPieceSize();
}

// The piece of `id` (0 <= id < size), valid while the processor lives.
IMGJUDGE_SP_EXPORT const char* imgjudge_sp_piece(const void* processor, int id, std::size_t* size) {
  const std::string& piece = static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->IdToPiece(id);
  *size = piece.size();
  return piece.data();
}

// unk, bos, eos ids (-1: none).
IMGJUDGE_SP_EXPORT void imgjudge_sp_special_ids(const void* processor, int* unk, int* bos, int* eos) {
  const auto* p = static_cast<const sentencepiece::SentencePieceProcessor*>(processor);
  *unk = p->unk_id();
  *bos = p->bos_id();
  *eos = p->eos_id();
}

}  // extern "C"
