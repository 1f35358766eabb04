#include "runtime/weights.hpp"

#include <map>
#include <mutex>
#include <set>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/tensor.hpp"

namespace imgjudge::runtime {

struct WeightStore::Shared {
  Shared(SafetensorsCheckpoint c, at::ScalarType t, at::Device d, LinearFormat f)
      : checkpoint(std::move(c)), dtype(t), device(d), linear_format(f) {}
  SafetensorsCheckpoint checkpoint;
  at::ScalarType dtype;
  at::Device device;
  LinearFormat linear_format;
  std::mutex mutex;  // guards `used`: loading may happen from several threads
  std::set<std::string> used;
  bool recording = false;
  std::map<std::string, std::vector<std::int64_t>> recorded;
};

WeightStore::WeightStore(SafetensorsCheckpoint checkpoint, at::ScalarType dtype, at::Device device,
                         LinearFormat linear_format)
    : shared_(std::make_shared<Shared>(std::move(checkpoint), dtype, device, linear_format)) {}

WeightStore::WeightStore(std::shared_ptr<Shared> shared, std::string prefix)
    : shared_(std::move(shared)), prefix_(std::move(prefix)) {}

WeightStore WeightStore::scope(const std::string& prefix) const { return WeightStore(shared_, full_name(prefix)); }

std::string WeightStore::full_name(const std::string& name) const {
  if (prefix_.empty()) return name;
  if (name.empty()) return prefix_;
  return prefix_ + "." + name;
}

bool WeightStore::contains(const std::string& name) const {
  return shared_->checkpoint.find(full_name(name)) != nullptr;
}

WeightStore WeightStore::recorder(at::ScalarType dtype) {
  WeightStore store(SafetensorsCheckpoint::from_files({}, "<parameter recorder>"), dtype, at::Device(at::kMeta));
  store.shared_->recording = true;
  return store;
}

std::vector<ParamSpec> WeightStore::recorded() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  std::vector<ParamSpec> out;
  for (const auto& [name, shape] : shared_->recorded) out.push_back({name, shape});
  return out;
}

std::optional<at::Tensor> WeightStore::optional(const std::string& name, at::IntArrayRef expected_shape) const {
  const std::string full = full_name(name);
  if (shared_->recording) {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->recorded[full] = expected_shape.vec();
    return at::empty(expected_shape, at::TensorOptions().dtype(shared_->dtype).device(at::kMeta));
  }
  const TensorView* view = shared_->checkpoint.find(full);
  if (view == nullptr) return std::nullopt;
  if (!is_floating(view->dtype)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: tensor '{}' is stored as {}; a parameter must be F32, F16, BF16 or F64",
                            shared_->checkpoint.folder(), full, dtype_name(view->dtype)));
  }
  if (at::IntArrayRef(view->shape) != expected_shape) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: tensor '{}': expected shape {}, found {}", shared_->checkpoint.folder(), full,
                            shape_string(expected_shape), shape_string(view->shape)));
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->used.insert(full);
  }
  return load_tensor(*view, shared_->dtype, shared_->device);
}

at::Tensor WeightStore::get(const std::string& name, at::IntArrayRef expected_shape) const {
  auto tensor = optional(name, expected_shape);
  if (!tensor) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: missing tensor '{}'", shared_->checkpoint.folder(), full_name(name)));
  }
  return *tensor;
}

Linear WeightStore::linear(const std::string& prefix, std::int64_t out_features, std::int64_t in_features,
                          bool bias) const {
  return Linear(get(prefix + ".weight", {out_features, in_features}),
                bias ? std::optional<at::Tensor>(get(prefix + ".bias", {out_features})) : std::nullopt,
                shared_->linear_format);
}

std::vector<std::string> WeightStore::unused() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  std::vector<std::string> out;
  for (const auto& name : shared_->checkpoint.names()) {
    if (shared_->used.count(name) == 0) out.push_back(name);
  }
  return out;
}

at::ScalarType WeightStore::dtype() const noexcept { return shared_->dtype; }
LinearFormat WeightStore::linear_format() const noexcept { return shared_->linear_format; }
at::Device WeightStore::device() const noexcept { return shared_->device; }
const SafetensorsCheckpoint& WeightStore::checkpoint() const noexcept { return shared_->checkpoint; }

}  // namespace imgjudge::runtime
