#include "runtime/device.hpp"
#include "runtime/tensor_cache.hpp"

#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <fmt/format.h>

#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::runtime {
namespace {

// libtorch 1.13 sends bfloat16 matrix products to oneDNN only on CPUs with
// AVX-512 (BW, VL, DQ: ATen's mkldnn_bf16_device_check); elsewhere they fall
// back to a scalar loop ~20x slower than float32. "auto" picks what is fast here.
bool cpu_has_fast_bfloat16() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

at::ScalarType parse_dtype(const std::string& text, const at::Device& device) {
  if (text == "auto") return device.is_cuda() || cpu_has_fast_bfloat16() ? at::kBFloat16 : at::kFloat;
  if (text == "bfloat16" || text == "bf16") return at::kBFloat16;
  if (text == "float32" || text == "f32" || text == "fp32" || text == "int8") return at::kFloat;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown dtype \"{}\" (expected auto, float32, bfloat16 or int8)", text));
}

at::Device parse_device(const std::string& text) {
  if (text.empty() || text == "cpu") return at::Device(at::kCPU);
  if (text.rfind("cuda", 0) != 0) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("unknown device \"{}\" (expected cpu or cuda[:N])", text));
  }
  int index = 0;
  if (text.size() > 4) {
    const std::string number = text.substr(text.size() > 5 ? 5 : 4);
    if (text[4] != ':' || number.empty() || number.size() > 3 ||
        number.find_first_not_of("0123456789") != std::string::npos) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("unknown device \"{}\" (expected cpu or cuda[:N])", text));
    }
    index = std::stoi(number);
  }
  if (!at::hasCUDA()) {
    throw Error(ErrorCode::Unsupported, fmt::format("device \"{}\": this libtorch build has no CUDA", text));
  }
  if (index >= static_cast<int>(at::getNumGPUs())) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("device \"{}\": only {} CUDA device(s) present", text, at::getNumGPUs()));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

ExecutionTarget resolve_device(const DeviceOptions& options) {
  install_tensor_cache();  // every model load comes here first
  ExecutionTarget target;
  target.device = parse_device(options.device);
  target.dtype = parse_dtype(options.dtype, target.device);
  if (options.dtype == "int8") {
    if (!target.device.is_cpu()) {
      throw Error(ErrorCode::Unsupported, "dtype \"int8\" (int8 linear layers) runs on the CPU only");
    }
    target.linear_format = LinearFormat::Int8;
  }
  if (options.threads < 0 || options.threads > kMaxThreads) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("threads must be 0 (all cores) to {}, got {}", kMaxThreads, options.threads));
  }
  // The default on some VMs is 1 (cpuinfo), so always set it explicitly.
  const int threads = options.threads > 0 ? options.threads
                                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return target;
}

std::string dtype_label(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    case at::kDouble: return "float64";
    default: return c10::toString(dtype);
  }
}

}  // namespace imgjudge::runtime
