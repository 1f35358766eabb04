#include "tokenizer/json_lines.hpp"

#include <istream>
#include <ostream>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "util/json.hpp"

namespace imgjudge::tokenizer {
namespace {

using nlohmann::json;

// Reads one line into `line` (without '\n'); returns false at end of input.
// Sets `too_long` and discards the rest when the line exceeds `limit`.
bool read_bounded_line(std::istream& in, std::string& line, std::size_t limit, bool& too_long) {
  line.clear();
  too_long = false;
  std::streambuf* buffer = in.rdbuf();
  bool any = false;
  for (int c = buffer->sbumpc(); c != std::char_traits<char>::eof(); c = buffer->sbumpc()) {
    any = true;
    if (c == '\n') return true;
    if (line.size() >= limit) {
      too_long = true;
      continue;
    }
    line.push_back(static_cast<char>(c));
  }
  return any;
}

void write(std::ostream& out, const json& value) {
  out << value.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

}  // namespace

JsonLinesResult tokenize_json_lines(const Tokenizer& tokenizer, std::istream& in, std::ostream& out,
                                    std::size_t max_line_bytes) {
  JsonLinesResult result;
  std::string line;
  bool too_long = false;
  for (std::size_t line_number = 1; read_bounded_line(in, line, max_line_bytes, too_long); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!too_long && line.find_first_not_of(" \t") == std::string::npos) continue;
    ++result.lines;
    try {
      if (too_long) throw Error(ErrorCode::LimitExceeded, fmt::format("longer than {} bytes", max_line_bytes));
      // The caller prefixes "line N: " to the message.
      const json request = util::parse_json(line, "", ErrorCode::InvalidArgument);
      if (!request.is_object() || !request.contains("text") || !request["text"].is_string()) {
        throw Error(ErrorCode::InvalidArgument, "expected an object with a string \"text\"");
      }
      bool add_special_tokens = true;
      if (request.contains("add_special_tokens")) {
        if (!request["add_special_tokens"].is_boolean()) {
          throw Error(ErrorCode::InvalidArgument, "\"add_special_tokens\" must be true or false");
        }
        add_special_tokens = request["add_special_tokens"].get<bool>();
      }
      const auto ids = tokenizer.encode(request["text"].get<std::string>(), add_special_tokens);
      write(out, json{{"ids", ids}, {"tokens", tokenizer.tokens(ids)}});
    } catch (const Error& e) {
      ++result.errors;
      write(out, json{{"error",
                       {{"code", error_code_name(e.code())}, {"message", fmt::format("line {}: {}", line_number, e.what())}}}});
    }
  }
  out.flush();
  return result;
}

}  // namespace imgjudge::tokenizer
