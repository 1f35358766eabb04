// How a family plugs into verify_fixture(): a function that runs the family on
// <dir>/inputs.safetensors and returns its outputs under the reference names of
// <dir>/outputs.safetensors. Register it with ONE line in fixtures.cpp's table.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace imgjudge::models {

using NamedTensors = std::map<std::string, at::Tensor>;
using FixtureRunner = NamedTensors (*)(const std::string& fixture_dir);

/// <dir>/inputs.safetensors as zero-copy tensors.
NamedTensors read_fixture_inputs(const std::string& fixture_dir);
/// inputs[name], or Error(InvalidModel) naming the fixture.
const at::Tensor& fixture_input(const NamedTensors& inputs, const std::string& name, const std::string& fixture_dir);

/// max |a - b| in float64; +inf when shapes differ.
double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected);

}  // namespace imgjudge::models
