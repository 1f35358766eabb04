// Measures this machine's matrix-multiply throughput at given shapes, so that
// benchmarks can report a stage's speed as a fraction of what the same GEMM
// achieves here ("efficiency"). Torch-free header; the probe runs libtorch.
#pragma once

#include <cstdint>
#include <string>

namespace imgjudge::devtools {

struct GemmProbe {
  std::int64_t m = 0, k = 0, n = 0;  ///< [m, k] x [k, n]
  std::string dtype;                 ///< "float32", "bfloat16" or "int8"
  double seconds = 0;                ///< Median time of one product.
  double gflops = 0;                 ///< 2*m*k*n / seconds / 1e9
};

/// Times a linear layer (runtime::Linear, the form every model layer uses) of
/// an [m, k] activation with an [n, k] weight in `dtype` ("float32",
/// "bfloat16", or "int8" weights with float32 activations) on the CPU, with the current thread
/// count: warm-up, then the median over at least `min_seconds` of runs.
GemmProbe probe_gemm(std::int64_t m, std::int64_t k, std::int64_t n, const std::string& dtype,
                     double min_seconds = 0.3);

/// This machine's memory read bandwidth in GB/s, as a decode step sees it:
/// the best of several multi-threaded sums over a float32 buffer of
/// `bytes` (far larger than the caches), with the current thread count. The
/// ceiling for a memory-bound step that reads every weight once.
double probe_read_bandwidth_gbps(std::int64_t bytes = std::int64_t(1) << 30);

/// The shared library that provides the BLAS `sgemm_` libtorch calls for
/// float32 products (e.g. ".../openblas-openmp/libblas.so.3" or the reference
/// ".../blas/libblas.so.3", 20-50x slower), resolved through symlinks; "unknown"
/// if it cannot be found.
std::string blas_library();

/// Sets the process-wide intra-op thread count (0 = all cores) and returns it.
int set_threads(int threads);

}  // namespace imgjudge::devtools
