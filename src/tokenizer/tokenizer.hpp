// Hugging Face-compatible tokenizers (Qwen2/Qwen2-VL, GPT-2 style
// byte-level BPE, CLIP, the Llama family: Llama-2/3, Vicuna, Mistral, Yi,
// llava-hf; InternLM2 and SigLIP through SentencePiece), loaded from a model folder.
//
// Three file layouts are understood:
//  * `tokenizer.json` (the HF "fast" format): normalizer, pre_tokenizer, BPE
//    model (byte fallback included), added_tokens, post_processor and decoder
//    are read from it and run as the Rust `tokenizers` library runs them; a
//    `tokenizer_config.json` naming LlamaTokenizer(Fast) also gets that
//    class's BOS/EOS post-processor (add_bos_token / add_eos_token);
//  * `vocab.json` + `merges.txt` (+ `tokenizer_config.json`) as the "slow"
//    Python classes ship them; the flavour (Qwen2, GPT-2, CLIP) comes from
//    `tokenizer_class` and reproduces that Python class exactly.
//  * a SentencePiece `tokenizer.model` / `spiece.model` (+
//    `tokenizer_config.json`), run by libsentencepiece as transformers' slow
//    class of `tokenizer_class` runs it: InternLM2Tokenizer, LlamaTokenizer
//    (legacy or not), SiglipTokenizer. InternLM2Tokenizer folders use it even
//    beside a tokenizer.json (InternVL loads them with use_fast=False).
//
// Thread safety: a Tokenizer is immutable after loading (its BPE cache is
// internally locked); every const method may be called concurrently. Copies
// share the loaded tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgjudge::tokenizer {

/// A token matched verbatim in the input before normal tokenization
/// (`added_tokens` / `added_tokens_decoder` in HF files).
struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool special = false;      ///< Skipped by decode(skip_special_tokens=true).
  bool lstrip = false;       ///< Swallows whitespace on its left.
  bool rstrip = false;       ///< Swallows whitespace on its right.
  bool normalized = false;   ///< (tokenizer.json) matched in the normalized text.
  bool single_word = false;  ///< Only matched when not inside a word.
};

/// Which files `Tokenizer::load` reads.
enum class TokenizerFormat {
  Auto,  ///< tokenizer.json, else vocab.json + merges.txt, else a SentencePiece model (InternLM2Tokenizer: that first).
  Fast,  ///< tokenizer.json (required).
  Slow,  ///< vocab.json + merges.txt (+ tokenizer_config.json); mirrors the Python classes.
  SentencePiece,  ///< tokenizer.model or spiece.model (+ tokenizer_config.json); the slow SentencePiece classes.
};

enum class Padding {
  None,       ///< Rows keep their own length.
  Longest,    ///< Pad every row to the longest row of the batch.
  MaxLength,  ///< Pad every row to `max_length` (CLIP: 77).
};

struct BatchOptions {
  bool add_special_tokens = true;
  Padding padding = Padding::None;
  bool pad_left = false;  ///< Put padding before the tokens instead of after.
  /// Truncate (keeping special tokens) and/or pad to this length. When unset,
  /// Padding::MaxLength and `truncation` use the model_max_length.
  std::optional<std::size_t> max_length;
  bool truncation = false;
};

/// A padded batch: every row of `input_ids` and `attention_mask` has the same
/// length when padding is on; the mask is 1 for tokens and 0 for padding.
struct BatchEncoding {
  std::vector<std::vector<std::int32_t>> input_ids;
  std::vector<std::vector<std::int32_t>> attention_mask;
};

class Tokenizer {
 public:
  /// Loads the tokenizer files of a model folder. Throws Error(InvalidModel)
  /// naming the file (and line, for JSON and merges.txt) when files are
  /// missing or malformed (a folder with no tokenizer at all: the files it
  /// would need), Error(Unsupported) for a tokenizer.json component this
  /// implementation does not have (e.g. a Unigram model) and for a
  /// SentencePiece folder of another tokenizer_class.
  static Tokenizer load(const std::string& model_dir, TokenizerFormat format = TokenizerFormat::Auto);

  /// Token ids of `text` (UTF-8; Error(InvalidArgument) if invalid).
  /// `add_special_tokens` adds what the model's post-processor adds (CLIP:
  /// <|startoftext|> ... <|endoftext|>; Llama: <s>; Qwen2 and GPT-2: nothing).
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  /// The same, truncated to at most `max_length` ids in total; the special
  /// tokens are kept and the text's tokens are cut on the right.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens, std::size_t max_length) const;
  BatchEncoding encode_batch(const std::vector<std::string>& texts, const BatchOptions& options) const;

  /// Token strings of ids (`convert_ids_to_tokens`). Error(InvalidArgument)
  /// for an id that is neither in the vocab nor an added token.
  std::vector<std::string> tokens(const std::vector<std::int32_t>& ids) const;
  /// Text of ids, as HF decode(..., clean_up_tokenization_spaces=False) unless
  /// the tokenizer config asks for the clean-up. Unknown ids are
  /// Error(InvalidArgument) for the slow files and left out for tokenizer.json
  /// (as the Rust library does: models often have more embedding rows than
  /// tokens).
  std::string decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens = false) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::int32_t id) const;

  /// Entries of the base BPE vocabulary (HF `vocab_size`), without added tokens.
  std::size_t vocab_size() const;
  /// One past the largest id of vocab and added tokens (HF `len(tokenizer)`
  /// for contiguous ids): the minimum embedding rows a model needs.
  std::size_t id_end() const;
  const std::vector<AddedToken>& added_tokens() const;
  bool is_special(std::int32_t id) const;

  std::optional<std::int32_t> bos_id() const;
  std::optional<std::int32_t> eos_id() const;
  std::optional<std::int32_t> pad_id() const;
  std::optional<std::int32_t> unk_id() const;
  /// `model_max_length` of tokenizer_config.json (CLIP: 77), if it is sane.
  std::optional<std::size_t> model_max_length() const;
  /// "qwen2", "gpt2", "clip" (slow files), "tokenizer.json" or "sentencepiece".
  const std::string& flavour() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace imgjudge::tokenizer
