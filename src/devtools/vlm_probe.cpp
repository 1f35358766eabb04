#include "devtools/vlm_probe.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "backends/torch/vlm.hpp"
#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "models/llava.hpp"
#include "models/qwen2_vl.hpp"
#include "runtime/device.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {

double median_seconds(int repetitions, const std::function<void()>& run) {
  run();  // warm-up (oneDNN primitives, allocations)
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repetitions); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

namespace {


// FLOPs of `tokens` new tokens through the decoder, each attending to
// `context` earlier positions plus (causally) the new ones before it. The last
// layer answers only `read` of them (keys and values still for all), as the
// engine runs it: 0 for a prefix, one per question when scoring.
double decoder_flops(const models::DecoderConfig& c, double tokens, double context, double read) {
  const double q_out = double(c.num_heads) * double(c.head_dim);
  const double kv_out = double(c.num_kv_heads) * double(c.head_dim);
  auto layer = [&](double queries) {
    const double keys_values = 2.0 * tokens * double(c.hidden_size) * 2 * kv_out;
    const double query_output = 2.0 * queries * double(c.hidden_size) * 2 * q_out;
    const double mlp = 2.0 * queries * double(c.hidden_size) * double(c.intermediate_size) * 3;
    const double attention = 4.0 * queries * (context + (tokens + 1) / 2.0) * q_out;
    return keys_values + query_output + mlp + attention;
  };
  return double(c.num_layers - 1) * layer(tokens) + layer(read);
}

// A ViT layer over `tokens` tokens in segments of `segment`: q/k/v/o, the MLP
// (`mlp_matrices` products of width x intermediate), attention within segments.
double vit_layer_flops(double tokens, double segment, double width, double intermediate, double mlp_matrices) {
  return 2.0 * tokens * width * 4 * width + 2.0 * tokens * width * intermediate * mlp_matrices +
         4.0 * tokens * segment * width;
}

struct VisionCost {
  double flops = 0;
  std::int64_t tokens = 0, width = 0, intermediate = 0;
};

VisionCost vision_cost(const models::MultimodalLM& model, const Image& image) {
  if (const auto* qwen = dynamic_cast<const models::QwenVLModel*>(&model)) {
    const auto& v = qwen->config().vision;
    const auto processed = models::qwen_preprocess_image(
        image, models::QwenImageProcessorConfig::from_file(util::join_path(model.model_dir(), "preprocessor_config.json")));
    const double patches = double(processed.grid.patches());
    const double d = double(v.hidden_size);
    // Full attention per image in Qwen2-VL; Qwen2.5-VL's windowed blocks cost less (counted as full: an upper bound).
    const double mlp_matrices = v.hidden_act == "silu" ? 3.0 : 2.0;
    const double merged = patches / double(v.spatial_merge_size * v.spatial_merge_size);
    const double merge_width = d * double(v.spatial_merge_size * v.spatial_merge_size);
    VisionCost cost;
    cost.flops = 2.0 * patches * double(v.patch_dim()) * d +
                 double(v.depth) * vit_layer_flops(patches, patches, d, double(v.intermediate_size), mlp_matrices) +
                 2.0 * merged * merge_width * merge_width + 2.0 * merged * merge_width * double(v.out_hidden_size);
    cost.tokens = processed.grid.patches();
    cost.width = v.hidden_size;
    cost.intermediate = v.intermediate_size;
    return cost;
  }
  if (const auto* llava = dynamic_cast<const models::LlavaModel*>(&model)) {
    const auto& c = llava->config();
    const auto processed = models::llava_preprocess(
        image, models::LlavaImageProcessorConfig::from_file(util::join_path(model.model_dir(), "preprocessor_config.json")));
    const double tiles = double(processed.pixel_values.size(0));
    const double per_tile = double(c.vision.grid() * c.vision.grid() + (c.siglip_tower ? 0 : 1));
    std::int64_t layers = 0;
    for (std::int64_t layer : c.feature_layers) {
      layers = std::max(layers, models::hidden_state_index(layer, c.vision.encoder.num_layers));
    }
    const double d = double(c.vision.encoder.hidden_size), text = double(model.decoder().config().hidden_size);
    const double kept = per_tile - (c.drop_class_token ? 1 : 0);
    VisionCost cost;
    cost.flops = tiles * (2.0 * per_tile * 3 * double(c.vision.patch_size * c.vision.patch_size) * d +
                          double(layers) * vit_layer_flops(per_tile, per_tile, d, double(c.vision.encoder.intermediate_size), 2) +
                          2.0 * kept * (d * double(c.feature_layers.size()) * text + text * text));
    cost.tokens = static_cast<std::int64_t>(tiles * per_tile);
    cost.width = c.vision.encoder.hidden_size;
    cost.intermediate = c.vision.encoder.intermediate_size;
    return cost;
  }
  throw Error(ErrorCode::Unsupported, model.model_type() + ": no vision FLOP count in the probe");
}

}  // namespace

VlmComponents probe_vlm_components(const std::string& model_dir, const std::string& dtype, const Image& image,
                                   const std::vector<Question>& questions, int repetitions) {
  c10::InferenceMode inference;
  if (questions.empty()) throw Error(ErrorCode::InvalidArgument, "probe: no questions");
  models::LoadOptions options;
  options.target = runtime::resolve_device({"cpu", dtype, 0});
  const models::Family& family =
      models::require_family(models::read_model_type(model_dir), models::FamilyRole::VisionLanguage, model_dir);
  const auto model = family.load_lm(model_dir, options);
  const backends::torch::MultimodalJudge judge(model, dtype);
  const auto& text = model->decoder().config();
  const CallContext call;

  VlmComponents out;
  out.model_type = model->model_type();
  out.hidden_size = text.hidden_size;
  out.intermediate_size = text.intermediate_size;

  // Vision: the family's processor, tower and projector, as prepare() runs them.
  const VisionCost vision = vision_cost(*model, image);
  out.vision_width = vision.width;
  out.vision_intermediate = vision.intermediate;
  out.vision.tokens = vision.tokens;
  out.vision.flops = vision.flops;
  out.vision.seconds = median_seconds(repetitions, [&] { model->encode_image(image, &call); });

  // Token counts of the real prompts: the prefix through the image, the
  // question head every question shares, each question's own tokens.
  const auto context = judge.prepare(image, call);
  out.image_tokens = judge.encoded_image(context.get()).tokens();
  std::vector<std::vector<std::int64_t>> prompts;
  for (const Question& q : questions) prompts.push_back(judge.question_ids(context.get(), q.prompt));
  const auto last_image = std::find(prompts.front().rbegin(), prompts.front().rend(), model->image_token_id());
  out.prefix_tokens = static_cast<std::int64_t>(prompts.front().rend() - last_image);
  std::size_t common = prompts.front().size() - 1;
  double total = 0;
  for (const auto& p : prompts) {
    std::size_t n = 0;
    while (n < common && n < p.size() && p[n] == prompts.front()[n]) ++n;
    common = n;
    total += double(p.size());
  }
  out.question_head_tokens = static_cast<std::int64_t>(common) - out.prefix_tokens;
  out.tokens_per_question = total / double(prompts.size()) - double(common);

  // Prefill: prepare() minus its vision tower.
  out.prefill.tokens = out.prefix_tokens;
  out.prefill.flops = decoder_flops(text, double(out.prefix_tokens), 0, 0);
  out.prefill.seconds =
      std::max(0.0, median_seconds(repetitions, [&] { judge.prepare(image, call); }) - out.vision.seconds);

  // Scoring: the engine's score() with the question head already built (as
  // every round after an image's first).
  const AnswerWords answers;
  judge.score(context.get(), questions, answers, call);
  const double batch = double(questions.size());
  out.scoring.tokens = static_cast<std::int64_t>(std::lround(out.tokens_per_question * batch));
  out.scoring.flops = batch * decoder_flops(text, out.tokens_per_question, double(common), 1) + 2.0 * batch * double(text.hidden_size) * 2;
  out.scoring.seconds = median_seconds(repetitions, [&] { judge.score(context.get(), questions, answers, call); });

  // Decode: the engine's generate(), timed at two lengths; their difference
  // is the steps (random weights may stop early: the generated counts decide).
  const std::vector<ChatTurn> turn{{ChatTurn::Role::User, questions.front().prompt}};
  GenerateLimits few, more;
  few.max_new_tokens = 2;
  more.max_new_tokens = 10;
  std::size_t few_count = 0, more_count = 0;
  const double few_seconds = median_seconds(repetitions, [&] { few_count = judge.generate_ids(context.get(), turn, few, call).size(); });
  const double more_seconds = median_seconds(repetitions, [&] { more_count = judge.generate_ids(context.get(), turn, more, call).size(); });
  const double steps = double(more_count) - double(few_count);
  out.decode.tokens = 1;
  out.decode.flops = decoder_flops(text, 1, double(prompts.front().size()), 1) + 2.0 * double(text.hidden_size * text.vocab_size);
  out.decode.seconds = steps > 0 ? (more_seconds - few_seconds) / steps : 0;

  // The same step for kDecodeBatchRows rows at once (generate_batch), timed
  // the same way; every row generates the same tokens, so the steps are known.
  const std::vector<std::vector<ChatTurn>> rows(kDecodeBatchRows, turn);
  std::size_t few_rows = 0, more_rows = 0;
  const double few_batch = median_seconds(repetitions, [&] { few_rows = judge.generate_batch_ids(context.get(), rows, few, call).front().size(); });
  const double more_batch = median_seconds(repetitions, [&] { more_rows = judge.generate_batch_ids(context.get(), rows, more, call).front().size(); });
  const double batch_steps = double(more_rows) - double(few_rows);
  out.decode_batch.tokens = kDecodeBatchRows;
  out.decode_batch.flops = kDecodeBatchRows * out.decode.flops;
  out.decode_batch.seconds = batch_steps > 0 ? (more_batch - few_batch) / batch_steps : 0;
  const double element = double(at::elementSize(model->decoder().dtype()));
  const double h = double(text.hidden_size), q = double(text.num_heads * text.head_dim),
               kv = double(text.num_kv_heads * text.head_dim), inter = double(text.intermediate_size);
  out.decoder_weight_bytes =
      element * (double(text.num_layers) * (h * (2 * q + 2 * kv) + 3 * h * inter) + h * double(text.vocab_size));

  // Reasoning-shaped: N different statements, one at a time and as one batch.
  GenerateLimits reasoning_limits;
  reasoning_limits.max_new_tokens = kReasoningTokens;
  for (const int n : {1, 4, 8}) {
    std::vector<std::vector<ChatTurn>> conversations;
    for (int i = 0; i < n; ++i) {
      const Question& question = questions[static_cast<std::size_t>(i) % questions.size()];
      conversations.push_back({{ChatTurn::Role::User, question.prompt}});
    }
    VlmComponents::ReasoningTiming timing;
    timing.conversations = n;
    timing.sequential_seconds = median_seconds(repetitions, [&] {
      for (const auto& c : conversations) judge.generate_ids(context.get(), c, reasoning_limits, call);
    });
    timing.batched_seconds =
        median_seconds(repetitions, [&] { judge.generate_batch_ids(context.get(), conversations, reasoning_limits, call); });
    out.reasoning.push_back(timing);
  }
  return out;
}

}  // namespace imgjudge::devtools
