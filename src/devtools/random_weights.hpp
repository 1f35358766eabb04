// Random-weight model folders for tests and benchmarks (`imgjudge make-random-model`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "runtime/weights.hpp"

namespace imgjudge::devtools {

/// Writes `path` (safetensors) with one tensor per spec, deterministic for a
/// seed: ~N(0, 0.02) weights, 1 + N(0, 0.02) for *norm*.weight vectors,
/// log(1/0.07) for logit_scale, 0 for logit_bias.
void write_random_weights(const std::string& path, const std::vector<runtime::ParamSpec>& specs, std::uint64_t seed,
                          at::ScalarType dtype);

}  // namespace imgjudge::devtools
