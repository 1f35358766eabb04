#include "cli/commands.hpp"

#include <fmt/format.h>

namespace imgjudge::cli {

std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;  // UTF-8 passes through
    }
  }
  return out;
}

std::string without_path(const std::string& message, const std::string& path) {
  const std::string prefix = path + ": ";
  return !path.empty() && message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"judge", "judge images against a constitution", run_judge, JsonOutput::WithFlag},
      {"constitution check", "validate a constitution and summarise it", run_constitution_check, JsonOutput::WithFlag},
      {"constitution show-default", "print the bundled default constitution", run_constitution_show_default},
      {"constitution objectify", "rewrite rules in objective terms with a model, for review", run_constitution_objectify},
      {"constitution chains", "extract precondition chains with a model, for review", run_constitution_chains},
      {"score", "show M(x,c), m0 and the strategy-1 decision of statements about images", run_score, JsonOutput::Always},
      {"tokenize", "tokenize JSON lines with a model folder's tokenizer", run_tokenize, JsonOutput::Always},
      {"eval", "measure a judge on a labelled image set (metrics, ablations, report)", run_eval, JsonOutput::Always},
      {"inspect-image", "decode images as the judge would and describe them", run_inspect_image, JsonOutput::WithFlag},
      {"serve", "serve the judge over HTTP (verdicts, scores, health, metrics)", run_serve},
      {"verify-fixture", "run a model family on a golden fixture and report max abs diffs", run_verify_fixture},
      {"make-random-model", "write a model folder with random weights for a config.json", run_make_random_model},
  };
  return table;
}

}  // namespace imgjudge::cli
