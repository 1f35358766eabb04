// Helpers of the Qwen parity tests: fixture tensors, the weights of a fixture
// folder, and max-abs-diff comparison.
#pragma once

#include "torch_catch.hpp"

#include <map>
#include <string>

#include "runtime/tensor.hpp"
#include "runtime/weights.hpp"

namespace qwen_test {

inline std::string fixture_dir(const std::string& family) {
  return std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/" + family;
}

/// All tensors of one .safetensors file (zero-copy, read-only views).
class TensorFile {
 public:
  explicit TensorFile(const std::string& path) : tensors_(imgjudge::runtime::read_safetensors(path)) {}
  at::Tensor operator[](const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) FAIL("fixture tensor '" << name << "' is missing");
    return it->second;
  }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

 private:
  std::map<std::string, at::Tensor> tensors_;
};

/// The weights of a fixture folder, in `dtype` on the CPU.
inline imgjudge::runtime::WeightStore fixture_weights(const std::string& dir, at::ScalarType dtype) {
  return imgjudge::runtime::WeightStore(imgjudge::runtime::SafetensorsCheckpoint::open_folder(dir), dtype,
                                        at::Device(at::kCPU));
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

/// Checks |a - b| <= tol everywhere; the measured difference is reported
/// with the assertion (run the tests with -s to see every number).
#define QWEN_CHECK_CLOSE(name, actual, expected, tol)                          \
  do {                                                                         \
    const double qwen_diff_ = ::qwen_test::max_abs_diff((actual), (expected)); \
    INFO(name << " max abs diff " << qwen_diff_);                              \
    CHECK(qwen_diff_ <= (tol));                                                \
  } while (0)

}  // namespace qwen_test
