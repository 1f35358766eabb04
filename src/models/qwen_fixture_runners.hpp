// verify-fixture runners of the Qwen families (registered in fixtures.cpp).
// Each runs the fixture's inputs in float32 and returns every reference output
// of its README: logits (all, last, the rows at logits_row_positions), hidden
// states, six greedy steps with the KV cache, and for the VL families the
// image features, M-RoPE ids, rope delta and (Qwen2.5-VL) window internals.
#pragma once

#include <string>

#include "models/fixture_registry.hpp"

namespace imgjudge::models {

NamedTensors run_qwen2_fixture(const std::string& dir);
NamedTensors run_qwen_vl_fixture(const std::string& dir);  ///< qwen2_vl and qwen2_5_vl

}  // namespace imgjudge::models
