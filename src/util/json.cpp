#include "util/json.hpp"

#include <fmt/format.h>

namespace imgjudge::util {
namespace {

// What the pre-scan found: the first limit passed, if any.
struct Scan {
  enum class Problem { None, TooDeep, TooManyValues } problem = Problem::None;
  std::size_t offset = 0;
};

// Counts depth and values outside strings (a value starts at every '[', '{',
// and after every ',' — an upper bound that needs no real parse). Malformed
// text passes through to nlohmann, which reports it properly.
Scan scan(std::string_view text, const JsonLimits& limits) {
  std::size_t depth = 0, values = 1;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > limits.max_depth) return {Scan::Problem::TooDeep, i};
        ++values;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      case ',':
        if (++values > limits.max_values) return {Scan::Problem::TooManyValues, i};
        break;
      default: break;
    }
  }
  return {};
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& source, ErrorCode code, const JsonLimits& limits) {
  const std::string prefix = source.empty() ? "" : source + ": ";
  const Scan found = scan(text, limits);
  if (found.problem == Scan::Problem::TooDeep) {
    throw Error(code, fmt::format("{}JSON nested deeper than {} levels (byte {})", prefix, limits.max_depth,
                                  found.offset));
  }
  if (found.problem == Scan::Problem::TooManyValues) {
    throw Error(code, fmt::format("{}JSON with more than {} values", prefix, limits.max_values));
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 3, column 7: ..." without the tag.
    std::string_view what = e.what();
    if (const auto tag_end = what.find("] "); what.rfind("[json.exception.", 0) == 0 && tag_end != what.npos) {
      what.remove_prefix(tag_end + 2);
    }
    throw Error(code, fmt::format("{}invalid JSON: {}", prefix, what));
  }
}

std::optional<nlohmann::json> try_parse_json(std::string_view text, const JsonLimits& limits) {
  if (scan(text, limits).problem != Scan::Problem::None) return std::nullopt;
  nlohmann::json parsed = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

std::optional<std::size_t> json_object_end(std::string_view text) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (depth == 0) {
      // Outside any object: strings do not count here (prose may hold a stray quote).
      if (c == '{') depth = 1;
      continue;
    }
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::nullopt;
}

}  // namespace imgjudge::util
