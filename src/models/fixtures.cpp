#include "models/fixtures.hpp"

#include <cmath>
#include <limits>
#include <map>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "image/preprocess.hpp"
#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "models/fixture_registry.hpp"
#include "models/qwen_fixture_runners.hpp"
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
      {"qwen2", run_qwen2_fixture},
      {"qwen2_vl", run_qwen_vl_fixture},
      {"qwen2_5_vl", run_qwen_vl_fixture},
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

// The image processor against preprocess.safetensors (independent of the model).
void check_preprocess(const std::string& dir, FixtureReport& report) {
  const std::string path = util::join_path(dir, "preprocess.safetensors");
  if (!util::file_exists(path)) return;
  image::ImageProcessorConfig config;
  try {
    config = image::ImageProcessorConfig::from_file(util::join_path(dir, "preprocessor_config.json"));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Unsupported) throw;
    report.preprocess_note = e.what();  // e.g. Qwen2-VL's processor: checked by its own family
    return;
  }
  const auto tensors = runtime::read_safetensors(path);
  const at::Tensor pixels = tensors.at("image");  // [H, W, 3] uint8
  if (pixels.dim() != 3 || pixels.size(2) != 3 || pixels.scalar_type() != at::kByte) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: 'image' must be uint8 [H, W, 3]", path));
  }
  const at::Tensor contiguous = pixels.contiguous();
  const Image input = Image::from_rgb(contiguous.data_ptr<std::uint8_t>(), static_cast<int>(pixels.size(1)),
                                      static_cast<int>(pixels.size(0)), static_cast<std::size_t>(pixels.size(1)) * 3);
  image::FloatImage processed = image::preprocess(input, config);
  const at::Tensor actual =
      at::from_blob(processed.chw.data(), {1, processed.channels, processed.height, processed.width}, at::kFloat).clone();
  report.preprocess.push_back(compare("pixel_values", {{"pixel_values", actual}}, tensors.at("pixel_values")));
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
  at::set_num_threads(1);  // the references were computed with one thread
  const NamedTensors actual = runner->second(dir);
  for (const auto& [name, expected] : runtime::read_safetensors(util::join_path(dir, "outputs.safetensors"))) {
    report.outputs.push_back(compare(name, actual, expected));
  }
  check_preprocess(dir, report);
  return report;
}

}  // namespace imgjudge::models
