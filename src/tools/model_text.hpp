// Helpers for reading what a language model wrote: JSON somewhere in prose, code
// fences, stray whitespace. Internal to src/tools.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imgjudge::tools::text {

/// A JSON value found in model text, and where it was.
struct JsonSpan {
  nlohmann::json value;
  std::size_t begin = 0;  ///< Byte offset of its '{' or '['.
  std::size_t end = 0;    ///< One past its closing bracket.
  bool repaired = false;  ///< Parsed only after fixing single quotes or trailing commas.
};

struct JsonScan {
  std::vector<JsonSpan> values;  ///< Outermost parseable objects and arrays, in order.
  /// A '{' or '[' at the outermost level that the text never closes: the answer was
  /// probably cut off (max_new_tokens). Offset of that bracket, or npos.
  std::size_t unclosed_at = std::string::npos;
};

/// Finds every outermost balanced {...} or [...] span that parses as JSON (after small
/// repairs models commonly need). Brackets inside JSON strings are respected.
JsonScan scan_json(const std::string& text);

std::string trim(const std::string& text);
std::string lower(std::string text);
/// Splits on '\n' (a trailing '\r' is dropped from each line).
std::vector<std::string> lines(const std::string& text);
/// Removes ``` fence lines (with or without a language tag).
std::string strip_code_fences(const std::string& text);
/// At most `max_chars` bytes of `text` on one line, with "..." when cut (never inside a
/// UTF-8 sequence); for quoting model output in notes.
std::string excerpt(const std::string& text, std::size_t max_chars = 80);
/// `text` with invalid UTF-8 replaced by U+FFFD (TOML needs valid UTF-8).
std::string valid_utf8(const std::string& text);
/// `value` as a TOML basic string literal, quotes included (escaped, valid UTF-8).
std::string toml_quoted(const std::string& value);

}  // namespace imgjudge::tools::text
