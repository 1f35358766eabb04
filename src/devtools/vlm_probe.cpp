#include "devtools/vlm_probe.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "models/qwen2.hpp"
#include "models/qwen2_vl.hpp"
#include "runtime/device.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

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

// FLOPs of `tokens` new tokens through the decoder, each attending to
// `context` earlier positions plus (causally) the new ones before it. The last
// layer answers only `read` of them (keys and values still for all), as the
// Judge runs it: 0 for a prefix, one per question when scoring.
double decoder_flops(const models::DecoderConfig& c, double tokens, double context, double read) {
  const double q_out = double(c.num_heads) * c.head_dim;
  const double kv_out = double(c.num_kv_heads) * c.head_dim;
  auto layer = [&](double queries) {
    const double keys_values = 2.0 * tokens * c.hidden_size * 2 * kv_out;
    const double query_output = 2.0 * queries * c.hidden_size * 2 * q_out;
    const double mlp = 2.0 * queries * c.hidden_size * c.intermediate_size * 3;
    const double attention = 4.0 * queries * (context + (tokens + 1) / 2.0) * q_out;
    return keys_values + query_output + mlp + attention;
  };
  return double(c.num_layers - 1) * layer(tokens) + layer(read);
}

double vision_flops(const models::QwenVisionConfig& v, std::int64_t out_hidden, double patches) {
  const double d = double(v.hidden_size);
  const double embed = 2.0 * patches * v.patch_dim() * d;
  // qkv + proj, the MLP (two matrices for GELU MLPs, three for SwiGLU), full attention per image.
  const double mlp_matrices = v.hidden_act == "silu" ? 3.0 : 2.0;
  const double per_layer = 2.0 * patches * d * 4 * d + 2.0 * patches * d * v.intermediate_size * mlp_matrices +
                           4.0 * patches * patches * d;
  const double merged = patches / double(v.spatial_merge_size * v.spatial_merge_size);
  const double merge_width = d * v.spatial_merge_size * v.spatial_merge_size;
  const double merger = 2.0 * merged * merge_width * merge_width + 2.0 * merged * merge_width * out_hidden;
  return embed + double(v.depth) * per_layer + merger;
}

}  // namespace

QwenVlComponents probe_qwen_vl_components(const ComponentRequest& request, const Image& image) {
  at::NoGradGuard no_grad;
  const runtime::ExecutionTarget target = runtime::resolve_device({"cpu", request.dtype, 0});
  models::LoadOptions options;
  options.target = target;
  options.with_processors = false;
  const auto model = models::QwenVLModel::load(request.model_dir, options);
  const auto& config = model->config();
  const auto processor = models::QwenImageProcessorConfig::from_file(
      util::join_path(request.model_dir, "preprocessor_config.json"));
  const models::ProcessedImage processed = models::qwen_preprocess_image(image, processor);
  const std::int64_t merge = config.vision.spatial_merge_size * config.vision.spatial_merge_size;
  const std::int64_t image_tokens = processed.grid.patches() / merge;

  QwenVlComponents out;
  out.hidden_size = config.text.hidden_size;
  out.intermediate_size = config.text.intermediate_size;
  out.vision_width = config.vision.hidden_size;
  out.vision_intermediate = config.vision.intermediate_size;
  out.image_tokens = image_tokens;

  // Vision tower.
  at::Tensor features;
  out.vision.tokens = processed.grid.patches();
  out.vision.flops = vision_flops(config.vision, config.text.hidden_size, double(processed.grid.patches()));
  out.vision.seconds = median_seconds(request.repetitions, [&] {
    features = model->encode_pixels(processed.pixel_values, {processed.grid});
  });

  // Prefix: a system turn's worth of ordinary tokens, the image span, then the
  // question template's head.
  const std::int64_t ordinary = 1000;
  std::vector<std::int64_t> ids(20, ordinary);
  ids.push_back(config.vision_start_token_id);
  ids.insert(ids.end(), image_tokens, config.image_token_id);
  ids.push_back(config.vision_end_token_id);
  ids.insert(ids.end(), static_cast<std::size_t>(std::max(0, request.head_tokens)), ordinary);
  out.prefix_tokens = static_cast<std::int64_t>(ids.size());
  const models::EncodedImage encoded = model->encoded(features, processed.grid);
  const models::PromptPositions rope = model->positions(ids, {&encoded});
  const at::Tensor prefix_embeds = model->embed(ids, {&encoded});
  models::KvCache prefix;
  out.prefill.tokens = out.prefix_tokens;
  out.prefill.flops = decoder_flops(config.text, double(out.prefix_tokens), 0, 0);
  out.prefill.seconds = median_seconds(request.repetitions, [&] {
    prefix = models::KvCache{};
    models::DecoderInput input;
    input.embeds = prefix_embeds;
    input.position_ids = rope.ids;
    input.cache = &prefix;
    input.cache_only = true;  // as the Judge: a prefix's outputs are never read
    model->decoder().forward(input);
  });

  // Continuations start after the prefix's largest position (text rows are equal).
  const std::int64_t next_position = out.prefix_tokens + rope.delta;
  auto continuation_positions = [&](std::int64_t batch, std::int64_t length, std::int64_t offset) {
    at::Tensor positions = at::arange(next_position + offset, next_position + offset + length, at::kLong);
    return positions.view({1, 1, length}).expand({3, batch, length}).contiguous();
  };

  // One scoring pass over the shared prefix as the Judge runs it: the
  // questions packed into one sequence, the last layer and the answer-token
  // logits only at each question's last token.
  const std::int64_t batch = request.batch, length = request.question_tokens, total = batch * length;
  const at::Tensor question_embeds = model->decoder().embed(at::full({1, total}, ordinary, at::kLong));
  const at::Tensor question_positions =
      (at::arange(length, at::kLong).repeat({batch}) + next_position).view({1, 1, total}).expand({3, 1, total}).contiguous();
  const at::Tensor segments = at::arange(batch, at::kLong).repeat_interleave(length);  // [total]
  const at::Tensor last_tokens = at::arange(1, batch + 1, at::kLong) * length - 1;     // [batch]
  out.scoring.tokens = total;
  // The Judge reads only the answer tokens' logits (4 spellings each of yes and no).
  const at::Tensor answer_columns = at::arange(8, at::kLong) + ordinary;
  out.scoring.flops = double(batch) * decoder_flops(config.text, double(length), double(out.prefix_tokens), 1) +
                      2.0 * batch * config.text.hidden_size * double(answer_columns.numel());
  out.scoring.seconds = median_seconds(request.repetitions, [&] {
    models::DecoderInput input;
    input.embeds = question_embeds;
    input.position_ids = question_positions;
    input.shared_prefix = &prefix;
    input.segments = segments;
    input.read_positions = last_tokens;
    const models::DecoderOutput result = model->decoder().forward(input);
    model->decoder().logits_for(result.last_hidden[0], answer_columns);
  });

  // One greedy decode step (batch 1) after the prefix and 16 generated tokens.
  models::KvCache generated;
  {
    models::DecoderInput input;
    input.embeds = model->decoder().embed(at::full({1, 16}, ordinary, at::kLong));
    input.position_ids = continuation_positions(1, 16, 0);
    input.shared_prefix = &prefix;
    input.cache = &generated;
    model->decoder().forward(input);
  }
  const at::Tensor step_embeds = model->decoder().embed(at::full({1, 1}, ordinary, at::kLong));
  const at::Tensor step_positions = continuation_positions(1, 1, 16);
  out.decode.tokens = 1;
  out.decode.flops = decoder_flops(config.text, 1, double(out.prefix_tokens + 16), 1) +
                     2.0 * config.text.hidden_size * config.text.vocab_size;
  out.decode.seconds = median_seconds(std::max(request.repetitions, 5), [&] {
    models::KvCache step = generated;  // shallow: the step's keys are appended to a copy of the list
    models::DecoderInput input;
    input.embeds = step_embeds;
    input.position_ids = step_positions;
    input.shared_prefix = &prefix;
    input.cache = &step;
    const models::DecoderOutput result = model->decoder().forward(input);
    model->decoder().logits(result.last_hidden.select(1, 0));
  });
  return out;
}

}  // namespace imgjudge::devtools
