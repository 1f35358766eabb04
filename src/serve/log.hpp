// The log of `imgjudge serve`: one JSON object per line on stderr (an event
// per line: "listening", "ready", "request", "reload", "shutdown", ...), so a
// platform's log shipper reads it without a parser of our own.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace imgjudge::serve {

/// Writes {"ts": "<UTC, ms>", "level": level, "event": event, ...fields} as one
/// line with one write(2), so lines of concurrent requests never interleave.
/// Never throws: a log that cannot be written must not fail a request.
void log_event(const char* level, const char* event, nlohmann::json fields = nlohmann::json::object()) noexcept;

}  // namespace imgjudge::serve
