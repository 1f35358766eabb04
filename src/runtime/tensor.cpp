#include "runtime/tensor.hpp"

#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>

#include <cstring>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "imgjudge/error.hpp"

namespace imgjudge::runtime {

at::ScalarType to_scalar_type(DType dtype) noexcept {
  switch (dtype) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::Bool: return at::kBool;
  }
  return at::kFloat;
}

DType to_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::Bool;
    default:
      throw Error(ErrorCode::Unsupported,
                  fmt::format("scalar type {} cannot be stored in safetensors", c10::toString(type)));
  }
}

at::Tensor view_tensor(const TensorView& view) {
  // The deleter owns a reference to the file: the mapping outlives every tensor.
  std::shared_ptr<const SafetensorsFile> owner =
      view.file != nullptr ? view.file->shared_from_this() : nullptr;
  auto options = at::TensorOptions().dtype(to_scalar_type(view.dtype)).device(at::kCPU);
  // from_blob wants void*; the data stays read-only by contract (see header).
  void* data = const_cast<std::uint8_t*>(view.data);
  if (view.byte_size == 0) return at::empty(view.shape, options);
  return at::from_blob(data, view.shape, [owner](void*) mutable { owner.reset(); }, options);
}

at::Tensor load_tensor(const TensorView& view, at::ScalarType dtype, const at::Device& device) {
  const at::Tensor mapped = view_tensor(view);
  const bool floating = at::isFloatingType(mapped.scalar_type());
  const at::ScalarType target = floating ? dtype : mapped.scalar_type();
  if (!device.is_cpu()) return mapped.to(device, target, /*non_blocking=*/false, /*copy=*/true);
  // Always a copy in process memory, never the mapping itself: a model file
  // replaced or truncated under a running judge would otherwise kill the
  // process with SIGBUS at the next touch, and the first image would pay the
  // page-in of every weight (here it is paid at load). Allocated exactly, by
  // libtorch's own allocator: weights live as long as the model, so the
  // size classes of the tensor cache (runtime/tensor_cache.hpp) would only
  // waste memory on them.
  at::Tensor owned = at::detail::empty_generic(mapped.sizes(), c10::GetDefaultCPUAllocator(),
                                               c10::DispatchKeySet(c10::DispatchKey::CPU), target, c10::nullopt);
  owned.copy_(mapped);
  return owned;
}

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, view] : file->tensors()) out.emplace(name, view_tensor(view));
  return out;
}

TensorBytes to_tensor_bytes(const std::string& name, const at::Tensor& tensor) {
  at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  TensorBytes out;
  out.name = name;
  out.dtype = to_dtype(cpu.scalar_type());
  out.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
  out.bytes.resize(cpu.numel() * cpu.element_size());
  if (!out.bytes.empty()) std::memcpy(out.bytes.data(), cpu.data_ptr(), out.bytes.size());
  return out;
}

std::string shape_string(at::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace imgjudge::runtime
