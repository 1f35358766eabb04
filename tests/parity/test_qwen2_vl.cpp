// Qwen2-VL / Qwen2.5-VL beyond what their golden fixtures compare (those run
// through `imgjudge verify-fixture`, a ctest per folder): M-RoPE positions over
// a shared prefix on the deep fixtures, smart_resize rounding, and the blocked
// vision attention.
#include "torch_catch.hpp"

#include <cmath>
#include <limits>

#include "imgjudge/error.hpp"
#include "models/qwen2_vl.hpp"
#include "models/qwen_vl_vision.hpp"
#include "qwen_fixture.hpp"

TEST_CASE("qwen vl: prefix [0, p) then token p over a shared M-RoPE prefix gives row p (4-layer fixtures)",
          "[parity][qwen2_vl]") {
  using namespace imgjudge::models;
  at::set_num_threads(1);
  for (const std::string family : {"qwen2_vl", "qwen2_5_vl"}) {
    const std::string dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity-deep/" + family;
    INFO(dir);
    LoadOptions options;
    options.with_processors = false;
    const auto model = QwenVLModel::load(dir, options);
    const qwen_test::TensorFile inputs(dir + "/inputs.safetensors");
    const qwen_test::TensorFile expected(dir + "/outputs.safetensors");
    const at::Tensor flat = inputs["input_ids"].reshape({-1}).contiguous();
    const std::vector<std::int64_t> ids(flat.data_ptr<std::int64_t>(), flat.data_ptr<std::int64_t>() + flat.numel());
    const at::Tensor thw = inputs["image_grid_thw"];
    std::vector<ImageGrid> grids;
    for (std::int64_t i = 0; i < thw.size(0); ++i) {
      grids.push_back({thw[i][0].item<std::int64_t>(), thw[i][1].item<std::int64_t>(), thw[i][2].item<std::int64_t>()});
    }
    REQUIRE(grids.size() >= 2);  // several images in one prompt
    const at::Tensor features = model->encode_pixels(inputs["pixel_values"], grids);
    std::vector<EncodedImage> images;
    std::int64_t row = 0;
    const std::int64_t merge = model->config().vision.spatial_merge_size;
    for (const auto& grid : grids) {
      const std::int64_t tokens = grid.patches() / (merge * merge);
      images.push_back(model->encoded(features.narrow(0, row, tokens), grid));
      row += tokens;
    }
    std::vector<const EncodedImage*> pointers;
    for (const auto& image : images) pointers.push_back(&image);
    const PromptPositions positions = model->positions(ids, pointers);
    const at::Tensor embeds = model->embed(ids, pointers);
    const at::Tensor rows = expected["logits_row_positions"];
    for (std::int64_t r = 0; r < rows.size(0); ++r) {
      const std::int64_t p = rows[r].item<std::int64_t>();
      if (p == 0) continue;
      KvCache prefix;
      DecoderInput pre;
      pre.embeds = embeds.narrow(1, 0, p);
      pre.position_ids = positions.ids.narrow(2, 0, p);
      pre.cache = &prefix;
      pre.cache_only = true;
      model->decoder().forward(pre);
      DecoderInput step;
      step.embeds = embeds.narrow(1, p, 1);
      step.position_ids = positions.ids.narrow(2, p, 1);
      step.shared_prefix = &prefix;
      QWEN_CHECK_CLOSE("logits_rows[" << r << "] via shared prefix",
                       model->decoder().logits(model->decoder().forward(step).last_hidden[0][0]),
                       expected["logits_rows"][r], 1e-4);
    }
  }
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
