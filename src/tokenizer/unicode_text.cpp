#include "tokenizer/unicode_text.hpp"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <fmt/core.h>

#include "imgjudge/error.hpp"

namespace imgjudge::tokenizer::unicode {
namespace {

// Length of a well-formed UTF-8 sequence starting at text[pos], or 0 if the
// bytes there are not one (overlongs, surrogates and > U+10FFFF are invalid).
std::size_t valid_sequence_length(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // Allowed range of the second byte.
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  if (byte(pos + 1) < low || byte(pos + 1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) return 0;
  }
  return length;
}

// Number of bytes forming the maximal prefix of a valid sequence at pos
// (at least 1): the unit the Unicode "substitution of maximal subparts"
// practice replaces by a single U+FFFD.
std::size_t maximal_invalid_subpart(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 1;
  }
  std::size_t consumed = 1;
  for (std::size_t i = 1; i < length && pos + i < text.size(); ++i) {
    const unsigned char b = byte(pos + i);
    const unsigned char lo = i == 1 ? low : 0x80;
    const unsigned char hi = i == 1 ? high : 0xBF;
    if (b < lo || b > hi) break;
    ++consumed;
  }
  return consumed;
}

icu::UnicodeString to_icu(std::string_view text) {
  return icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
}

std::string from_icu(const icu::UnicodeString& text) {
  std::string out;
  text.toUTF8String(out);
  return out;
}

using NormalizerGetter = const icu::Normalizer2* (*)(UErrorCode&);

std::string normalize(std::string_view text, NormalizerGetter getter, const char* form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = getter(status);
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::Internal, fmt::format("ICU {} normalizer unavailable: {}", form, u_errorName(status)));
  }
  const icu::UnicodeString source = to_icu(text);
  // Fast path: most text is already normalised; skip the copy.
  if (normalizer->isNormalized(source, status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  icu::UnicodeString result = normalizer->normalize(source, status);
  if (U_FAILURE(status)) {
    throw Error(ErrorCode::Internal, fmt::format("ICU {} normalisation failed: {}", form, u_errorName(status)));
  }
  return from_icu(result);
}

}  // namespace

char32_t decode_at(std::string_view text, std::size_t pos, std::size_t& length) {
  const auto byte = [&](std::size_t i) { return static_cast<char32_t>(static_cast<unsigned char>(text[i])); };
  const char32_t lead = byte(pos);
  if (lead < 0x80) {
    length = 1;
    return lead;
  }
  if (lead < 0xE0) {
    length = 2;
    return ((lead & 0x1F) << 6) | (byte(pos + 1) & 0x3F);
  }
  if (lead < 0xF0) {
    length = 3;
    return ((lead & 0x0F) << 12) | ((byte(pos + 1) & 0x3F) << 6) | (byte(pos + 2) & 0x3F);
  }
  length = 4;
  return ((lead & 0x07) << 18) | ((byte(pos + 1) & 0x3F) << 12) | ((byte(pos + 2) & 0x3F) << 6) |
         (byte(pos + 3) & 0x3F);
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

void check_utf8(std::string_view text, std::string_view what) {
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t length = valid_sequence_length(text, pos);
    if (length == 0) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{} is not valid UTF-8 (byte offset {})", what, pos));
    }
    pos += length;
  }
}

bool is_valid_utf8(std::string_view bytes) {
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t length = valid_sequence_length(bytes, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

std::string decode_utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t pos = 0; pos < bytes.size();) {
    const std::size_t length = valid_sequence_length(bytes, pos);
    if (length > 0) {
      out.append(bytes.substr(pos, length));
      pos += length;
    } else {
      out.append("\xEF\xBF\xBD");
      pos += maximal_invalid_subpart(bytes, pos);
    }
  }
  return out;
}

std::string nfc(std::string_view text) { return normalize(text, &icu::Normalizer2::getNFCInstance, "NFC"); }
std::string nfd(std::string_view text) { return normalize(text, &icu::Normalizer2::getNFDInstance, "NFD"); }
std::string nfkc(std::string_view text) { return normalize(text, &icu::Normalizer2::getNFKCInstance, "NFKC"); }
std::string nfkd(std::string_view text) { return normalize(text, &icu::Normalizer2::getNFKDInstance, "NFKD"); }

std::string to_lower(std::string_view text) {
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) {
    std::string out(text);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }
  icu::UnicodeString value = to_icu(text);
  // The root locale gives the language-independent full mappings of
  // SpecialCasing.txt (e.g. U+0130 -> "i\u0307") and the Final_Sigma rule,
  // which is what CPython's str.lower() implements.
  value.toLower(icu::Locale::getRoot());
  return from_icu(value);
}

bool is_python_space(char32_t c) {
  const auto direction = u_charDirection(static_cast<UChar32>(c));
  return direction == U_WHITE_SPACE_NEUTRAL || direction == U_BLOCK_SEPARATOR ||
         direction == U_SEGMENT_SEPARATOR || is_space_separator(c);
}

bool is_white_space(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE) != 0; }

bool is_other_category(char32_t c) {
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_CONTROL_CHAR:
    case U_FORMAT_CHAR:
    case U_UNASSIGNED:
    case U_PRIVATE_USE_CHAR:
    case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

bool is_space_separator(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_SPACE_SEPARATOR; }

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::string_view lstrip(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 0;
    if (!is_python_space(decode_at(text, pos, length))) break;
    pos += length;
  }
  return text.substr(pos);
}

std::string_view rstrip(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::size_t length = 0;
    if (!is_python_space(decode_at(text, start, length))) break;
    end = start;
  }
  return text.substr(0, end);
}

std::string_view strip(std::string_view text) { return rstrip(lstrip(text)); }

std::vector<std::string_view> split_whitespace(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t word_start = std::string_view::npos;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t length = 0;
    const bool space = is_python_space(decode_at(text, pos, length));
    if (space && word_start != std::string_view::npos) {
      words.push_back(text.substr(word_start, pos - word_start));
      word_start = std::string_view::npos;
    } else if (!space && word_start == std::string_view::npos) {
      word_start = pos;
    }
    pos += length;
  }
  if (word_start != std::string_view::npos) words.push_back(text.substr(word_start));
  return words;
}

}  // namespace imgjudge::tokenizer::unicode
