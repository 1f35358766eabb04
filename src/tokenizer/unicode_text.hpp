// Unicode helpers for the tokenizers: UTF-8 walking, ICU-backed normalisation
// and case mapping, and the character classes Python's str methods use, so that
// C++ results match the Python reference tokenizers character for character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace imgjudge::tokenizer::unicode {

/// Decodes the code point starting at `text[pos]` and stores its byte length
/// in `length`. The text must be valid UTF-8 (see `check_utf8`).
char32_t decode_at(std::string_view text, std::size_t pos, std::size_t& length);
void append_utf8(std::string& out, char32_t code_point);

/// Throws Error(InvalidArgument) naming the byte offset of the first invalid
/// UTF-8 sequence; `what` names the text in the message ("text", "line 3").
void check_utf8(std::string_view text, std::string_view what);
/// Whether `bytes` is well-formed UTF-8 (what check_utf8 accepts).
bool is_valid_utf8(std::string_view bytes);

/// Decodes bytes as Python's `bytes.decode("utf-8", errors="replace")` (and
/// Rust's from_utf8_lossy): each maximal invalid subpart becomes one U+FFFD.
std::string decode_utf8_lossy(std::string_view bytes);

std::string nfc(std::string_view text);
std::string nfd(std::string_view text);
std::string nfkc(std::string_view text);
std::string nfkd(std::string_view text);

/// Python `str.lower()`: full (one-to-many) case mapping, final sigma, no locale.
std::string to_lower(std::string_view text);

/// Python `str.isspace()`: bidirectional class WS, B or S, or category Zs.
bool is_python_space(char32_t c);
/// Unicode White_Space property (what `\s` matches in the `regex` module).
bool is_white_space(char32_t c);
/// General category starts with "C" (Cc, Cf, Cn, Co, Cs).
bool is_other_category(char32_t c);
/// General category Zs.
bool is_space_separator(char32_t c);
/// The "CJK ideograph" ranges of BERT's BasicTokenizer._is_chinese_char.
bool is_cjk_ideograph(char32_t c);

/// Python `str.strip()` / `lstrip()` / `rstrip()` (whitespace per is_python_space).
std::string_view strip(std::string_view text);
std::string_view lstrip(std::string_view text);
std::string_view rstrip(std::string_view text);
/// Python `str.split()` without arguments: the non-empty runs between whitespace.
std::vector<std::string_view> split_whitespace(std::string_view text);

}  // namespace imgjudge::tokenizer::unicode
