// Qwen2-VL vs the transformers 4.50.3 golden fixture (tests/data/parity/qwen2_vl):
// image processor, vision tower, M-RoPE ids, logits, hidden states, KV cache.
#include "torch_catch.hpp"

#include "imgjudge/error.hpp"
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
