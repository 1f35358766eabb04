// Where and in which precision a model runs. Included by torch TUs.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "runtime/linear.hpp"

namespace imgjudge::runtime {

/// The user's request (mirrors imgjudge::ModelConfig's device/dtype/threads).
struct DeviceOptions {
  std::string device = "cpu";  ///< "cpu", "cuda" or "cuda:N".
  std::string dtype = "auto";  ///< "auto", "float32"/"f32", "bfloat16"/"bf16", "int8".
  int threads = 0;             ///< Intra-op CPU threads; 0 = all cores.
};

struct ExecutionTarget {
  at::Device device = at::Device(at::kCPU);
  at::ScalarType dtype = at::kFloat;  ///< Activations and every weight that is not a linear layer's.
  LinearFormat linear_format = LinearFormat::Dense;
};

/// Validates `options` and applies the thread count (at::set_num_threads is
/// process-wide). "auto" picks bfloat16 on CUDA and on CPUs with AVX-512
/// (BW/VL/DQ), where libtorch runs bf16 products through oneDNN (~200 GFLOP/s
/// per thread), and float32 elsewhere, where bf16 products fall
/// back to a scalar loop slower than even the reference-BLAS float32.
/// Choose "float32" for exact parity with HF. "int8": float32 activations
/// with the linear layers' weights int8 per output channel (CPU only; scores
/// move by about 1e-2, docs/performance.md).
/// Throws Error(InvalidArgument) for unknown spellings, Error(Unsupported)
/// for CUDA when this libtorch has none.
ExecutionTarget resolve_device(const DeviceOptions& options);

/// "float32" / "bfloat16" / ... for messages and model ids.
std::string dtype_label(at::ScalarType dtype);

}  // namespace imgjudge::runtime
