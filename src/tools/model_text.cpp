#include "tools/model_text.hpp"
#include "util/json.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include <fmt/format.h>

namespace imgjudge::tools::text {
namespace {

// Model answers are bounded by max_new_tokens; these bound the quadratic worst case of
// the bracket scan (many unclosed or nested brackets) on anything else handed in.
constexpr std::size_t kMaxScannedBytes = 256u << 10;
constexpr std::size_t kMaxScanWork = 32u << 20;  // bytes visited by bracket matching and parsing
// Deeper JSON is not a model's answer to our prompts; refusing it also keeps nlohmann's
// recursive dump() and destruction away from deep stacks.
constexpr int kMaxJsonDepth = 64;

// Small repairs models commonly need: single-quoted strings and trailing commas.
std::string repair(const std::string& candidate) {
  std::string out;
  out.reserve(candidate.size());
  bool in_double = false;
  for (std::size_t i = 0; i < candidate.size(); ++i) {
    char c = candidate[i];
    if (in_double && c == '\\' && i + 1 < candidate.size()) {
      out += c;
      out += candidate[++i];
      continue;
    }
    if (c == '"') in_double = !in_double;
    if (!in_double && c == '\'') c = '"';
    if (!in_double && c == ',') {
      const std::size_t next = candidate.find_first_not_of(" \t\r\n", i + 1);
      if (next != std::string::npos && (candidate[next] == '}' || candidate[next] == ']')) continue;
    }
    out += c;
  }
  return out;
}

// Offset of the bracket closing the one at `open`, or npos if the text ends first.
// Adds the bytes it visits to `work`; sets `max_depth` to the deepest nesting seen.
std::size_t matching_close(const std::string& text, std::size_t open, std::size_t& work, int& max_depth) {
  int depth = 0;
  max_depth = 0;
  bool in_string = false;
  for (std::size_t i = open; i < text.size(); ++i, ++work) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') max_depth = std::max(max_depth, ++depth);
    else if ((c == '}' || c == ']') && --depth == 0) return i;
  }
  return std::string::npos;
}

}  // namespace

JsonScan scan_json(const std::string& full_text) {
  const std::string text = full_text.substr(0, kMaxScannedBytes);
  JsonScan scan;
  std::size_t work = 0;
  for (std::size_t i = 0; i < text.size() && work < kMaxScanWork; ++i) {
    if (text[i] != '{' && text[i] != '[') continue;
    int depth = 0;
    const std::size_t close = matching_close(text, i, work, depth);
    if (close == std::string::npos) {
      if (scan.unclosed_at == std::string::npos) scan.unclosed_at = i;
      continue;  // an inner span may still be complete
    }
    if (depth > kMaxJsonDepth) continue;
    const std::string candidate = text.substr(i, close - i + 1);
    work += 2 * candidate.size();
    std::optional<nlohmann::json> parsed = util::try_parse_json(candidate);
    bool repaired = false;
    if (!parsed) {
      parsed = util::try_parse_json(repair(candidate));
      repaired = true;
    }
    if (!parsed) continue;  // not JSON as a whole: look inside it
    scan.values.push_back({std::move(*parsed), i, close + 1, repaired});
    i = close;
  }
  return scan;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    start = end + 1;
  }
  return out;
}

std::string strip_code_fences(const std::string& text) {
  std::string out;
  for (const auto& line : lines(text)) {
    if (trim(line).rfind("```", 0) == 0) continue;
    out += line;
    out += '\n';
  }
  return out;
}

std::string excerpt(const std::string& text, std::size_t max_chars) {
  std::string one_line;
  for (char c : trim(text)) one_line += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  one_line = valid_utf8(one_line);
  if (one_line.size() <= max_chars) return one_line;
  std::size_t cut = max_chars;
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(one_line[cut]) & 0xC0) == 0x80) --cut;
  return one_line.substr(0, cut) + "...";
}

std::string valid_utf8(const std::string& text) {
  static const std::string kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (byte < 0x80) {
      length = 1, code = byte;
    } else if ((byte & 0xE0) == 0xC0) {
      length = 2, code = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3, code = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4, code = byte & 0x07;
    }
    bool ok = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; ok && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      ok = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    static const std::uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && code >= kMinimum[length] && code <= 0x10FFFF && !(code >= 0xD800 && code <= 0xDFFF);
    if (ok) {
      out.append(text, i, length);
      i += length;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

std::string toml_quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : valid_utf8(value)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
          out += fmt::format("\\u{:04X}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + '"';
}

}  // namespace imgjudge::tools::text
