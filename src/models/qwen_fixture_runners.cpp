#include "models/qwen_fixture_runners.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "models/qwen2.hpp"
#include "models/qwen2_vl.hpp"
#include "runtime/config.hpp"
#include "runtime/tensor.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::models {
namespace {

constexpr std::int64_t kGreedySteps = 10;

// The fixture convention: first token, first/last image token and the one
// after it (when there are image tokens), and the last two tokens.
at::Tensor row_positions(const std::vector<std::int64_t>& ids, std::int64_t image_token) {
  const auto length = static_cast<std::int64_t>(ids.size());
  std::vector<std::int64_t> rows{0};
  const auto first = std::find(ids.begin(), ids.end(), image_token);
  if (image_token >= 0 && first != ids.end()) {
    const auto last = std::find(ids.rbegin(), ids.rend(), image_token);
    const std::int64_t last_index = length - 1 - (last - ids.rbegin());
    rows.push_back(first - ids.begin());
    rows.push_back(last_index);
    rows.push_back(last_index + 1);
  }
  rows.push_back(length - 2);
  rows.push_back(length - 1);
  return at::tensor(rows, at::kLong);
}

// Full forward, rows, hidden states and greedy steps of one prompt.
// How many greedy steps the reference decoded (its greedy_new_ids), 0 when it has none.
std::int64_t reference_greedy_steps(const std::string& dir) {
  const NamedTensors reference = runtime::read_safetensors(dir + "/outputs.safetensors");
  const auto it = reference.find("greedy_new_ids");
  return it == reference.end() ? 0 : it->second.numel();
}

void run_decoder(const Decoder& decoder, const at::Tensor& embeds, const at::Tensor& positions,
                 std::int64_t rope_delta, const at::Tensor& rows, std::int64_t greedy_steps, NamedTensors& out) {
  const std::int64_t length = embeds.size(1);
  DecoderInput full;
  full.embeds = embeds;
  full.position_ids = positions;
  full.collect_hidden_states = true;
  KvCache cache;
  full.cache = &cache;
  const DecoderOutput result = decoder.forward(full);
  const at::Tensor logits = decoder.logits(result.last_hidden[0]);
  out["logits"] = logits;  // compared only where the reference has it (short prompts)
  out["logits_last"] = logits[length - 1];
  out["logits_row_positions"] = rows;
  out["logits_rows"] = logits.index_select(0, rows);
  out["hidden_states"] = at::stack(result.hidden_states).squeeze(1);
  std::vector<std::int64_t> new_ids;
  std::vector<at::Tensor> step_logits{logits[length - 1]};
  for (std::int64_t k = 0; k < greedy_steps; ++k) {
    new_ids.push_back(step_logits.back().argmax().item<std::int64_t>());
    if (k + 1 == greedy_steps) break;
    DecoderInput step;
    step.embeds = decoder.embed(at::full({1, 1}, new_ids.back(), at::kLong));
    step.position_ids = at::full({3, 1, 1}, cache.length() + rope_delta, at::kLong);
    step.cache = &cache;
    step_logits.push_back(decoder.logits(decoder.forward(step).last_hidden[0][0]));
  }
  out["greedy_new_ids"] = at::tensor(new_ids, at::kLong);
  out["greedy_step_logits"] = at::stack(step_logits);
}

std::vector<std::int64_t> to_ids(const at::Tensor& input_ids) {
  const at::Tensor flat = input_ids.reshape({-1}).to(at::kLong).contiguous();
  return {flat.data_ptr<std::int64_t>(), flat.data_ptr<std::int64_t>() + flat.numel()};
}

}  // namespace

NamedTensors run_qwen2_fixture(const std::string& dir) {
  c10::InferenceMode inference;
  at::set_num_threads(1);  // the fixtures were made with one thread
  const runtime::HfConfig config = runtime::HfConfig::load(dir + "/config.json");
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU);
  const auto decoder = load_qwen2_decoder(qwen2_decoder_config(config), weights.scope("model"), weights, "lm_head.weight");
  const NamedTensors inputs = read_fixture_inputs(dir);
  const std::vector<std::int64_t> ids = to_ids(fixture_input(inputs, "input_ids", dir));
  const auto length = static_cast<std::int64_t>(ids.size());
  const at::Tensor id_tensor = at::tensor(ids, at::kLong).view({1, length});
  const at::Tensor positions = at::arange(length, at::kLong).view({1, 1, length}).expand({3, 1, length}).contiguous();
  NamedTensors out;
  run_decoder(*decoder, decoder->embed(id_tensor), positions, 0, row_positions(ids, -1), reference_greedy_steps(dir), out);
  return out;
}

NamedTensors run_qwen_vl_fixture(const std::string& dir) {
  c10::InferenceMode inference;
  at::set_num_threads(1);
  const auto model = QwenVLModel::load(dir, at::kFloat, at::kCPU);
  const NamedTensors inputs = read_fixture_inputs(dir);
  const std::vector<std::int64_t> ids = to_ids(fixture_input(inputs, "input_ids", dir));
  const at::Tensor thw = fixture_input(inputs, "image_grid_thw", dir).to(at::kLong);
  std::vector<ImageGrid> grids;
  for (std::int64_t i = 0; i < thw.size(0); ++i) {
    grids.push_back({thw[i][0].item<std::int64_t>(), thw[i][1].item<std::int64_t>(), thw[i][2].item<std::int64_t>()});
  }
  VisionTrace trace;
  NamedTensors out;
  const at::Tensor features = model->encode_images(fixture_input(inputs, "pixel_values", dir), grids, nullptr, &trace);
  out["image_embeds"] = features;
  if (trace.window_index.defined()) {
    out["window_index"] = trace.window_index;
    out["cu_window_seqlens"] = at::tensor(trace.cu_window_seqlens, at::kLong).to(at::kInt);
    out["vision_hidden_states"] = at::stack(trace.hidden_states);
  }
  const RopeIndex rope = model->rope_index(ids, grids);
  out["position_ids"] = rope.position_ids;
  out["rope_deltas"] = at::full({1, 1}, rope.delta, at::kLong);
  run_decoder(model->decoder(), model->embed_prompt(ids, features), rope.position_ids, rope.delta,
              row_positions(ids, model->config().image_token_id), reference_greedy_steps(dir), out);
  return out;
}

}  // namespace imgjudge::models
