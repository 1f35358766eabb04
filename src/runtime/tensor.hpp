// safetensors views <-> at::Tensor. Included only by torch TUs.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "runtime/safetensors.hpp"

namespace imgjudge::runtime {

at::ScalarType to_scalar_type(DType dtype) noexcept;
/// Throws Error(Unsupported) for a scalar type safetensors cannot hold here.
DType to_dtype(at::ScalarType type);

/// Zero-copy CPU tensor over the mapped bytes; the deleter keeps the file
/// mapped while the tensor lives. READ-ONLY: the mapping is PROT_READ, so an
/// in-place op on the result crashes. Copy (or convert) before mutating.
at::Tensor view_tensor(const TensorView& view);

/// `view` as `dtype` on `device`: always a fresh, writable tensor that does
/// not depend on the file (see tensor.cpp). Non-floating tensors keep their type.
at::Tensor load_tensor(const TensorView& view, at::ScalarType dtype, const at::Device& device);

/// Every tensor of a .safetensors file as zero-copy CPU views (fixtures, tests).
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

/// A contiguous CPU copy of `tensor`'s bytes, ready for write_safetensors().
TensorBytes to_tensor_bytes(const std::string& name, const at::Tensor& tensor);

/// "[2, 3, 4]" (for messages).
std::string shape_string(at::IntArrayRef shape);

}  // namespace imgjudge::runtime
