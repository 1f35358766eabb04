#include "runtime/gemm_probe.hpp"

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

namespace imgjudge::runtime {

GemmProbe probe_gemm(std::int64_t m, std::int64_t k, std::int64_t n, const std::string& dtype,
                     double min_seconds) {
  at::ScalarType type;
  if (dtype == "float32") {
    type = at::kFloat;
  } else if (dtype == "bfloat16") {
    type = at::kBFloat16;
  } else {
    throw Error(ErrorCode::InvalidArgument, fmt::format("probe_gemm: unknown dtype \"{}\"", dtype));
  }
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({m, k}).to(type);
  const at::Tensor w = at::randn({n, k}).to(type);
  using Clock = std::chrono::steady_clock;
  at::linear(x, w);  // warm-up: oneDNN primitive creation, page faults
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_seconds) {
    const auto t0 = Clock::now();
    at::Tensor y = at::linear(x, w);
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

}  // namespace imgjudge::runtime
