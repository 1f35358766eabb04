// Qwen2-VL vs the transformers 4.50.3 golden fixture (tests/data/parity/qwen2_vl):
// image processor, vision tower, M-RoPE ids, logits, hidden states, KV cache.
#include "torch_catch.hpp"

#include <cmath>
#include <limits>

#include "imgjudge/error.hpp"
#include "models/qwen_vl_vision.hpp"
#include "qwen_vl_checks.hpp"

TEST_CASE("qwen2_vl image processor matches Qwen2VLImageProcessor", "[parity][qwen2_vl]") {
  qwen_test::check_image_processor(qwen_test::fixture_dir("qwen2_vl"));
}

TEST_CASE("qwen2_vl model matches the golden fixture", "[parity][qwen2_vl]") {
  qwen_test::check_vl_model(qwen_test::fixture_dir("qwen2_vl"));
}

TEST_CASE("qwen smart_resize follows the processor's rounding", "[parity][qwen2_vl]") {
  using imgjudge::models::qwen_smart_resize;
  // round(h / 28) with halves to even: 42 / 28 = 1.5 -> 2, 70 / 28 = 2.5 -> 2.
  CHECK(qwen_smart_resize(42, 70, 28, 56 * 56, 28 * 28 * 1280) == std::array<std::int64_t, 2>{56, 56});
  // Over budget: floor(h / beta / f) * f with beta = sqrt(h * w / max).
  CHECK(qwen_smart_resize(1000, 2000, 28, 56 * 56, 28 * 28 * 100) == std::array<std::int64_t, 2>{196, 392});
  // Under budget: ceil(h * beta / f) * f.
  CHECK(qwen_smart_resize(20, 20, 28, 56 * 56, 28 * 28 * 1280) == std::array<std::int64_t, 2>{56, 56});
  CHECK_THROWS_AS(qwen_smart_resize(9, 100, 28, 3136, 1003520), imgjudge::Error);
  CHECK_THROWS_AS(qwen_smart_resize(10, 2100, 28, 3136, 1003520), imgjudge::Error);
}

TEST_CASE("qwen vision attention: blocked per-head spans equal one masked softmax(QK^T)V", "[parity][qwen2_vl]") {
  using namespace imgjudge::models::qwen_vl_detail;
  // 1500 + 200 patches: the first span runs per head in several blocks of query
  // rows, the second (small, like Qwen2.5-VL windows) batched over heads.
  const std::int64_t tokens = 1700, heads = 2, head_dim = 8, dim = heads * head_dim;
  const std::vector<std::int64_t> bounds = {0, 1500, 1700};
  at::manual_seed(3);
  const at::Tensor x = at::randn({tokens, dim});
  const at::Tensor qkv_weight = at::randn({3 * dim, dim}) * 0.3, qkv_bias = at::randn({3 * dim}) * 0.1;
  const at::Tensor proj_weight = at::randn({dim, dim}) * 0.3, proj_bias = at::randn({dim}) * 0.1;
  const VisionAttentionWeights w{{qkv_weight, qkv_bias}, {proj_weight, proj_bias}};
  const at::Tensor angles = at::randn({tokens, head_dim / 2});
  const at::Tensor got = vision_attention(x, w, heads, angles, bounds);

  // Reference: HF's eager path, one [H, N, N] score matrix with a block mask.
  at::Tensor qkv = at::linear(x, qkv_weight, qkv_bias).view({tokens, 3, heads, head_dim});
  const at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);
  auto rotate = [&](const at::Tensor& t) {
    return t * emb.cos() + imgjudge::models::rotate_half(t) * emb.sin();
  };
  const at::Tensor q = rotate(qkv.select(1, 0)).transpose(0, 1), k = rotate(qkv.select(1, 1)).transpose(0, 1);
  const at::Tensor v = qkv.select(1, 2).transpose(0, 1);
  at::Tensor mask = at::full({tokens, tokens}, -std::numeric_limits<float>::infinity());
  for (std::size_t s = 0; s + 1 < bounds.size(); ++s) {
    const std::int64_t begin = bounds[s], length = bounds[s + 1] - begin;
    mask.narrow(0, begin, length).narrow(1, begin, length).zero_();
  }
  const at::Tensor scores = at::matmul(q, k.transpose(1, 2)) / std::sqrt(double(head_dim)) + mask;
  const at::Tensor attended = at::matmul(at::softmax(scores, -1), v).transpose(0, 1).reshape({tokens, dim});
  const at::Tensor want = at::linear(attended, proj_weight, proj_bias);
  REQUIRE(got.sizes() == want.sizes());
  CHECK((got - want).abs().max().item<float>() <= 1e-5f);
}
