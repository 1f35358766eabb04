// Shared by the parity tests: where the fixtures are.
#pragma once

#include "torch_catch.hpp"

#include <string>

namespace parity {

inline std::string fixture_dir(const std::string& family) {
  return std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/" + family;
}

}  // namespace parity
