// How a family plugs into verify_fixture() (devtools/fixtures.hpp): a function
// that runs the family on <dir>/inputs.safetensors and returns its outputs
// under the reference names of <dir>/outputs.safetensors. The reference is
// passed in so a runner produces what it asks for (its greedy step count, its
// logits rows), never what one fixture happened to hold. One line per family
// in fixture_runners.cpp; a test checks every family of the table has one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace imgjudge::devtools {

using NamedTensors = std::map<std::string, at::Tensor>;
using FixtureRunner = NamedTensors (*)(const std::string& fixture_dir, const NamedTensors& reference);

/// The runner of `model_type`, or null.
FixtureRunner find_fixture_runner(const std::string& model_type);
/// model_type values with a runner.
std::vector<std::string> fixture_runner_types();

/// <dir>/inputs.safetensors as zero-copy tensors.
NamedTensors read_fixture_inputs(const std::string& fixture_dir);
/// inputs[name], or Error(InvalidModel) naming the fixture.
const at::Tensor& fixture_input(const NamedTensors& inputs, const std::string& name, const std::string& fixture_dir);

/// max |a - b| in float64; +inf when shapes differ or a value is NaN.
double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected);

}  // namespace imgjudge::devtools
