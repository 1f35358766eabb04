// Binds model weights by their Hugging Face names, with prefix scoping and a
// record of which checkpoint tensors were never used. Included by torch TUs.
//
//   WeightStore store(checkpoint, at::kBFloat16, at::kCPU);
//   auto layer = store.scope("vision_model.encoder.layers.3");
//   at::Tensor w = layer.get("self_attn.q_proj.weight", {hidden, hidden});
//   for (auto& name : store.unused()) ...   // e.g. warn about leftovers
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "runtime/linear.hpp"
#include "runtime/safetensors.hpp"

namespace imgjudge::runtime {

/// A parameter a family binds: its HF name and shape (random models, docs).
struct ParamSpec {
  std::string name;
  std::vector<std::int64_t> shape;
};

class WeightStore {
 public:
  /// Floating tensors are converted to `dtype` on `device` (zero-copy mmap
  /// views when they already match on CPU: never modify them in place).
  /// `linear_format` is how linear() stores the layers it binds.
  WeightStore(SafetensorsCheckpoint checkpoint, at::ScalarType dtype, at::Device device,
              LinearFormat linear_format = LinearFormat::Dense);

  /// A store without a checkpoint that records every get()/optional() and
  /// answers with meta tensors (no memory). Constructing a family on it lists
  /// exactly the parameters that family binds, so the list cannot drift.
  static WeightStore recorder(at::ScalarType dtype);
  /// What a recorder was asked for, sorted by name.
  std::vector<ParamSpec> recorded() const;

  /// A view whose names are relative to `prefix` (joined with '.'); it shares
  /// the checkpoint and the usage record with this store.
  WeightStore scope(const std::string& prefix) const;

  /// Tensor `name` with exactly `expected_shape`. Throws Error(InvalidModel)
  /// "<folder>: missing tensor 'x'" or "<folder>: tensor 'x': expected shape
  /// [..], found [..]" (x is the full HF name).
  at::Tensor get(const std::string& name, at::IntArrayRef expected_shape) const;
  /// The linear layer `<prefix>.weight` [out, in] (and `<prefix>.bias` [out]
  /// when `bias`), in this store's linear format.
  Linear linear(const std::string& prefix, std::int64_t out_features, std::int64_t in_features, bool bias) const;
  /// Like get(), but nullopt when the tensor is absent (optional biases).
  std::optional<at::Tensor> optional(const std::string& name, at::IntArrayRef expected_shape) const;
  bool contains(const std::string& name) const;

  /// Full HF name of `name` in this scope.
  std::string full_name(const std::string& name) const;
  /// Checkpoint tensors no get()/optional() has asked for, sorted.
  std::vector<std::string> unused() const;

  at::ScalarType dtype() const noexcept;
  LinearFormat linear_format() const noexcept;
  at::Device device() const noexcept;
  const SafetensorsCheckpoint& checkpoint() const noexcept;

 private:
  struct Shared;
  WeightStore(std::shared_ptr<Shared> shared, std::string prefix);
  std::shared_ptr<Shared> shared_;
  std::string prefix_;
};

}  // namespace imgjudge::runtime
