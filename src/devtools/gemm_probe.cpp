#include "devtools/gemm_probe.hpp"

#include <dlfcn.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/linear.hpp"

namespace imgjudge::devtools {

GemmProbe probe_gemm(std::int64_t m, std::int64_t k, std::int64_t n, const std::string& dtype,
                     double min_seconds) {
  at::ScalarType type = at::kFloat;
  runtime::LinearFormat format = runtime::LinearFormat::Dense;
  if (dtype == "bfloat16") {
    type = at::kBFloat16;
  } else if (dtype == "int8") {
    format = runtime::LinearFormat::Int8;  // float32 activations, int8 weights
  } else if (dtype != "float32") {
    throw Error(ErrorCode::InvalidArgument, fmt::format("probe_gemm: unknown dtype \"{}\"", dtype));
  }
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({m, k}).to(type);
  const runtime::Linear linear(at::randn({n, k}).to(type), std::nullopt, format);
  using Clock = std::chrono::steady_clock;
  linear(x);  // warm-up: oneDNN primitive creation, page faults
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t0 = Clock::now();
    at::Tensor y = linear(x);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  GemmProbe probe{m, k, n, dtype, times[times.size() / 2], 0};
  probe.gflops = 2.0 * double(m) * double(k) * double(n) / probe.seconds / 1e9;
  return probe;
}

std::string blas_library() {
  void* symbol = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (symbol == nullptr || dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) return "unknown";
  std::error_code error;
  const auto resolved = std::filesystem::canonical(info.dli_fname, error);
  return error ? std::string(info.dli_fname) : resolved.string();
}

int set_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

double probe_read_bandwidth_gbps(std::int64_t bytes) {
  c10::InferenceMode guard;
  // Filled once, so every page is resident before the timed reads.
  const at::Tensor buffer = at::ones({bytes / std::int64_t(sizeof(float))}, at::kFloat);
  double best_seconds = 0;
  for (int run = 0; run < 6; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const float total = buffer.sum().item<float>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!(total > 0)) throw Error(ErrorCode::Internal, "bandwidth probe: the sum of ones is not positive");
    if (run > 0 && (best_seconds == 0 || seconds < best_seconds)) best_seconds = seconds;  // run 0 warms up
  }
  return double(buffer.nbytes()) / best_seconds / 1e9;
}

}  // namespace imgjudge::devtools
