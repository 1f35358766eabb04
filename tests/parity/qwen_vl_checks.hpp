// The parity checks shared by the Qwen2-VL and Qwen2.5-VL fixtures (see their
// README.txt): image processor, vision tower, M-RoPE ids, full forward, the KV
// cache (greedy steps and shared-prefix decoding).
#pragma once

#include "torch_catch.hpp"

#include <vector>

#include "imgjudge/image.hpp"
#include "models/qwen2_vl.hpp"
#include "qwen_fixture.hpp"

namespace qwen_test {

constexpr double kVlTolerance = 1e-4;

inline std::vector<imgjudge::models::ImageGrid> grids_of(const at::Tensor& image_grid_thw) {
  std::vector<imgjudge::models::ImageGrid> grids;
  for (std::int64_t i = 0; i < image_grid_thw.size(0); ++i) {
    grids.push_back({image_grid_thw[i][0].item<std::int64_t>(), image_grid_thw[i][1].item<std::int64_t>(),
                     image_grid_thw[i][2].item<std::int64_t>()});
  }
  return grids;
}

inline std::vector<std::int64_t> ids_of(const at::Tensor& input_ids) {
  at::Tensor flat = input_ids.reshape({-1}).contiguous();
  return {flat.data_ptr<std::int64_t>(), flat.data_ptr<std::int64_t>() + flat.numel()};
}

/// preprocess.safetensors: `image` through Qwen2VLImageProcessor.
inline void check_image_processor(const std::string& dir) {
  const TensorFile expected(dir + "/preprocess.safetensors");
  const at::Tensor pixels = expected["image"].contiguous();  // [H, W, 3] uint8
  const auto image = imgjudge::Image::from_rgb(pixels.data_ptr<std::uint8_t>(), static_cast<int>(pixels.size(1)),
                                               static_cast<int>(pixels.size(0)),
                                               static_cast<std::size_t>(pixels.size(1) * 3));
  const auto config = imgjudge::models::QwenImageProcessorConfig::from_file(dir + "/preprocessor_config.json");
  const auto processed = imgjudge::models::qwen_preprocess_image(image, config);
  const auto grid = grids_of(expected["image_grid_thw"]).at(0);
  CHECK(processed.grid.t == grid.t);
  CHECK(processed.grid.h == grid.h);
  CHECK(processed.grid.w == grid.w);
  QWEN_CHECK_CLOSE("preprocess pixel_values", processed.pixel_values, expected["pixel_values"], kVlTolerance);
}

/// Everything the model fixture holds except family-specific vision internals,
/// which the caller checks in `trace` (filled by the vision tower).
inline void check_vl_model(const std::string& dir, imgjudge::models::VisionTrace* trace = nullptr) {
  using namespace imgjudge::models;
  at::set_num_threads(1);
  const auto model = QwenVLModel::load(dir, at::kFloat, at::Device(at::kCPU));
  const TensorFile inputs(dir + "/inputs.safetensors");
  const TensorFile expected(dir + "/outputs.safetensors");
  const std::vector<std::int64_t> ids = ids_of(inputs["input_ids"]);
  const auto grids = grids_of(inputs["image_grid_thw"]);
  const auto length = static_cast<std::int64_t>(ids.size());

  const at::Tensor image_embeds = model->encode_images(inputs["pixel_values"], grids, nullptr, trace);
  QWEN_CHECK_CLOSE("image_embeds", image_embeds, expected["image_embeds"], kVlTolerance);

  const RopeIndex rope = model->rope_index(ids, grids);
  CHECK(at::equal(rope.position_ids, expected["position_ids"]));
  CHECK(rope.delta == expected["rope_deltas"].item<std::int64_t>());

  const at::Tensor embeds = model->embed_prompt(ids, image_embeds);
  DecoderInput full;
  full.embeds = embeds;
  full.position_ids = rope.position_ids;
  full.collect_hidden_states = true;
  const DecoderOutput out = model->decoder().forward(full);
  const at::Tensor logits = model->decoder().logits(out.last_hidden[0]);
  QWEN_CHECK_CLOSE("logits", logits, expected["logits"], kVlTolerance);
  QWEN_CHECK_CLOSE("logits_last", logits[length - 1], expected["logits_last"], kVlTolerance);
  QWEN_CHECK_CLOSE("logits_rows", logits.index_select(0, expected["logits_row_positions"]),
                   expected["logits_rows"], kVlTolerance);
  QWEN_CHECK_CLOSE("hidden_states", at::stack(out.hidden_states).squeeze(1), expected["hidden_states"],
                   kVlTolerance);

  // Greedy decoding with the KV cache: decode positions are index + rope delta.
  KvCache cache;
  DecoderInput prefill = full;
  prefill.collect_hidden_states = false;
  prefill.cache = &cache;
  at::Tensor step_logits = model->decoder().logits(model->decoder().forward(prefill).last_hidden[0][length - 1]);
  const at::Tensor expected_ids = expected["greedy_new_ids"];
  for (std::int64_t k = 0; k < expected_ids.size(0); ++k) {
    QWEN_CHECK_CLOSE("greedy_step_logits[" << k << "]", step_logits, expected["greedy_step_logits"][k],
                     kVlTolerance);
    const std::int64_t next = step_logits.argmax().item<std::int64_t>();
    CHECK(next == expected_ids[k].item<std::int64_t>());
    DecoderInput step;
    step.embeds = model->decoder().embed(at::full({1, 1}, next, at::kLong));
    step.position_ids = at::full({3, 1, 1}, cache.length() + rope.delta, at::kLong);
    step.cache = &cache;
    step_logits = model->decoder().logits(model->decoder().forward(step).last_hidden[0][0]);
  }

  // Prefill [0, p) as a shared prefix, then decode token p: reproduces row p.
  const at::Tensor rows = expected["logits_row_positions"];
  for (std::int64_t r = 0; r < rows.size(0); ++r) {
    const std::int64_t p = rows[r].item<std::int64_t>();
    if (p == 0) continue;
    KvCache prefix;
    DecoderInput pre;
    pre.embeds = embeds.narrow(1, 0, p);
    pre.position_ids = rope.position_ids.narrow(2, 0, p);
    pre.cache = &prefix;
    model->decoder().forward(pre);
    DecoderInput step;
    step.embeds = embeds.narrow(1, p, 1);
    step.position_ids = rope.position_ids.narrow(2, p, 1);
    step.shared_prefix = &prefix;
    QWEN_CHECK_CLOSE("logits_rows[" << r << "] via shared prefix",
                     model->decoder().logits(model->decoder().forward(step).last_hidden[0][0]),
                     expected["logits_rows"][r], kVlTolerance);
  }
}

}  // namespace qwen_test
