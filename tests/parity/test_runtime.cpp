// Runtime plumbing: zero-copy views, WeightStore binding/errors/usage, nn helpers.
#include "torch_catch.hpp"

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "imgjudge/error.hpp"
#include "runtime/device.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"
#include "runtime/weights.hpp"

using imgjudge::Error;
using imgjudge::ErrorCode;
using namespace imgjudge::runtime;

namespace {
const std::string kClipDir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/clip";

std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("view_tensor is zero-copy and keeps the file mapped", "[parity][runtime]") {
  at::Tensor ids;
  const std::uint8_t* raw = nullptr;
  {
    auto file = SafetensorsFile::open(kClipDir + "/inputs.safetensors");
    raw = file->at("input_ids").data;
    ids = view_tensor(file->at("input_ids"));
  }  // the file handle is gone; the tensor still owns the mapping
  CHECK(ids.data_ptr() == static_cast<const void*>(raw));
  CHECK(ids.sizes() == at::IntArrayRef({2, 16}));
  CHECK(ids.scalar_type() == at::kLong);
  CHECK(ids.max().item<int64_t>() == 999);  // the eos id of the fixture
}

TEST_CASE("WeightStore binds by HF name with scopes, checks shapes, tracks unused", "[parity][runtime]") {
  WeightStore store(SafetensorsCheckpoint::open_folder(kClipDir), at::kBFloat16, at::kCPU);
  auto layer = store.scope("vision_model.encoder.layers.0");
  at::Tensor q = layer.get("self_attn.q_proj.weight", {32, 32});
  CHECK(q.scalar_type() == at::kBFloat16);
  CHECK(layer.full_name("mlp.fc1.bias") == "vision_model.encoder.layers.0.mlp.fc1.bias");
  CHECK(!layer.optional("self_attn.nothing", {1}).has_value());
  CHECK(message_of([&] { layer.get("self_attn.k_proj.weight", {32, 16}); }) ==
        kClipDir + ": tensor 'vision_model.encoder.layers.0.self_attn.k_proj.weight': expected shape [32, 16], found [32, 32]");
  CHECK(message_of([&] { layer.get("nothing", {1}); }) ==
        kClipDir + ": missing tensor 'vision_model.encoder.layers.0.nothing'");
  auto unused = store.unused();
  CHECK(std::find(unused.begin(), unused.end(), "vision_model.encoder.layers.0.self_attn.q_proj.weight") == unused.end());
  CHECK(std::find(unused.begin(), unused.end(), "logit_scale") != unused.end());
  CHECK(unused.size() == store.checkpoint().size() - 1);
}

TEST_CASE("nn helpers match their ATen definitions", "[parity][runtime]") {
  at::manual_seed(0);
  at::Tensor q = at::randn({2, 3, 5, 4}), k = at::randn({2, 3, 5, 4}), v = at::randn({2, 3, 5, 4});
  at::Tensor mask = nn::causal_mask(5, at::kFloat, at::kCPU);
  at::Tensor out = nn::attention(q, k, v, mask, 0.5);
  // Row 0 attends only to key 0.
  CHECK(at::allclose(out.select(2, 0), v.select(2, 0)));
  at::Tensor pad = nn::padding_mask(at::tensor({1, 1, 0}).view({1, 3}), at::kFloat);
  CHECK(pad.sizes() == at::IntArrayRef({1, 1, 1, 3}));
  CHECK(pad[0][0][0][2].item<float>() < -1e38f);
  at::Tensor x = at::randn({2, 8});
  CHECK(at::allclose(nn::l2_normalize(x).norm(2, {-1}), at::ones({2})));
  CHECK(at::allclose(nn::activation("quick_gelu")(x), x * at::sigmoid(1.702 * x)));
  CHECK_THROWS_AS(nn::activation("nope"), Error);
  at::Tensor w = at::randn({8});
  CHECK(at::allclose(nn::rms_norm(x, w, 1e-6), w * x / at::sqrt(x.pow(2).mean(-1, true) + 1e-6), 1e-5, 1e-6));
}

TEST_CASE("int8 linear layers stay within quantization error of float32", "[parity][runtime]") {
  at::manual_seed(11);
  const at::Tensor weight = at::randn({96, 64}) * 0.05, bias = at::randn({96});
  const at::Tensor x = at::randn({2, 5, 64});  // leading dims are folded and restored
  const imgjudge::runtime::Linear dense(weight, bias);
  const imgjudge::runtime::Linear int8(weight, bias, imgjudge::runtime::LinearFormat::Int8);
  CHECK(dense.format() == imgjudge::runtime::LinearFormat::Dense);
  CHECK(int8.format() == imgjudge::runtime::LinearFormat::Int8);
  const at::Tensor want = dense(x), got = int8(x);
  REQUIRE(got.sizes() == want.sizes());
  CHECK(at::equal(want, at::linear(x, weight, bias)));
  // Per-channel int8 weights and per-call int8 activations: about 1% of the output norm.
  const double relative = ((got - want).norm() / want.norm()).item<double>();
  INFO("relative error " << relative);
  CHECK(relative < 0.03);
  CHECK(relative > 0.0);  // it really ran quantized
  CHECK_THROWS_AS(imgjudge::runtime::Linear(weight.to(at::kBFloat16), std::nullopt,
                                            imgjudge::runtime::LinearFormat::Int8),
                  imgjudge::Error);
}

TEST_CASE("dtype auto follows the CPU's AVX-512 support; int8 is float32 with int8 linear layers",
          "[parity][runtime]") {
  using imgjudge::runtime::resolve_device;
  // Read the flags the way a user would check them, independently of the
  // compiler builtins the library uses.
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  }
  if (flags.empty()) {
    WARN("no flags line in /proc/cpuinfo: cannot tell what auto should pick");
    return;
  }
  auto has = [&](const std::string& flag) { return flags.find(" " + flag + " ") != std::string::npos; };
  const bool avx512 = has("avx512bw") && has("avx512vl") && has("avx512dq");
  INFO("AVX-512 BW/VL/DQ: " << avx512);
  CHECK(resolve_device({"cpu", "auto", 1}).dtype == (avx512 ? at::kBFloat16 : at::kFloat));
  const auto int8 = resolve_device({"cpu", "int8", 1});
  CHECK(int8.dtype == at::kFloat);
  CHECK(int8.linear_format == imgjudge::runtime::LinearFormat::Int8);
  CHECK(resolve_device({"cpu", "float32", 1}).linear_format == imgjudge::runtime::LinearFormat::Dense);
  CHECK_THROWS_AS(resolve_device({"cpu", "int4", 1}), imgjudge::Error);
}

TEST_CASE("one int8 linear layer shared by several threads gives each its own answer", "[parity][runtime]") {
  at::manual_seed(12);
  const imgjudge::runtime::Linear layer(at::randn({128, 96}) * 0.05, at::randn({128}),
                                        imgjudge::runtime::LinearFormat::Int8);
  std::vector<at::Tensor> inputs, expected;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(at::randn({3 + i * 5, 96}));  // different batch shapes at once
    expected.push_back(layer(inputs.back()));
  }
  std::vector<at::Tensor> got(inputs.size() * 25);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < inputs.size(); ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t round = 0; round < 25; ++round) got[t * 25 + round] = layer(inputs[t]);
    });
  }
  for (auto& thread : threads) thread.join();
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("thread " << i / 25 << " round " << i % 25);
    CHECK(at::equal(got[i], expected[i / 25]));
  }
}
