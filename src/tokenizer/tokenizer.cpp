// Running a tokenizer pipeline: added-token split -> normalizer ->
// pre-tokenizer -> BPE -> post-processor, and the way back for decode().
#include "tokenizer/tokenizer.hpp"

#include <algorithm>
#include <optional>

#include <fmt/core.h>

#include <unicode/uchar.h>

#include "imgjudge/error.hpp"
#include "tokenizer/pipeline.hpp"
#include "tokenizer/unicode_text.hpp"

namespace imgjudge::tokenizer {
namespace {

using Impl = Tokenizer::Impl;

// ---------------------------------------------------------------- normalizer

// CLIPTokenizer without ftfy cleans text with BERT's BasicTokenizer
// (strip_accents=False, do_split_on_punc=False) and joins its words by " ":
// drop NUL, U+FFFD and category C* (except \t\n\r), map \t\n\r and Zs to ' ',
// put spaces around CJK ideographs, NFC, split on Python whitespace,
// lower-case each word.
std::string bert_cleanup(std::string_view text) {
  std::string cleaned;
  cleaned.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t length = 0;
    const char32_t c = unicode::decode_at(text, pos, length);
    pos += length;
    const bool tab_or_newline = c == '\t' || c == '\n' || c == '\r';
    if (c == 0 || c == 0xFFFD || (!tab_or_newline && unicode::is_other_category(c))) continue;
    if (c == ' ' || tab_or_newline || unicode::is_space_separator(c)) {
      cleaned.push_back(' ');
    } else if (unicode::is_cjk_ideograph(c)) {
      cleaned.push_back(' ');
      unicode::append_utf8(cleaned, c);
      cleaned.push_back(' ');
    } else {
      unicode::append_utf8(cleaned, c);
    }
  }
  const std::string normalized = unicode::nfc(cleaned);
  std::string lowered;
  for (const std::string_view word : unicode::split_whitespace(normalized)) {
    if (!lowered.empty()) lowered.push_back(' ');
    lowered += unicode::to_lower(word);
  }
  // The reference splits once more after lower-casing.
  std::string joined;
  joined.reserve(lowered.size());
  for (const std::string_view word : unicode::split_whitespace(lowered)) {
    if (!joined.empty()) joined.push_back(' ');
    joined.append(word);
  }
  return joined;
}

std::string replace_literal(std::string text, std::string_view pattern, std::string_view content) {
  if (pattern.empty()) return text;
  std::string out;
  std::size_t last = 0;
  for (std::size_t found = text.find(pattern); found != std::string::npos; found = text.find(pattern, last)) {
    out.append(text, last, found - last);
    out.append(content);
    last = found + pattern.size();
  }
  out.append(text, last, std::string::npos);
  return out;
}

std::string replace_all(std::string_view text, const UnicodeRegex& pattern, std::string_view content) {
  std::string out;
  std::size_t last = 0;
  for (const auto& [begin, end] : pattern.find_all(text)) {
    out.append(text.substr(last, begin - last));
    out.append(content);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

std::string normalize(const std::vector<NormalizerStep>& steps, std::string_view input) {
  std::string text(input);
  for (const NormalizerStep& step : steps) {
    switch (step.kind) {
      case NormalizerStep::Kind::Nfc: text = unicode::nfc(text); break;
      case NormalizerStep::Kind::Nfd: text = unicode::nfd(text); break;
      case NormalizerStep::Kind::Nfkc: text = unicode::nfkc(text); break;
      case NormalizerStep::Kind::Nfkd: text = unicode::nfkd(text); break;
      case NormalizerStep::Kind::Lowercase: text = unicode::to_lower(text); break;
      case NormalizerStep::Kind::Replace: text = replace_all(text, *step.pattern, step.content); break;
      case NormalizerStep::Kind::Strip: {
        std::string_view view = text;
        if (step.left) view = unicode::lstrip(view);
        if (step.right) view = unicode::rstrip(view);
        text = std::string(view);
        break;
      }
      case NormalizerStep::Kind::Prepend:
        if (!text.empty()) text = step.content + text;
        break;
      case NormalizerStep::Kind::BertCleanup: text = bert_cleanup(text); break;
    }
  }
  return text;
}

// ------------------------------------------------------------ pre-tokenizer

/// A pre-tokenized piece of text. `at_input_start`: it begins at byte 0 of
/// the input, which Metaspace's prepend_scheme "first" asks about.
struct Piece {
  std::string text;
  bool at_input_start;
};

/// One run of a split: [begin, end) and whether the pattern matched there.
struct Run {
  std::size_t begin, end;
  bool is_match;
};

// Which spans become pieces, as the Rust NormalizedString::split decides:
// MergedWithPrevious / MergedWithNext glue a match only to a neighbouring
// non-match, so of two adjacent matches one stands alone ("a--b" on '-'
// MergedWithPrevious -> "a-", "-", "b"; "▁▁b" on '▁' MergedWithNext -> "▁",
// "▁b"); Contiguous joins adjacent matches.
std::vector<std::pair<std::size_t, std::size_t>> spans_by_behavior(const std::vector<Run>& runs,
                                                                  SplitBehavior behavior) {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const Run& run : runs) spans.emplace_back(run.begin, run.end);
      break;
    case SplitBehavior::Removed:
      for (const Run& run : runs) {
        if (!run.is_match) spans.emplace_back(run.begin, run.end);
      }
      break;
    case SplitBehavior::Contiguous:
      for (const Run& run : runs) {
        if (run.is_match == previous_match && !spans.empty()) {
          spans.back().second = run.end;
        } else {
          spans.emplace_back(run.begin, run.end);
        }
        previous_match = run.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Run& run : runs) {
        if (run.is_match && !previous_match && !spans.empty()) {
          spans.back().second = run.end;
        } else {
          spans.emplace_back(run.begin, run.end);
        }
        previous_match = run.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto run = runs.rbegin(); run != runs.rend(); ++run) {
        if (run->is_match && !previous_match && !spans.empty()) {
          spans.back().first = run->begin;
        } else {
          spans.emplace_back(run->begin, run->end);
        }
        previous_match = run->is_match;
      }
      std::reverse(spans.begin(), spans.end());
      break;
  }
  return spans;
}

// Cuts `piece` into the spans; only a span at byte 0 of a piece that starts
// the input still starts it.
void emit_spans(const Piece& piece, const std::vector<std::pair<std::size_t, std::size_t>>& spans,
                std::vector<Piece>& out) {
  for (const auto& [begin, end] : spans) {
    out.push_back({piece.text.substr(begin, end - begin), piece.at_input_start && begin == 0});
  }
}

void split_piece(const PreTokenizerStep& step, const Piece& piece, std::vector<Piece>& out) {
  std::vector<Run> runs;
  std::size_t last = 0;
  // With `invert` the matches are the content and the rest are delimiters.
  for (const auto& [begin, end] : step.pattern->find_all(piece.text)) {
    if (begin > last) runs.push_back({last, begin, step.invert});
    runs.push_back({begin, end, !step.invert});
    last = end;
  }
  if (last < piece.text.size()) runs.push_back({last, piece.text.size(), step.invert});
  emit_spans(piece, spans_by_behavior(runs, step.behavior), out);
}

// The Metaspace pre-tokenizer (Rust pre_tokenizers/metaspace.rs).
void metaspace_piece(const PreTokenizerStep& step, const Piece& piece, std::vector<Piece>& out) {
  const std::string& replacement = step.replacement;
  Piece replaced{replace_literal(piece.text, " ", replacement), piece.at_input_start};
  const bool starts_with_replacement = replaced.text.compare(0, replacement.size(), replacement) == 0;
  const bool prepend = step.prepend_scheme == PrependScheme::Always ||
                       (step.prepend_scheme == PrependScheme::First && piece.at_input_start);
  if (prepend && !starts_with_replacement) replaced.text.insert(0, replacement);
  if (!step.split_on_replacement) {
    out.push_back(std::move(replaced));
    return;
  }
  // Every replacement character is a match of its own; the text between
  // two of them is one non-matching run.
  std::vector<Run> runs;
  std::size_t last = 0;
  for (std::size_t found = replaced.text.find(replacement); found != std::string::npos;
       found = replaced.text.find(replacement, last)) {
    if (found > last) runs.push_back({last, found, false});
    runs.push_back({found, found + replacement.size(), true});
    last = found + replacement.size();
  }
  if (last < replaced.text.size()) runs.push_back({last, replaced.text.size(), false});
  emit_spans(replaced, spans_by_behavior(runs, SplitBehavior::MergedWithNext), out);
}

std::vector<Piece> pre_tokenize(const std::vector<PreTokenizerStep>& steps, std::string text, bool at_input_start) {
  std::vector<Piece> pieces;
  pieces.push_back({std::move(text), at_input_start});
  std::vector<Piece> next;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (Piece& piece : pieces) {
      // Empty pieces are dropped after every step, as PreTokenizedString::split does.
      if (piece.text.empty()) continue;
      switch (step.kind) {
        case PreTokenizerStep::Kind::Split:
          split_piece(step, piece, next);
          break;
        case PreTokenizerStep::Kind::PrefixSpace:
          if (piece.text.front() != ' ') piece.text.insert(0, " ");
          next.push_back(std::move(piece));
          break;
        case PreTokenizerStep::Kind::ByteLevel: {
          std::string mapped;
          append_byte_level(piece.text, mapped);
          next.push_back({std::move(mapped), piece.at_input_start});
          break;
        }
        case PreTokenizerStep::Kind::Metaspace:
          metaspace_piece(step, piece, next);
          break;
      }
    }
    pieces.swap(next);
  }
  return pieces;
}

// ------------------------------------------------------------- added tokens

struct Chunk {
  std::size_t begin, end;
  const AddedToken* added;  ///< Null for ordinary text.
};

bool is_word_char(std::string_view text, std::size_t pos) {
  std::size_t length = 0;
  const char32_t c = unicode::decode_at(text, pos, length);
  return c == '_' || u_isalnum(static_cast<UChar32>(c));
}

bool word_char_before(std::string_view text, std::size_t pos) {
  if (pos == 0) return false;
  std::size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return is_word_char(text, start);
}

// Leftmost-longest matching of the added tokens, then the lstrip/rstrip
// rules of the Python classes (an rstrip token eats whitespace on its right,
// an lstrip token on its left).
std::vector<Chunk> split_added_tokens(const Impl& impl, std::string_view text, int stage) {
  std::vector<Chunk> chunks;
  const auto& candidates = impl.added_by_first_byte[static_cast<std::size_t>(stage)];
  std::size_t text_start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const AddedToken* found = nullptr;
    std::size_t found_length = 0;
    for (const std::size_t index : candidates[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& token = impl.added_tokens[index];
      const std::string& match_text = impl.added_match_texts[index];
      if (text.compare(pos, match_text.size(), match_text) != 0) continue;
      if (token.single_word &&
          (word_char_before(text, pos) ||
           (pos + match_text.size() < text.size() && is_word_char(text, pos + match_text.size())))) {
        continue;
      }
      found = &token;
      found_length = match_text.size();
      break;
    }
    if (!found) {
      ++pos;
      continue;
    }
    if (pos > text_start) chunks.push_back({text_start, pos, nullptr});
    chunks.push_back({pos, pos + found_length, found});
    pos += found_length;
    text_start = pos;
  }
  if (text_start < text.size()) chunks.push_back({text_start, text.size(), nullptr});

  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const AddedToken* token = chunks[i].added;
    if (!token) continue;
    if (token->rstrip && i + 1 < chunks.size() && !chunks[i + 1].added) {
      Chunk& right = chunks[i + 1];
      right.begin = right.end - unicode::lstrip(text.substr(right.begin, right.end - right.begin)).size();
    }
    if (token->lstrip && i > 0 && !chunks[i - 1].added) {
      Chunk& left = chunks[i - 1];
      left.end = left.begin + unicode::rstrip(text.substr(left.begin, left.end - left.begin)).size();
    }
  }
  chunks.erase(std::remove_if(chunks.begin(), chunks.end(), [](const Chunk& c) { return c.begin == c.end; }),
               chunks.end());
  return chunks;
}

void encode_words(const Impl& impl, std::string text, bool at_input_start, std::vector<std::int32_t>& ids) {
  for (const Piece& word : pre_tokenize(impl.pre_tokenizer, std::move(text), at_input_start)) {
    impl.model->encode_word(word.text, ids);
  }
}

std::vector<std::int32_t> encode_text(const Impl& impl, std::string_view input) {
  unicode::check_utf8(input, "text");
  const std::string text = normalize(impl.prepare, input);
  const bool has_normalized_tokens =
      std::any_of(impl.added_tokens.begin(), impl.added_tokens.end(), [](const AddedToken& t) { return t.normalized; });
  std::vector<std::int32_t> ids;
  for (const Chunk& chunk : split_added_tokens(impl, text, 0)) {
    if (chunk.added) {
      ids.push_back(chunk.added->id);
      continue;
    }
    std::string normalized = normalize(impl.normalizer, std::string_view(text).substr(chunk.begin, chunk.end - chunk.begin));
    // The fast pipeline has no `prepare` step, so chunk offsets are offsets
    // in the input (what Metaspace's prepend_scheme "first" needs).
    const bool chunk_at_input_start = chunk.begin == 0;
    if (!has_normalized_tokens) {
      encode_words(impl, std::move(normalized), chunk_at_input_start, ids);
      continue;
    }
    for (const Chunk& inner : split_added_tokens(impl, normalized, 1)) {
      if (inner.added) {
        ids.push_back(inner.added->id);
      } else {
        encode_words(impl, normalized.substr(inner.begin, inner.end - inner.begin),
                     chunk_at_input_start && inner.begin == 0, ids);
      }
    }
  }
  return ids;
}

// ------------------------------------------------------------------ decoding

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.append(separator);
    out.append(parts[i]);
  }
  return out;
}

// The byte of a `<0xNN>` token, as the Rust ByteFallback decoder reads it:
// exactly 6 bytes, "<0x" ... ">", and u8::from_str_radix(NN, 16), which
// accepts either case and also a '+' sign ("<0x+A>" is byte 0x0A).
std::optional<unsigned char> byte_token_value(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  const auto hex_value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int high = hex_value(token[3]);
  const int low = hex_value(token[4]);
  if (token[3] == '+' && low >= 0) return static_cast<unsigned char>(low);
  if (high < 0 || low < 0) return std::nullopt;
  return static_cast<unsigned char>(high * 16 + low);
}

// Rust decoders/byte_fallback.rs: each run of byte tokens becomes one token,
// its bytes as text if they are valid UTF-8, else one U+FFFD per byte (not
// per invalid sequence, unlike Python's errors="replace").
std::vector<std::string> decode_byte_fallback(std::vector<std::string> tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size());
  std::string bytes;
  const auto flush = [&] {
    if (bytes.empty()) return;
    if (unicode::is_valid_utf8(bytes)) {
      out.push_back(bytes);
    } else {
      out.insert(out.end(), bytes.size(), std::string("\xEF\xBF\xBD"));  // U+FFFD
    }
    bytes.clear();
  };
  for (std::string& token : tokens) {
    if (const auto byte = byte_token_value(token)) {
      bytes.push_back(static_cast<char>(*byte));
      continue;
    }
    flush();
    out.push_back(std::move(token));
  }
  flush();
  return out;
}

// Rust's Metaspace decoder: the replacement character becomes a space, except
// in the first token (unless the prepend scheme is "never"), where every one
// of them is removed: the space the pre-tokenizer (may have) put there.
void decode_metaspace(const DecoderStep& step, std::vector<std::string>& tokens) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const bool drop = i == 0 && step.drop_replacement_in_first_token;
    tokens[i] = replace_literal(std::move(tokens[i]), step.pattern, drop ? "" : " ");
  }
}

std::string run_decoder(const std::vector<DecoderStep>& steps, std::vector<std::string> tokens) {
  // Without a decoder the Rust tokenizers join the tokens with spaces (only
  // a tokenizer.json can lack one; the slow classes always set one).
  if (steps.empty()) return join(tokens, " ");
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::ByteLevel: {
        std::string bytes;
        for (const std::string& token : tokens) append_byte_level_decoded(token, bytes);
        tokens.assign(1, unicode::decode_utf8_lossy(bytes));
        break;
      }
      case DecoderStep::Kind::Replace:
        for (std::string& token : tokens) {
          token = step.regex ? replace_all(token, *step.regex, step.content)
                             : replace_literal(std::move(token), step.pattern, step.content);
        }
        break;
      case DecoderStep::Kind::BpeSuffix:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          tokens[i] = replace_literal(std::move(tokens[i]), step.pattern, i + 1 == tokens.size() ? "" : " ");
        }
        break;
      case DecoderStep::Kind::Strip:
        for (std::string& token : tokens) {
          std::size_t begin = 0, end = token.size();
          for (std::size_t n = 0; n < step.start && token.compare(begin, step.content.size(), step.content) == 0 &&
                                  begin + step.content.size() <= end;
               ++n) {
            begin += step.content.size();
          }
          for (std::size_t n = 0; n < step.stop && end >= begin + step.content.size() &&
                                  token.compare(end - step.content.size(), step.content.size(), step.content) == 0;
               ++n) {
            end -= step.content.size();
          }
          token = token.substr(begin, end - begin);
        }
        break;
      case DecoderStep::Kind::Fuse:
        tokens.assign(1, join(tokens, ""));
        break;
      case DecoderStep::Kind::PythonStrip:
        tokens.assign(1, std::string(unicode::strip(join(tokens, ""))));
        break;
      case DecoderStep::Kind::ByteFallback:
        tokens = decode_byte_fallback(std::move(tokens));
        break;
      case DecoderStep::Kind::Metaspace:
        decode_metaspace(step, tokens);
        break;
    }
  }
  return join(tokens, "");
}

// transformers' clean_up_tokenization: remove spaces before punctuation and
// English contractions.
std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) text = replace_literal(std::move(text), from, to);
  return text;
}

const std::string& token_of(const Impl& impl, std::int32_t id) {
  const auto added = impl.added_by_id.find(id);
  if (added != impl.added_by_id.end()) return impl.added_tokens[added->second].content;
  if (const std::string* token = impl.base_id_to_token(id)) return *token;
  throw Error(ErrorCode::InvalidArgument, fmt::format("token id {} is not in the vocabulary", id));
}

// ------------------------------------------------------------- SentencePiece
//
// transformers' slow SentencePiece classes (PreTrainedTokenizer.tokenize and
// their overrides, 4.50): split the text on the added tokens, then each
// stretch through the class's _tokenize, pieces to ids through the added
// tokens first, then the model.

constexpr std::string_view kSpieceUnderline = "\xE2\x96\x81";  // U+2581

// Python's string.punctuation.
bool is_ascii_punctuation(char32_t c) {
  return c < 0x80 && std::string_view("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~").find(static_cast<char>(c)) != std::string_view::npos;
}

// SiglipTokenizer.canonicalize_text: punctuation removed, re.sub(r"\s+", " "), strip().
std::string siglip_canonicalize(std::string_view text) {
  std::string out;
  bool in_space = false;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t length = 0;
    const char32_t c = unicode::decode_at(text, pos, length);
    pos += length;
    if (is_ascii_punctuation(c)) continue;
    if (unicode::is_python_space(c)) {
      if (!in_space) out.push_back(' ');
      in_space = true;
      continue;
    }
    in_space = false;
    unicode::append_utf8(out, c);
  }
  return std::string(unicode::strip(out));
}

bool is_special_content(const Impl& impl, const std::string& token) {
  const auto added = impl.added_by_content.find(token);
  return added != impl.added_by_content.end() && impl.special_ids.count(impl.added_tokens[added->second].id) > 0;
}

// PreTrainedTokenizer.tokenize with do_lower_case (SigLIP): every character
// lower-cased on its own (the pattern's "(.+?)"), special tokens kept.
std::string lower_case_outside_specials(const Impl& impl, std::string_view text) {
  std::string out;
  for (std::size_t pos = 0; pos < text.size();) {
    const AddedToken* special = nullptr;
    for (const std::size_t index : impl.added_by_first_byte[0][static_cast<unsigned char>(text[pos])]) {
      const AddedToken& token = impl.added_tokens[index];
      if (impl.special_ids.count(token.id) && text.compare(pos, token.content.size(), token.content) == 0) {
        special = &token;
        break;
      }
    }
    if (special != nullptr) {
      out += special->content;
      pos += special->content.size();
      continue;
    }
    std::size_t length = 0;
    unicode::decode_at(text, pos, length);
    out += unicode::to_lower(text.substr(pos, length));
    pos += length;
  }
  return out;
}

// The class's _tokenize of one stretch of text between added tokens.
std::vector<std::string> sentencepiece_pieces(const Impl& impl, std::string_view stretch) {
  const SentencePieceModel& model = *impl.sentencepiece;
  const SentencePieceRules& rules = impl.sentencepiece_rules;
  std::string text(stretch);
  switch (rules.kind) {
    case SentencePieceClass::InternLM2:
    case SentencePieceClass::LlamaLegacy:
      return model.encode_pieces(text);
    case SentencePieceClass::Llama:
      if (text.compare(0, kSpieceUnderline.size(), kSpieceUnderline) != 0 && (text.empty() || text[0] != ' ')) {
        return model.encode_pieces(text);
      }
      break;
    case SentencePieceClass::Siglip:
      text = siglip_canonicalize(text);
      break;
  }
  // With the dummy prefix off, a leading "▁" would be dropped: encode behind
  // the unk token's text and cut its pieces off.
  std::vector<std::string> pieces = model.encode_pieces(rules.unk_token + text);
  if (pieces.size() < rules.unk_token_pieces) return pieces;
  return {pieces.begin() + static_cast<std::ptrdiff_t>(rules.unk_token_pieces), pieces.end()};
}

std::vector<std::int32_t> encode_sentencepiece(const Impl& impl, std::string_view input) {
  unicode::check_utf8(input, "text");
  const SentencePieceRules& rules = impl.sentencepiece_rules;
  std::string text(input);
  // Llama (non-legacy) and SigLIP: "▁" + text with its "▁" made spaces.
  const bool prefixed = (rules.kind == SentencePieceClass::Llama && rules.add_prefix_space && !text.empty()) ||
                        rules.kind == SentencePieceClass::Siglip;
  if (prefixed) text = std::string(kSpieceUnderline) + replace_literal(std::move(text), kSpieceUnderline, " ");
  if (rules.kind == SentencePieceClass::Siglip) text = lower_case_outside_specials(impl, text);
  std::vector<std::string> tokens;
  std::vector<const AddedToken*> added;  // per token: the added token it is, or null
  for (const Chunk& chunk : split_added_tokens(impl, text, 0)) {
    if (chunk.added) {
      tokens.push_back(chunk.added->content);
      added.push_back(chunk.added);
      continue;
    }
    for (std::string& piece : sentencepiece_pieces(impl, std::string_view(text).substr(chunk.begin, chunk.end - chunk.begin))) {
      tokens.push_back(std::move(piece));
      added.push_back(nullptr);
    }
  }
  // A lone "▁" before a special token is dropped (Llama non-legacy, SigLIP).
  std::size_t first = 0;
  if (prefixed && tokens.size() > 1 && tokens[0] == kSpieceUnderline && added[1] != nullptr &&
      impl.special_ids.count(added[1]->id)) {
    first = 1;
  }
  // convert_tokens_to_ids: an added token's content first, then the model's pieces.
  std::vector<std::int32_t> ids;
  for (std::size_t i = first; i < tokens.size(); ++i) {
    const auto found = impl.added_by_content.find(tokens[i]);
    ids.push_back(found != impl.added_by_content.end() ? impl.added_tokens[found->second].id
                                                       : impl.sentencepiece->piece_id_or_unknown(tokens[i]));
  }
  return ids;
}

// The class's convert_tokens_to_string of a run of tokens (no legacy added tokens).
std::string sentencepiece_tokens_to_string(const Impl& impl, std::vector<std::string> tokens) {
  const SentencePieceModel& model = *impl.sentencepiece;
  const SentencePieceRules& rules = impl.sentencepiece_rules;
  const bool llama = rules.kind == SentencePieceClass::Llama || rules.kind == SentencePieceClass::LlamaLegacy;
  // Llama: "since we manually add the prefix space, we have to remove it when decoding".
  if (llama && rules.add_prefix_space && !tokens.empty() && tokens[0].compare(0, kSpieceUnderline.size(), kSpieceUnderline) == 0) {
    tokens[0] = tokens[0].substr(kSpieceUnderline.size());
  }
  std::string out;
  std::vector<std::string> pieces;
  bool previous_special = false;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (is_special_content(impl, tokens[i])) {
      const bool space = llama ? !previous_special && i != 0 && rules.kind == SentencePieceClass::LlamaLegacy
                               : !previous_special;
      if (space) out += ' ';
      out += model.decode_pieces(pieces) + tokens[i];
      pieces.clear();
      previous_special = true;
    } else {
      if (llama && previous_special && i == 1 && rules.add_prefix_space &&
          tokens[i].compare(0, kSpieceUnderline.size(), kSpieceUnderline) != 0) {
        out += ' ';
      }
      pieces.push_back(tokens[i]);
      previous_special = false;
    }
  }
  out += model.decode_pieces(pieces);
  switch (rules.kind) {
    case SentencePieceClass::InternLM2:
      // It always cleans up, then puts a space before the text that [1:] removes again.
      return clean_up_tokenization(std::move(out));
    case SentencePieceClass::Siglip:
      return std::string(unicode::strip(out));
    case SentencePieceClass::Llama:
    case SentencePieceClass::LlamaLegacy:
      break;
  }
  return out;
}

std::string tokens_to_string(const Impl& impl, std::vector<std::string> tokens) {
  if (impl.sentencepiece) return sentencepiece_tokens_to_string(impl, std::move(tokens));
  return run_decoder(impl.decoder, std::move(tokens));
}

}  // namespace

// ---------------------------------------------------------------- Impl setup

std::optional<std::int32_t> Tokenizer::Impl::base_token_to_id(std::string_view token) const {
  if (sentencepiece) return sentencepiece->piece_id(token);
  return model->token_to_id(token);
}

const std::string* Tokenizer::Impl::base_id_to_token(std::int32_t id) const {
  if (sentencepiece) return sentencepiece->piece(id);
  return model->id_to_token(id);
}

std::size_t Tokenizer::Impl::base_vocab_size() const {
  return sentencepiece ? sentencepiece->size() : model->vocab_size();
}

std::int32_t Tokenizer::Impl::base_id_end() const {
  return sentencepiece ? static_cast<std::int32_t>(sentencepiece->size()) : model->id_end();
}

void Tokenizer::Impl::add_token(const AddedToken& token) {
  const auto existing = added_by_id.find(token.id);
  if (existing != added_by_id.end()) {
    added_tokens[existing->second] = token;
  } else {
    added_by_id.emplace(token.id, added_tokens.size());
    added_tokens.push_back(token);
  }
}

void Tokenizer::Impl::index_added_tokens() {
  std::sort(added_tokens.begin(), added_tokens.end(),
            [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  added_by_id.clear();
  added_by_content.clear();
  for (auto& stage : added_by_first_byte) {
    for (auto& list : stage) list.clear();
  }
  added_match_texts.clear();
  for (std::size_t i = 0; i < added_tokens.size(); ++i) {
    const AddedToken& token = added_tokens[i];
    added_by_id[token.id] = i;
    added_by_content[token.content] = i;
    if (token.special) special_ids.insert(token.id);
    added_match_texts.push_back(token.normalized ? normalize(normalizer, token.content) : token.content);
    const std::string& match_text = added_match_texts.back();
    if (match_text.empty()) continue;
    added_by_first_byte[token.normalized ? 1 : 0][static_cast<unsigned char>(match_text[0])].push_back(i);
  }
  for (auto& stage : added_by_first_byte) {
    for (auto& list : stage) {
      std::stable_sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) {
        return added_match_texts[a].size() > added_match_texts[b].size();
      });
    }
  }
}

// ------------------------------------------------------------------- public

namespace {
std::vector<std::int32_t> encode_any(const Impl& impl, std::string_view text) {
  return impl.sentencepiece ? encode_sentencepiece(impl, text) : encode_text(impl, text);
}

// The post-processor's ids around `ids` (SigLIP: the suffix only when absent).
std::vector<std::int32_t> with_special_tokens(const Impl& impl, const std::vector<std::int32_t>& ids) {
  std::vector<std::int32_t> out(impl.prefix_ids);
  out.insert(out.end(), ids.begin(), ids.end());
  const bool present = impl.suffix_if_absent && !impl.suffix_ids.empty() && ids.size() >= impl.suffix_ids.size() &&
                       std::equal(impl.suffix_ids.rbegin(), impl.suffix_ids.rend(), ids.rbegin());
  if (!present) out.insert(out.end(), impl.suffix_ids.begin(), impl.suffix_ids.end());
  return out;
}
}  // namespace

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<std::int32_t> ids = encode_any(*impl_, text);
  if (!add_special_tokens) return ids;
  return with_special_tokens(*impl_, ids);
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                            std::size_t max_length) const {
  std::vector<std::int32_t> ids = encode_any(*impl_, text);
  const std::size_t specials = add_special_tokens ? impl_->prefix_ids.size() + impl_->suffix_ids.size() : 0;
  if (max_length < specials) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("max_length {} cannot hold the {} special tokens the tokenizer adds",
                                                        max_length, specials));
  }
  if (ids.size() > max_length - specials) ids.resize(max_length - specials);
  if (!add_special_tokens) return ids;
  std::vector<std::int32_t> out(impl_->prefix_ids);
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return out;
}

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts, const BatchOptions& options) const {
  std::optional<std::size_t> max_length = options.max_length;
  if (!max_length && (options.truncation || options.padding == Padding::MaxLength)) max_length = impl_->model_max_length;
  if (!max_length && (options.truncation || options.padding == Padding::MaxLength)) {
    throw Error(ErrorCode::InvalidArgument, "encode_batch: truncation/max-length padding needs max_length "
                                            "(the tokenizer config has no model_max_length)");
  }
  BatchEncoding batch;
  batch.input_ids.reserve(texts.size());
  for (const std::string& text : texts) {
    batch.input_ids.push_back(options.truncation ? encode(text, options.add_special_tokens, *max_length)
                                                 : encode(text, options.add_special_tokens));
  }
  std::size_t target = 0;
  if (options.padding == Padding::MaxLength) {
    target = *max_length;
  } else if (options.padding == Padding::Longest) {
    for (const auto& row : batch.input_ids) target = std::max(target, row.size());
  }
  if (options.padding != Padding::None && !impl_->pad) {
    throw Error(ErrorCode::InvalidArgument, "encode_batch: padding requested but the tokenizer has no pad token");
  }
  batch.attention_mask.reserve(texts.size());
  for (auto& row : batch.input_ids) {
    std::vector<std::int32_t> mask(row.size(), 1);
    if (options.padding != Padding::None && row.size() < target) {
      const std::size_t missing = target - row.size();
      const auto row_at = options.pad_left ? row.begin() : row.end();
      const auto mask_at = options.pad_left ? mask.begin() : mask.end();
      row.insert(row_at, missing, *impl_->pad);
      mask.insert(mask_at, missing, 0);
    }
    batch.attention_mask.push_back(std::move(mask));
  }
  return batch;
}

std::vector<std::string> Tokenizer::tokens(const std::vector<std::int32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const std::int32_t id : ids) out.push_back(token_of(*impl_, id));
  return out;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::vector<std::string> parts;
  std::vector<std::string> current;
  for (const std::int32_t id : ids) {
    if (impl.decode_skips_unknown_ids && !impl.added_by_id.count(id) && !impl.base_id_to_token(id)) continue;
    const std::string& token = token_of(impl, id);
    if (skip_special_tokens && impl.special_ids.count(id)) continue;
    if (impl.legacy_decode_ids.count(id)) {
      if (!current.empty()) {
        std::string text = tokens_to_string(impl, std::move(current));
        if (!text.empty()) parts.push_back(std::move(text));
        current.clear();
      }
      parts.push_back(token);
    } else {
      current.push_back(token);
    }
  }
  if (!current.empty()) parts.push_back(tokens_to_string(impl, std::move(current)));
  std::string text = join(parts, impl.spaces_between_special_tokens ? " " : "");
  return impl.clean_up_tokenization_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const auto added = impl_->added_by_content.find(std::string(token));
  if (added != impl_->added_by_content.end()) return impl_->added_tokens[added->second].id;
  return impl_->base_token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  const auto added = impl_->added_by_id.find(id);
  if (added != impl_->added_by_id.end()) return impl_->added_tokens[added->second].content;
  if (const std::string* token = impl_->base_id_to_token(id)) return *token;
  return std::nullopt;
}

std::size_t Tokenizer::vocab_size() const { return impl_->base_vocab_size(); }

std::size_t Tokenizer::id_end() const {
  std::int32_t end = impl_->base_id_end();
  for (const AddedToken& token : impl_->added_tokens) end = std::max(end, token.id + 1);
  return static_cast<std::size_t>(end);
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added_tokens; }
bool Tokenizer::is_special(std::int32_t id) const { return impl_->special_ids.count(id) > 0; }
std::optional<std::int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<std::int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<std::int32_t> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<std::int32_t> Tokenizer::unk_id() const { return impl_->unk; }
std::optional<std::size_t> Tokenizer::model_max_length() const { return impl_->model_max_length; }
const std::string& Tokenizer::flavour() const { return impl_->flavour; }

}  // namespace imgjudge::tokenizer
