// JSON-lines tokenization, the engine of `imgjudge tokenize`: one request
// {"text": ..., "add_special_tokens": bool?} per input line, one answer
// {"ids": [...], "tokens": [...]} or {"error": {"code": "...", "message": "line N: ..."}} per output line.
#pragma once

#include <cstddef>
#include <iosfwd>

#include "tokenizer/tokenizer.hpp"

namespace imgjudge::tokenizer {

struct JsonLinesResult {
  std::size_t lines = 0;   ///< Requests read (blank lines are skipped).
  std::size_t errors = 0;  ///< Requests answered with {"error": ...}.
};

/// Reads requests until end of input. A line longer than `max_line_bytes` is
/// answered with an error (and skipped) without being held in memory.
JsonLinesResult tokenize_json_lines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out,
                                    std::size_t max_line_bytes = 16u << 20);

}  // namespace imgjudge::tokenizer
