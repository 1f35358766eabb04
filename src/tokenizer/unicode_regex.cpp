#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/unicode_regex.hpp"

#include <pcre2.h>

#include <fmt/core.h>

#include "imgjudge/error.hpp"

namespace imgjudge::tokenizer {
namespace {

// The Unicode White_Space property as a class body (without brackets).
constexpr std::string_view kWhiteSpaceClass =
    "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Bounds the backtracking work of one match so that a pathological pattern
// from a model file cannot hang a call; the stock patterns need far less.
constexpr uint32_t kMatchLimit = 10'000'000;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct UnicodeRegex::Code {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  ~Code() {
    if (context) pcre2_match_context_free(context);
    if (code) pcre2_code_free(code);
  }
};

std::string rewrite_whitespace_escapes(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      ++i;
      if (next == 's') {
        if (in_class) {
          out.append(kWhiteSpaceClass);
        } else {
          out.append("[").append(kWhiteSpaceClass).append("]");
        }
        continue;
      }
      if (next == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpaceClass).append("]");
        continue;
      }
      // \S inside a class has no class-body equivalent; PCRE2's own \S differs
      // from White_Space only in U+180E, so keep it.
      out.push_back(c);
      out.push_back(next);
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member, not the end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

std::string UnicodeRegex::escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       static_cast<unsigned char>(c) >= 0x80;
    if (!plain) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

UnicodeRegex::UnicodeRegex(std::string_view pattern, bool caseless, std::string_view origin)
    : pattern_(pattern) {
  const std::string translated = rewrite_whitespace_escapes(pattern);
  auto code = std::make_shared<Code>();
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK;
  if (caseless) options |= PCRE2_CASELESS;
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options,
                             &error_code, &error_offset, nullptr);
  if (!code->code) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: invalid pre-tokenizer regex '{}': {} (at offset {} of the translated pattern)",
                            origin, pattern, pcre2_message(error_code), error_offset));
  }
  uint32_t has_jit = 0;
  pcre2_config(PCRE2_CONFIG_JIT, &has_jit);
  if (has_jit) pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE);  // Falls back to the interpreter on failure.
  code->context = pcre2_match_context_create(nullptr);
  if (!code->context) throw Error(ErrorCode::OutOfMemory, "PCRE2 match context allocation failed");
  pcre2_set_match_limit(code->context, kMatchLimit);
  code_ = std::move(code);
}

std::vector<std::pair<std::size_t, std::size_t>> UnicodeRegex::find_all(std::string_view text) const {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(code_->code, nullptr), &pcre2_match_data_free);
  if (!match) throw Error(ErrorCode::OutOfMemory, "PCRE2 match data allocation failed");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t offset = 0;
  while (offset <= text.size()) {
    // The text was validated once by the caller; skip PCRE2's per-call check,
    // which would otherwise make scanning a long text quadratic.
    const int rc = pcre2_match(code_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, match.get(),
                               code_->context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      throw Error(ErrorCode::LimitExceeded,
                  fmt::format("pre-tokenizer regex '{}' failed at byte {}: {}", pattern_, offset, pcre2_message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const std::size_t begin = ovector[0];
    const std::size_t end = ovector[1];
    if (end > begin) {
      spans.emplace_back(begin, end);
      offset = end;
    } else {
      // An empty match yields nothing; step over one whole character.
      if (begin >= text.size()) break;
      std::size_t next = begin + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      offset = next;
    }
  }
  return spans;
}

}  // namespace imgjudge::tokenizer
