#include "cli/commands.hpp"

namespace imgjudge::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
  };
  return table;
}

}  // namespace imgjudge::cli
