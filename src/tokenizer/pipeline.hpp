// The steps a Tokenizer runs, as data: what the loaders (tokenizer.json or the
// slow-class files) build and what tokenizer.cpp executes. Internal header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tokenizer/bpe.hpp"
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

struct PreTokenizerStep {
  enum class Kind {
    Split,      ///< Regex split; `invert` makes the matches the kept pieces.
    PrefixSpace,  ///< " " before each piece that does not start with one.
    ByteLevel,    ///< Bytes -> GPT-2 printable characters.
  };
  Kind kind;
  std::shared_ptr<const UnicodeRegex> pattern;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
};

struct DecoderStep {
  enum class Kind {
    ByteLevel,    ///< Join all tokens, GPT-2 characters -> bytes -> UTF-8 (lossy).
    Replace,      ///< In each token, literal `pattern` -> `content`.
    BpeSuffix,    ///< Each token's `pattern` (e.g. "</w>") -> " ", "" on the last token.
    Strip,        ///< Remove up to `start`/`stop` copies of `content` at each token's ends.
    Fuse,         ///< Join all tokens into one.
    PythonStrip,  ///< Join, then Python str.strip().
  };
  Kind kind;
  std::string pattern;
  std::string content;
  std::size_t start = 0;
  std::size_t stop = 0;
};

struct Tokenizer::Impl {
  std::string flavour;
  std::vector<NormalizerStep> prepare;     ///< On the whole text, before added tokens are split off.
  std::vector<NormalizerStep> normalizer;  ///< On each stretch of text between added tokens.
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::unique_ptr<BpeModel> model;

  std::vector<AddedToken> added_tokens;  ///< Ordered by id.
  std::unordered_map<std::string, std::size_t> added_by_content;
  std::unordered_map<std::int32_t, std::size_t> added_by_id;
  /// Candidates per first byte, longest first; split 0 = raw text, 1 = normalized text.
  std::array<std::array<std::vector<std::size_t>, 256>, 2> added_by_first_byte;

  std::vector<std::int32_t> prefix_ids;  ///< Post-processor: before the text's ids.
  std::vector<std::int32_t> suffix_ids;  ///< Post-processor: after them.

  std::vector<DecoderStep> decoder;
  /// Slow classes decode "legacy" added tokens apart from the byte-level text
  /// and join the parts with " " when spaces_between_special_tokens is set.
  std::unordered_set<std::int32_t> legacy_decode_ids;
  bool spaces_between_special_tokens = false;
  bool clean_up_tokenization_spaces = false;

  std::unordered_set<std::int32_t> special_ids;
  std::optional<std::int32_t> bos, eos, pad, unk;
  std::optional<std::size_t> model_max_length;

  /// Registers an added token (or updates the flags of one with that id) and
  /// rebuilds nothing; call index_added_tokens() when done.
  void add_token(const AddedToken& token);
  void index_added_tokens();
};

}  // namespace imgjudge::tokenizer
