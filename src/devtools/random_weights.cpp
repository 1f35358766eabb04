#include "devtools/random_weights.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "runtime/tensor.hpp"

namespace imgjudge::devtools {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor initial_value(const runtime::ParamSpec& spec, at::Generator& generator) {
  const auto options = at::TensorOptions().dtype(at::kFloat);
  if (ends_with(spec.name, "logit_scale")) return at::full(spec.shape, std::log(1.0 / 0.07), options);
  if (ends_with(spec.name, "logit_bias")) return at::zeros(spec.shape, options);
  at::Tensor noise = at::normal(0.0, 0.02, spec.shape, generator, options);
  const bool norm_scale = spec.shape.size() == 1 && ends_with(spec.name, ".weight") &&
                          spec.name.find("norm") != std::string::npos;
  return norm_scale ? noise + 1.0 : noise;
}

}  // namespace

void write_random_weights(const std::string& path, const std::vector<runtime::ParamSpec>& specs, std::uint64_t seed,
                          at::ScalarType dtype) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  std::vector<runtime::TensorBytes> tensors;
  tensors.reserve(specs.size());
  for (const runtime::ParamSpec& spec : specs) {  // specs are sorted by name: stable for a seed
    tensors.push_back(runtime::to_tensor_bytes(spec.name, initial_value(spec, generator).to(dtype)));
  }
  runtime::write_safetensors(path, tensors, {{"format", "pt"}});
}

}  // namespace imgjudge::devtools
