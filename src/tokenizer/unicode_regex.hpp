// A compiled PCRE2 regular expression (UTF + Unicode properties, JIT when the
// library has it) used by the pre-tokenizers to split text.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgjudge::tokenizer {

class UnicodeRegex {
 public:
  /// Compiles `pattern` (Python `regex` / Rust `onig` syntax as found in
  /// tokenizer files). `\s` and `\S` are rewritten to the Unicode White_Space
  /// set, which is what those engines mean by them (PCRE2's \s adds U+180E).
  /// Throws Error(InvalidModel) with the PCRE2 message and offset; `origin`
  /// names where the pattern came from.
  UnicodeRegex(std::string_view pattern, bool caseless, std::string_view origin);

  /// A pattern that matches `literal` exactly.
  static std::string escape(std::string_view literal);

  /// Byte spans [begin, end) of successive non-overlapping matches, as
  /// Python's re.finditer yields them. `text` must be valid UTF-8.
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;
  std::shared_ptr<const Code> code_;
};

/// Rewrites `\s` / `\S` into explicit White_Space classes (see UnicodeRegex).
std::string rewrite_whitespace_escapes(std::string_view pattern);

}  // namespace imgjudge::tokenizer
