// A SentencePiece model file (tokenizer.model, spiece.model), read and run
// by libsentencepiece itself: the library transformers' slow SentencePiece
// classes (InternLM2Tokenizer, LlamaTokenizer, SiglipTokenizer) call, so the
// pieces of a stretch of text are exactly theirs, whatever the model's
// normalizer, algorithm (BPE, unigram) and byte fallback. What those classes
// add around it (added tokens, BOS/EOS, their prefix tricks) is in
// tokenizer.cpp / tokenizer_loader.cpp. Internal header; libsentencepiece
// stays out of it.
//
// The library is reached through libimgjudge_sentencepiece.so
// (sentencepiece_shim.cpp), dlopen'ed locally with deep binding on first
// use: Debian's libsentencepiece exports the symbols of its own protobuf
// 3.14, which collide with the system protobuf 3.21 that libtorch loads
// (linked directly, a libtorch process crashes before main). The module is
// looked up in $IMGJUDGE_SENTENCEPIECE_MODULE, beside the binary that holds
// this code, then where the build put it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imgjudge::tokenizer {

class SentencePieceModel {
 public:
  /// Loads `path`. `keep_dummy_prefix` false clears the normalizer's
  /// add_dummy_prefix, as transformers' get_spm_processor does for
  /// SiglipTokenizer and the non-legacy LlamaTokenizer (it merges
  /// NormalizerSpec{add_dummy_prefix: false} into the file's proto).
  /// Error(InvalidModel) naming the file when it is not a SentencePiece model.
  explicit SentencePieceModel(const std::string& path, bool keep_dummy_prefix = true);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  /// sp_model.encode(text, out_type=str). Error(InvalidArgument) when the
  /// library refuses the text.
  std::vector<std::string> encode_pieces(std::string_view text) const;
  /// sp_model.decode(pieces): the text of pieces (none of them control or
  /// added tokens).
  std::string decode_pieces(const std::vector<std::string>& pieces) const;

  /// The id of `piece`, or nullopt when the model has no such piece.
  std::optional<std::int32_t> piece_id(std::string_view piece) const;
  /// sp_model.piece_to_id: the unknown piece's id for a string that is none.
  std::int32_t piece_id_or_unknown(std::string_view piece) const;
  /// The piece of `id`, or null outside [0, size()).
  const std::string* piece(std::int32_t id) const;
  /// get_piece_size().
  std::size_t size() const;

  /// The model's own ids of these pieces (-1 when it has none).
  std::int32_t unk_id() const;
  std::int32_t bos_id() const;
  std::int32_t eos_id() const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* processor_ = nullptr;  // the module's SentencePieceProcessor
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::int32_t unk_id_ = -1, bos_id_ = -1, eos_id_ = -1;
};

}  // namespace imgjudge::tokenizer
