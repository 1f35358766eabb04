// The one JSON reader for text we did not write ourselves: model folders
// (config.json, preprocessor_config.json, tokenizer.json, chat templates,
// safetensors headers), JSON lines from users, and what a model generates.
//
// Before nlohmann parses anything, one linear pass checks the nesting depth
// and the number of values: nlohmann's serializer (dump(), which error
// messages use to quote a value) and every recursive walk of ours recurse once
// per level, so a few hundred KB of "[[[[..." would overflow the stack, and a
// header of a million empty objects would take gigabytes as a DOM.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"

namespace imgjudge::util {

struct JsonLimits {
  std::size_t max_depth = 64;          ///< Nested arrays/objects; real files need < 10.
  std::size_t max_values = 4u << 20;   ///< Values of any kind (a bound on the DOM's size).
};

/// Parses `text`. Errors are Error(`code`) starting with "`source`: " (nothing
/// for an empty source, when the caller adds its own prefix): "invalid
/// JSON: <nlohmann's reason>", "JSON nested deeper than N levels (byte B)" or
/// "JSON with more than N values".
nlohmann::json parse_json(std::string_view text, const std::string& source, ErrorCode code,
                          const JsonLimits& limits = {});

/// The same checks without exceptions, for text a model wrote: nullopt when
/// it is not JSON or passes a limit.
std::optional<nlohmann::json> try_parse_json(std::string_view text, const JsonLimits& limits = {});

/// Where the first top-level JSON object of `text` ends: the index just past
/// the '}' that brings the brace depth back to 0, braces counted outside
/// double-quoted strings (a backslash escapes the next character inside one).
/// nullopt while no object has opened or the first one is still open. Text a
/// model writes before the object ("Answer: {...") is skipped; a '}' before
/// any '{' is ignored.
std::optional<std::size_t> json_object_end(std::string_view text);

}  // namespace imgjudge::util
