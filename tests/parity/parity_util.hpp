// Shared by the parity tests: compare a family's outputs with a fixture's
// outputs.safetensors, tensor by tensor, printing every max abs diff.
#pragma once

#include "torch_catch.hpp"

#include <iostream>
#include <string>

#include "models/fixture_registry.hpp"
#include "runtime/tensor.hpp"

namespace parity {

inline std::string fixture_dir(const std::string& family) {
  return std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/" + family;
}

/// Every reference tensor must be produced, with the same shape, within `tolerance`.
inline void require_matches_reference(const std::string& family, const imgjudge::models::NamedTensors& actual,
                                      double tolerance = 1e-4) {
  const auto expected = imgjudge::runtime::read_safetensors(fixture_dir(family) + "/outputs.safetensors");
  REQUIRE(!expected.empty());
  for (const auto& [name, reference] : expected) {
    INFO(family << " output '" << name << "'");
    auto it = actual.find(name);
    REQUIRE(it != actual.end());
    REQUIRE(it->second.sizes() == reference.sizes());
    const double diff = imgjudge::models::max_abs_diff(it->second, reference);
    std::cout << "  [" << family << "] " << name << " " << imgjudge::runtime::shape_string(reference.sizes())
              << " max_abs_diff=" << diff << "\n";
    CHECK(diff <= tolerance);
  }
}

}  // namespace parity
