// The weights of one linear layer, y = x W^T + b, stored either as they are
// (the compute dtype) or quantized to int8 per output channel. Included by
// torch TUs.
//
// int8 runs libtorch's dynamic quantized linear on the oneDNN engine: each
// call quantizes its activations per tensor, multiplies in int8 and returns
// float32. Weights take a quarter of their float32 memory, which is what
// memory-bound steps (greedy decoding reads every weight per token) gain most
// from; large batches gain the int8 GEMM speed (docs/performance.md).
#pragma once

#include <memory>
#include <optional>

#include <ATen/core/Tensor.h>

namespace imgjudge::runtime {

enum class LinearFormat {
  Dense,  ///< Weights in the compute dtype.
  Int8,   ///< Weights int8 per output channel; float32 activations (CPU only).
};

class Linear {
 public:
  Linear() = default;
  /// weight [out, in], bias [out]. Int8 needs float32 CPU tensors; it throws
  /// Error(Unsupported) where this libtorch has no oneDNN quantized engine.
  Linear(at::Tensor weight, std::optional<at::Tensor> bias, LinearFormat format = LinearFormat::Dense);

  /// x [..., in] -> [..., out].
  at::Tensor operator()(const at::Tensor& x) const;

  LinearFormat format() const noexcept { return packed_ ? LinearFormat::Int8 : LinearFormat::Dense; }
  std::int64_t out_features() const noexcept { return out_features_; }
  std::int64_t in_features() const noexcept { return in_features_; }

 private:
  struct PackedInt8;  // libtorch's prepacked params, kept out of this header
  at::Tensor weight_;  // dense only
  std::optional<at::Tensor> bias_;
  std::shared_ptr<const PackedInt8> packed_;
  std::int64_t out_features_ = 0, in_features_ = 0;
};

}  // namespace imgjudge::runtime
