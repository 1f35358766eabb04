#include "cli/commands.hpp"

namespace imgjudge::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"tokenize", "tokenize JSON lines with a model folder's tokenizer", run_tokenize},
  };
  return table;
}

}  // namespace imgjudge::cli
