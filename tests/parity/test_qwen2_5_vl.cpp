// Qwen2.5-VL vs the transformers 4.50.3 golden fixture (tests/data/parity/qwen2_5_vl):
// besides the shared checks, the window permutation, window boundaries and
// every vision block's output.
#include "torch_catch.hpp"

#include "qwen_vl_checks.hpp"

TEST_CASE("qwen2_5_vl image processor matches Qwen2VLImageProcessor", "[parity][qwen2_5_vl]") {
  qwen_test::check_image_processor(qwen_test::fixture_dir("qwen2_5_vl"));
}

TEST_CASE("qwen2_5_vl model matches the golden fixture", "[parity][qwen2_5_vl]") {
  const std::string dir = qwen_test::fixture_dir("qwen2_5_vl");
  imgjudge::models::VisionTrace trace;
  qwen_test::check_vl_model(dir, &trace);
  const qwen_test::TensorFile expected(dir + "/outputs.safetensors");
  CHECK(at::equal(trace.window_index, expected["window_index"]));
  CHECK(at::equal(at::tensor(trace.cu_window_seqlens, at::kLong), expected["cu_window_seqlens"].to(at::kLong)));
  QWEN_CHECK_CLOSE("vision_hidden_states", at::stack(trace.hidden_states), expected["vision_hidden_states"],
                   qwen_test::kVlTolerance);
}
