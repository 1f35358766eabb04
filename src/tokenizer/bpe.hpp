// Byte-pair-encoding model: a vocabulary, a ranked merge table and a word cache.
// It turns one pre-tokenized word (already in byte-level characters) into ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace imgjudge::tokenizer {

/// GPT-2's reversible byte <-> printable-character table: byte b is shown as
/// the UTF-8 string `byte_to_unicode()[b]` (e.g. ' ' -> "Ġ", '\n' -> "Ċ").
const std::vector<std::string>& byte_to_unicode();
/// Appends the byte-level form of `bytes` to `out`.
void append_byte_level(std::string_view bytes, std::string& out);
/// Inverse of append_byte_level for a token string; characters outside the
/// table are kept as their UTF-8 bytes (as the HF ByteLevel decoder does).
void append_byte_level_decoded(std::string_view token, std::string& out);

/// The two reference BPE implementations differ where a vocabulary is
/// incomplete or a merge table is not the product of training; a model
/// reproduces one of them.
enum class BpeReference {
  /// The transformers slow classes (`bpe()` in Python), for vocab.json +
  /// merges.txt: a character missing from the vocab stays a symbol and may
  /// still merge; all occurrences of the lowest-ranked pair are merged at
  /// once; a final symbol outside the vocab becomes the unk token
  /// (Error(InvalidArgument) without one).
  PythonSlowClass,
  /// The Rust `tokenizers` library, for tokenizer.json: every merge must join
  /// vocab tokens into a vocab token (checked at load); each character is
  /// looked up in the vocab first and, when missing, becomes byte tokens
  /// (`byte_fallback`), the unk token (`fuse_unk` joins runs) or nothing (it
  /// is dropped, and its neighbours may merge across the gap); merges are
  /// applied one at a time in (rank, position) order.
  RustTokenizers,
};

struct BpeOptions {
  std::string end_of_word_suffix;         ///< CLIP: "</w>" appended to a word's last symbol.
  std::string continuing_subword_prefix;  ///< WordPiece-style "##" on non-initial symbols.
  bool ignore_merges = false;             ///< Llama-3: a word found whole in the vocab is one token.
  std::optional<std::string> unk_token;   ///< Used for symbols missing from the vocab.
  BpeReference reference = BpeReference::PythonSlowClass;
  /// RustTokenizers only (Llama-2, Mistral): a character missing from the
  /// vocab becomes one `<0xNN>` token per UTF-8 byte. The vocab must then
  /// hold all 256 byte tokens (checked at load).
  bool byte_fallback = false;
  /// RustTokenizers only: consecutive unknown characters give one unk token.
  bool fuse_unk = false;
};

class BpeModel {
 public:
  using Vocab = std::unordered_map<std::string, std::int32_t>;
  using Merges = std::vector<std::pair<std::string, std::string>>;

  /// `merges` in rank order (first = applied first). `origin` names the
  /// source in error messages. Throws Error(InvalidModel) for a vocab with
  /// duplicate or negative ids or an unk token missing from the vocab, and
  /// (RustTokenizers) for a merge of tokens outside the vocab or a
  /// byte-fallback vocab without all 256 byte tokens.
  BpeModel(Vocab vocab, const Merges& merges, BpeOptions options, const std::string& origin);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  /// Appends the ids of one word. PythonSlowClass: throws
  /// Error(InvalidArgument) if a symbol is not in the vocab and no unk token
  /// is configured (RustTokenizers drops such characters instead).
  void encode_word(std::string_view word, std::vector<std::int32_t>& ids) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(std::int32_t id) const;
  std::size_t vocab_size() const { return vocab_.size(); }
  /// One past the largest id in the vocab.
  std::int32_t id_end() const { return static_cast<std::int32_t>(id_to_token_.size()); }
  const BpeOptions& options() const { return options_; }
  const Vocab& vocab() const { return vocab_; }
  std::size_t merge_count() const { return merges_.size(); }

 private:
  struct MergeRule {
    std::uint32_t rank;
    std::int32_t result;  ///< Symbol id of the joined pair.
  };
  static std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  /// A symbol of a word being merged, in a doubly linked list.
  struct Node {
    std::int32_t symbol;  ///< >= 0: interned symbol; < 0: -1 - index into the word's unknown strings.
    std::int32_t prev;
    std::int32_t next;
    bool alive;
  };

  std::int32_t intern(const std::string& symbol);
  void check_merges_join_vocab_tokens(const Merges& merges, const std::string& origin) const;
  void merge_symbols(std::string_view word, std::vector<std::int32_t>& ids) const;
  const MergeRule* rule_after(const std::vector<Node>& nodes, std::int32_t left) const;
  void merge_by_rank_batches(std::vector<Node>& nodes) const;
  void merge_one_at_a_time(std::vector<Node>& nodes) const;

  BpeOptions options_;
  Vocab vocab_;
  std::vector<std::string> id_to_token_;     ///< Empty string for unused ids.
  std::vector<bool> id_used_;
  // Merge symbols are interned: a symbol is any string a merge mentions or a
  // vocab entry; symbol_token_[s] is its vocab id or -1.
  std::unordered_map<std::string, std::int32_t> symbol_ids_;
  std::vector<std::string> symbols_;
  std::vector<std::int32_t> symbol_token_;
  std::unordered_map<std::uint64_t, MergeRule> merges_;
  std::optional<std::int32_t> unk_id_;
  std::int32_t unk_symbol_ = -1;                ///< Interned symbol of the unk token (RustTokenizers).
  std::vector<std::int32_t> byte_symbols_;      ///< byte_fallback: interned symbol of "<0xNN>" per byte.

  // Words repeat a lot in real text; cache their ids (bounded, thread-safe).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache_;
};

}  // namespace imgjudge::tokenizer
