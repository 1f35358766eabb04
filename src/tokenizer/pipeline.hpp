// The steps a Tokenizer runs, as data: what the loaders (tokenizer.json or the
// slow-class files) build and what tokenizer.cpp executes. Internal header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/bpe.hpp"
#include "tokenizer/sentencepiece_model.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/unicode_regex.hpp"

namespace imgjudge::tokenizer {

struct NormalizerStep {
  enum class Kind {
    Nfc, Nfd, Nfkc, Nfkd,
    Lowercase,      ///< Python str.lower().
    Replace,        ///< Every match of `pattern` -> `content`.
    Strip,          ///< Whitespace at the start (`left`) and/or end (`right`).
    Prepend,        ///< `content` + text (non-empty text only).
    BertCleanup,    ///< CLIP slow class without ftfy: BERT BasicTokenizer cleaning (see tokenizer.cpp).
  };
  Kind kind;
  std::shared_ptr<const UnicodeRegex> pattern;
  std::string content;
  bool left = false;
  bool right = false;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

/// When the Metaspace pre-tokenizer puts its replacement character in front
/// of a piece that does not start with one.
enum class PrependScheme {
  Always,  ///< Every piece.
  First,   ///< Only a piece that starts at byte 0 of the input (not text after an added token).
  Never,
};

struct PreTokenizerStep {
  enum class Kind {
    Split,      ///< Regex split; `invert` makes the matches the kept pieces.
    PrefixSpace,  ///< " " before each piece that does not start with one.
    ByteLevel,    ///< Bytes -> GPT-2 printable characters.
    /// SentencePiece-style spaces (Llama, Mistral): ' ' -> `replacement`,
    /// prepend it per `prepend_scheme`, then, if `split_on_replacement`,
    /// split before each replacement character (MergedWithNext).
    Metaspace,
  };
  Kind kind;
  std::shared_ptr<const UnicodeRegex> pattern;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  std::string replacement = {};  ///< Metaspace: one character, usually "▁" (U+2581).
  PrependScheme prepend_scheme = PrependScheme::Always;
  bool split_on_replacement = true;
};

struct DecoderStep {
  enum class Kind {
    ByteLevel,    ///< Join all tokens, GPT-2 characters -> bytes -> UTF-8 (lossy).
    Replace,      ///< In each token, literal `pattern` (or `regex` when set) -> `content`.
    BpeSuffix,    ///< Each token's `pattern` (e.g. "</w>") -> " ", "" on the last token.
    Strip,        ///< Remove up to `start`/`stop` copies of `content` at each token's ends.
    Fuse,         ///< Join all tokens into one.
    PythonStrip,  ///< Join, then Python str.strip().
    /// Runs of `<0xNN>` tokens -> their bytes as UTF-8, or one U+FFFD per
    /// byte when the run is not valid UTF-8 (the Rust decoder's rule).
    ByteFallback,
    /// Each `pattern` (the replacement character) -> " ", except in the first
    /// token when `drop_replacement_in_first_token`, where it is removed.
    Metaspace,
  };
  Kind kind;
  std::string pattern;
  std::string content;
  std::size_t start = 0;
  std::size_t stop = 0;
  std::shared_ptr<const UnicodeRegex> regex = nullptr;
  bool drop_replacement_in_first_token = false;
};

/// What a transformers slow SentencePiece class does around the model
/// (tokenizer.model / spiece.model folders).
enum class SentencePieceClass {
  /// InternLM2Tokenizer: each stretch of text between added tokens is
  /// sp.encode(stretch); BOS if add_bos_token (default true).
  InternLM2,
  /// LlamaTokenizer with legacy true (transformers' default when the config
  /// leaves it out): the same as InternLM2.
  LlamaLegacy,
  /// LlamaTokenizer with legacy false: the model's dummy prefix off, "▁" put
  /// before the text (add_prefix_space), a stretch that starts with "▁" or
  /// " " encoded behind the unk token whose pieces are then cut off.
  Llama,
  /// SiglipTokenizer: as Llama (always "▁" first), each stretch first
  /// canonicalized (ASCII punctuation removed, whitespace runs -> " ",
  /// stripped); EOS appended unless already last.
  Siglip,
};

struct SentencePieceRules {
  SentencePieceClass kind = SentencePieceClass::InternLM2;
  bool add_prefix_space = true;        ///< Llama (non-legacy): "▁" before the text.
  std::string unk_token = "<unk>";     ///< Llama, Siglip: the prefix of the trick.
  std::size_t unk_token_pieces = 0;    ///< len(sp.encode(unk_token)).
};

struct Tokenizer::Impl {
  std::string flavour;
  std::vector<NormalizerStep> prepare;     ///< On the whole text, before added tokens are split off.
  std::vector<NormalizerStep> normalizer;  ///< On each stretch of text between added tokens.
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::unique_ptr<BpeModel> model;  ///< Null for SentencePiece folders.
  /// SentencePiece folders: the model run on each stretch of text between
  /// added tokens instead of normalizer / pre-tokenizer / BPE.
  std::shared_ptr<const SentencePieceModel> sentencepiece;
  SentencePieceRules sentencepiece_rules;
  /// SigLIP: the suffix ids are added only when the ids do not end with them.
  bool suffix_if_absent = false;

  std::vector<AddedToken> added_tokens;  ///< Ordered by id.
  std::unordered_map<std::string, std::size_t> added_by_content;
  std::unordered_map<std::int32_t, std::size_t> added_by_id;
  /// What the text is searched for, per added token: its content, or for a
  /// `normalized` token `normalizer`(content) as the Rust tokenizers match
  /// it (e.g. "▁</s>" under the Llama-2 normalizer).
  std::vector<std::string> added_match_texts;
  /// Candidates per first byte of the match text, longest first; split 0 =
  /// raw text, 1 = normalized text.
  std::array<std::array<std::vector<std::size_t>, 256>, 2> added_by_first_byte;

  std::vector<std::int32_t> prefix_ids;  ///< Post-processor: before the text's ids.
  std::vector<std::int32_t> suffix_ids;  ///< Post-processor: after them.

  std::vector<DecoderStep> decoder;
  /// Slow classes decode "legacy" added tokens apart from the byte-level text
  /// and join the parts with " " when spaces_between_special_tokens is set.
  std::unordered_set<std::int32_t> legacy_decode_ids;
  bool spaces_between_special_tokens = false;
  bool clean_up_tokenization_spaces = false;
  /// tokenizer.json: decode() leaves out ids that are in neither the vocab nor
  /// the added tokens, as the Rust tokenizers do (the slow classes fail).
  bool decode_skips_unknown_ids = false;

  std::unordered_set<std::int32_t> special_ids;
  std::optional<std::int32_t> bos, eos, pad, unk;
  std::optional<std::size_t> model_max_length;

  /// The base vocabulary (BPE or SentencePiece), added tokens aside.
  std::optional<std::int32_t> base_token_to_id(std::string_view token) const;
  const std::string* base_id_to_token(std::int32_t id) const;
  std::size_t base_vocab_size() const;
  std::int32_t base_id_end() const;  ///< One past its largest id.

  /// Registers an added token (or updates the flags of one with that id) and
  /// rebuilds nothing; call index_added_tokens() when done.
  void add_token(const AddedToken& token);
  /// Rebuilds the lookup tables of the added tokens. Normalized tokens are
  /// indexed by `normalizer`(content), so set the normalizer first.
  void index_added_tokens();
};

}  // namespace imgjudge::tokenizer
