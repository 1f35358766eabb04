#include "models/fixtures.hpp"

#include <cmath>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "models/fixture_registry.hpp"
#include "models/siglip.hpp"
#include "runtime/config.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

// model_type -> runner. One line per family.
const std::map<std::string, FixtureRunner>& runners() {
  static const std::map<std::string, FixtureRunner> table = {
      {"clip", clip::run_fixture},
      {"siglip", siglip::run_fixture},
  };
  return table;
}

TensorDiff compare(const std::string& name, const NamedTensors& actual, const at::Tensor& expected) {
  TensorDiff diff{name, std::numeric_limits<double>::infinity(), ""};
  auto it = actual.find(name);
  if (it == actual.end() || !it->second.defined()) {
    diff.problem = "not produced";
  } else if (it->second.sizes() != expected.sizes()) {
    diff.problem = fmt::format("shape {} vs reference {}", runtime::shape_string(it->second.sizes()),
                               runtime::shape_string(expected.sizes()));
  } else {
    diff.max_abs_diff = max_abs_diff(it->second, expected);
  }
  return diff;
}

}  // namespace

NamedTensors read_fixture_inputs(const std::string& fixture_dir) {
  return runtime::read_safetensors(util::join_path(fixture_dir, "inputs.safetensors"));
}

const at::Tensor& fixture_input(const NamedTensors& inputs, const std::string& name, const std::string& fixture_dir) {
  auto it = inputs.find(name);
  if (it == inputs.end()) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}/inputs.safetensors: no tensor '{}'", fixture_dir, name));
  }
  return it->second;
}

double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) return std::numeric_limits<double>::infinity();
  if (actual.numel() == 0) return 0;
  const at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  const at::Tensor b = expected.detach().to(at::kCPU, at::kDouble);
  const double diff = (a - b).abs().max().item<double>();
  return std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff;
}

bool FixtureReport::passed(double tolerance) const {
  for (const auto* list : {&outputs, &preprocess}) {
    for (const auto& d : *list) {
      if (!d.problem.empty() || !(d.max_abs_diff <= tolerance)) return false;
    }
  }
  return !outputs.empty();
}

std::vector<std::string> fixture_model_types() {
  std::vector<std::string> out;
  for (const auto& [type, runner] : runners()) out.push_back(type);
  return out;
}

FixtureReport verify_fixture(const std::string& dir) {
  FixtureReport report;
  report.model_type = runtime::HfConfig::load(util::join_path(dir, "config.json")).get_string("model_type");
  auto runner = runners().find(report.model_type);
  if (runner == runners().end()) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model_type \"{}\" has no fixture runner yet (implemented: {})", dir,
                            report.model_type, fmt::join(fixture_model_types(), ", ")));
  }
  const NamedTensors actual = runner->second(dir);
  for (const auto& [name, expected] : runtime::read_safetensors(util::join_path(dir, "outputs.safetensors"))) {
    report.outputs.push_back(compare(name, actual, expected));
  }
  return report;
}

}  // namespace imgjudge::models
