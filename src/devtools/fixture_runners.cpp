#include "devtools/fixture_runners.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "models/families.hpp"
#include "models/internvl.hpp"
#include "models/llava.hpp"
#include "models/owl.hpp"
#include "models/qwen2_vl.hpp"
#include "models/siglip.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"
#include "runtime/weights.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

runtime::WeightStore fixture_weights(const std::string& dir) {
  return runtime::WeightStore(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU);
}

std::vector<std::int64_t> to_ids(const at::Tensor& input_ids) {
  const at::Tensor flat = input_ids.reshape({-1}).to(at::kLong).contiguous();
  return {flat.data_ptr<std::int64_t>(), flat.data_ptr<std::int64_t>() + flat.numel()};
}

// The LM outputs of the fixtures' convention for one prompt: a full forward
// (every logit and hidden state), the reference's logits rows, and greedy
// decoding with the KV cache for as many steps as the reference took.
void run_decoder(const models::Decoder& decoder, const at::Tensor& embeds, const models::PromptPositions& positions,
                 const NamedTensors& reference, NamedTensors& out) {
  const std::int64_t length = embeds.size(1);
  models::KvCache cache;
  models::DecoderInput full;
  full.embeds = embeds;
  full.position_ids = positions.ids;
  full.collect_hidden_states = true;
  full.cache = &cache;
  const models::DecoderOutput result = decoder.forward(full);
  const at::Tensor logits = decoder.logits(result.last_hidden[0]);
  out["logits"] = logits;  // compared only where the reference has it (short prompts)
  out["logits_last"] = logits[length - 1];
  if (auto rows = reference.find("logits_row_positions"); rows != reference.end()) {
    out["logits_row_positions"] = rows->second;
    out["logits_rows"] = logits.index_select(0, rows->second.to(at::kLong));
  }
  out["hidden_states"] = at::stack(result.hidden_states).squeeze(1);
  const auto steps = reference.count("greedy_new_ids") ? reference.at("greedy_new_ids").numel() : std::int64_t{0};
  std::vector<std::int64_t> new_ids;
  std::vector<at::Tensor> step_logits{logits[length - 1]};
  for (std::int64_t k = 0; k < steps; ++k) {
    new_ids.push_back(step_logits.back().argmax().item<std::int64_t>());
    if (k + 1 == steps) break;
    models::DecoderInput step;
    step.embeds = decoder.embed(at::full({1, 1}, new_ids.back(), at::kLong));
    step.position_ids = at::full({positions.ids.size(0), 1, 1}, cache.length() + positions.delta, at::kLong);
    step.cache = &cache;
    step_logits.push_back(decoder.logits(decoder.forward(step).last_hidden[0][0]));
  }
  if (steps > 0) {
    out["greedy_new_ids"] = at::tensor(new_ids, at::kLong);
    out["greedy_step_logits"] = at::stack(step_logits);
  }
}

NamedTensors run_text_decoder(const models::Decoder& decoder, const std::string& dir, const NamedTensors& reference) {
  const NamedTensors inputs = read_fixture_inputs(dir);
  const at::Tensor ids = fixture_input(inputs, "input_ids", dir).to(at::kLong).view({1, -1});
  const std::int64_t length = ids.size(1);
  NamedTensors out;
  run_decoder(decoder, decoder.embed(ids), {at::arange(length, at::kLong).view({1, 1, length}), 0}, reference, out);
  return out;
}

// Any Text family (Qwen2, Llama, Mistral): its decoder as the family table loads it.
NamedTensors run_text_family(const std::string& dir, const NamedTensors& reference) {
  c10::InferenceMode inference;
  const auto config = runtime::HfConfig::load(util::join_path(dir, "config.json"));
  const auto weights = fixture_weights(dir);
  const auto decoder = models::load_text_decoder(config, weights.scope("model"), weights, "lm_head.weight", dir);
  return run_text_decoder(*decoder, dir, reference);
}

NamedTensors run_qwen_vl(const std::string& dir, const NamedTensors& reference) {
  c10::InferenceMode inference;
  models::LoadOptions options;
  options.with_processors = false;  // a bare model folder
  const auto model = models::QwenVLModel::load(dir, options);
  const NamedTensors inputs = read_fixture_inputs(dir);
  const std::vector<std::int64_t> ids = to_ids(fixture_input(inputs, "input_ids", dir));
  const at::Tensor thw = fixture_input(inputs, "image_grid_thw", dir).to(at::kLong);
  std::vector<models::ImageGrid> grids;
  for (std::int64_t i = 0; i < thw.size(0); ++i) {
    grids.push_back({thw[i][0].item<std::int64_t>(), thw[i][1].item<std::int64_t>(), thw[i][2].item<std::int64_t>()});
  }
  models::VisionTrace trace;
  NamedTensors out;
  const at::Tensor features = model->encode_pixels(fixture_input(inputs, "pixel_values", dir), grids, nullptr, &trace);
  out["image_embeds"] = features;
  if (trace.window_index.defined()) {
    out["window_index"] = trace.window_index;
    out["cu_window_seqlens"] = at::tensor(trace.cu_window_seqlens, at::kLong).to(at::kInt);
    out["vision_hidden_states"] = at::stack(trace.hidden_states);
  }
  // The images' rows of the features, in order.
  std::vector<models::EncodedImage> images;
  std::int64_t row = 0;
  const std::int64_t merge = model->config().vision.spatial_merge_size;
  for (const auto& grid : grids) {
    const std::int64_t tokens = grid.patches() / (merge * merge);
    images.push_back(model->encoded(features.narrow(0, row, tokens), grid));
    row += tokens;
  }
  std::vector<const models::EncodedImage*> pointers;
  for (const auto& image : images) pointers.push_back(&image);
  const models::PromptPositions positions = model->positions(ids, pointers);
  out["position_ids"] = positions.ids;
  out["rope_deltas"] = at::full({1, 1}, positions.delta, at::kLong);
  run_decoder(model->decoder(), model->embed(ids, pointers), positions, reference, out);
  return out;
}

// LLaVA-1.5 / NeXT / OneVision: the tower's hidden states, the projected tile
// features, the packed image rows, then the language model.
NamedTensors run_llava(const std::string& dir, const NamedTensors& reference) {
  c10::InferenceMode inference;
  models::LoadOptions options;
  options.with_processors = false;  // a bare model folder
  const auto model = models::LlavaModel::load(dir, options);
  const auto& config = model->config();
  const NamedTensors inputs = read_fixture_inputs(dir);
  const std::vector<std::int64_t> ids = to_ids(fixture_input(inputs, "input_ids", dir));
  const at::Tensor pixel_values = fixture_input(inputs, "pixel_values", dir);
  NamedTensors out;
  std::vector<models::EncodedImage> images;
  if (config.variant == models::LlavaConfig::Variant::Llava) {
    // [images, 3, S, S]: one tile each.
    const at::Tensor states = at::stack(model->vision_hidden_states(pixel_values));  // [L+1, images, tokens, D]
    if (pixel_values.size(0) == 1) out["vision_hidden_states"] = states.select(1, 0);
    const at::Tensor features = model->tile_features(pixel_values);  // [images, tokens, Dt]
    out["image_features"] = features.reshape({-1, features.size(2)});
    for (std::int64_t k = 0; k < features.size(0); ++k) {
      images.push_back({model->pack(features.narrow(0, k, 1), 0, 0)});
    }
  } else {
    // [images, max tiles, 3, S, S], zero tiles after each image's own.
    const at::Tensor sizes = fixture_input(inputs, "image_sizes", dir).to(at::kLong);
    std::vector<at::Tensor> packed;
    std::vector<std::int64_t> lengths;
    for (std::int64_t k = 0; k < sizes.size(0); ++k) {
      const std::int64_t height = sizes[k][0].item<std::int64_t>(), width = sizes[k][1].item<std::int64_t>();
      const auto best = models::select_best_resolution(height, width, config.pinpoints);
      const std::int64_t side = config.vision.image_size;
      const std::int64_t tiles = ((best[0] + side - 1) / side) * ((best[1] + side - 1) / side) + 1;
      const at::Tensor own = pixel_values[k].narrow(0, 0, tiles);
      out[fmt::format("vision_hidden_states_image{}", k)] = at::stack(model->vision_hidden_states(own));
      const at::Tensor features = model->tile_features(own);
      out[fmt::format("tile_features_image{}", k)] = features;
      packed.push_back(model->pack(features, height, width));
      lengths.push_back(packed.back().size(0));
      images.push_back({packed.back()});
    }
    out["packed_image_features"] = at::cat(packed);
    out["packed_feature_lens"] = at::tensor(lengths, at::kLong);
  }
  std::vector<const models::EncodedImage*> pointers;
  for (const auto& image : images) pointers.push_back(&image);
  run_decoder(model->decoder(), model->embed(ids, pointers), model->positions(ids, pointers), reference, out);
  return out;
}

// InternVL2 / 2.5 (OpenGVLab's InternVLChatModel.forward): InternViT's hidden
// states of every tile, extract_feature of the tiles whose image_flags is 1,
// the merged prompt through the language model. A bare fixture has no
// tokenizer to name <IMG_CONTEXT>: it is the one id whose occurrences are
// exactly the kept tiles' image tokens; each run of it is one image.
NamedTensors run_internvl(const std::string& dir, const NamedTensors& reference) {
  c10::InferenceMode inference;
  const NamedTensors inputs = read_fixture_inputs(dir);
  const at::Tensor input_ids = fixture_input(inputs, "input_ids", dir).to(at::kLong).reshape({-1});
  if (auto mask = inputs.find("attention_mask"); mask != inputs.end() && !mask->second.to(at::kLong).eq(1).all().item<bool>()) {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: padded prompts (attention_mask zeros) are not supported", dir));
  }
  const at::Tensor pixel_values = fixture_input(inputs, "pixel_values", dir);
  at::Tensor kept = pixel_values;
  if (auto flags = inputs.find("image_flags"); flags != inputs.end()) {
    kept = pixel_values.index_select(0, flags->second.reshape({-1}).to(at::kLong).eq(1).nonzero().reshape({-1}));
  }
  const auto config = models::InternVLConfig::from_config(runtime::HfConfig::load(util::join_path(dir, "config.json")));
  const std::int64_t image_rows = kept.size(0) * config.tokens_per_tile();
  const at::Tensor values = std::get<0>(at::_unique(input_ids));
  std::vector<std::int64_t> candidates;
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    if (input_ids.eq(values[i]).sum().item<std::int64_t>() == image_rows) candidates.push_back(values[i].item<std::int64_t>());
  }
  if (candidates.size() != 1) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: cannot tell <IMG_CONTEXT>: {} ids occur exactly {} times ({} tiles x {} tokens)", dir,
                            candidates.size(), image_rows, kept.size(0), config.tokens_per_tile()));
  }
  models::LoadOptions options;
  options.with_processors = false;  // a bare model folder
  const auto model = models::InternVLModel::load(dir, options, candidates.front());

  NamedTensors out;
  out["vision_hidden_states"] = at::stack(model->vision_hidden_states(pixel_values));  // [L+1, tiles, 1+g*g, C]
  const at::Tensor features = model->tile_features(kept);                             // [tiles, tokens, hidden]
  const at::Tensor rows = features.reshape({-1, features.size(2)});
  out["image_embeds"] = rows;
  std::vector<models::EncodedImage> images;
  const std::vector<std::int64_t> ids = to_ids(input_ids);
  std::int64_t row = 0;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t run = 0;
    while (i + run < ids.size() && ids[i + run] == candidates.front()) ++run;
    if (run > 0) {
      images.push_back({rows.narrow(0, row, static_cast<std::int64_t>(run))});
      row += static_cast<std::int64_t>(run);
    }
    i += std::max<std::size_t>(run, 1);
  }
  std::vector<const models::EncodedImage*> pointers;
  for (const auto& image : images) pointers.push_back(&image);
  run_decoder(model->decoder(), model->embed(ids, pointers), model->positions(ids, pointers), reference, out);
  return out;
}

// CLIP and SigLIP: both towers, outputs named as transformers names them. A
// vision tower without a pooling head (SigLIP's vision_use_head = false)
// leaves the pooled outputs absent.
template <class Model>
NamedTensors run_dual_encoder(const Model& model, const std::string& dir) {
  const NamedTensors inputs = read_fixture_inputs(dir);
  const auto text = model.encode_text(fixture_input(inputs, "input_ids", dir),
                                      inputs.count("attention_mask") ? inputs.at("attention_mask") : at::Tensor(),
                                      /*keep_hidden_states=*/true);
  const auto vision = model.encode_image(fixture_input(inputs, "pixel_values", dir), /*keep_hidden_states=*/true);
  NamedTensors out = {
      {"text_hidden_states", at::stack(text.hidden_states)},
      {"text_last_hidden_state", text.last_hidden_state},
      {"text_pooler_output", text.pooled},
      {"text_features", text.features},
      {"text_embeds", runtime::nn::l2_normalize(text.features)},
      {"vision_hidden_states", at::stack(vision.hidden_states)},
      {"vision_last_hidden_state", vision.last_hidden_state},
  };
  if (vision.pooled.defined()) {
    out["vision_pooler_output"] = vision.pooled;
    out["image_features"] = vision.features;
    out["image_embeds"] = runtime::nn::l2_normalize(vision.features);
    out["logits_per_image"] = model.logits_per_image(out["image_embeds"], out["text_embeds"]);
  }
  return out;
}

NamedTensors run_clip(const std::string& dir, const NamedTensors&) {
  c10::InferenceMode inference;
  return run_dual_encoder(models::clip::ClipModel(models::clip::load_config(dir), fixture_weights(dir)), dir);
}

NamedTensors run_siglip(const std::string& dir, const NamedTensors&) {
  c10::InferenceMode inference;
  return run_dual_encoder(models::siglip::SiglipModel(models::siglip::load_config(dir), fixture_weights(dir)), dir);
}

// OWLv2 / OWL-ViT: the detector on the fixture's queries and image, the
// image's batch dimension dropped as the fixture stores it (text_embeds keeps it).
NamedTensors run_owl(const std::string& dir, const NamedTensors&) {
  c10::InferenceMode inference;
  const models::owl::OwlDetector model(models::owl::load_config(dir), fixture_weights(dir));
  const NamedTensors inputs = read_fixture_inputs(dir);
  const at::Tensor& ids = fixture_input(inputs, "input_ids", dir);
  const at::Tensor mask = inputs.count("attention_mask") ? inputs.at("attention_mask") : at::Tensor();
  const models::owl::ImageFeatures image = model.encode_image(fixture_input(inputs, "pixel_values", dir));
  const std::int64_t batch = image.patches.size(0);
  const at::Tensor queries = model.embed_texts(ids, mask).view({batch, -1, model.config().projection_dim});
  const models::owl::Detections outputs = model.detect(image, queries, models::owl::query_mask(ids, batch));
  NamedTensors out = {{"logits", outputs.logits[0]},
                      {"pred_boxes", outputs.pred_boxes[0]},
                      {"class_embeds", outputs.class_embeds[0]},
                      {"text_embeds", queries},
                      {"image_embeds", image.feature_map()[0]}};
  if (outputs.objectness_logits.defined()) out["objectness_logits"] = outputs.objectness_logits[0];
  return out;
}

// model_type -> runner. One line per family.
const std::map<std::string, FixtureRunner>& runners() {
  static const std::map<std::string, FixtureRunner> table = {
      {"clip", run_clip},          {"siglip", run_siglip},        {"qwen2", run_text_family},
      {"llama", run_text_family},  {"mistral", run_text_family},
      {"qwen2_vl", run_qwen_vl},   {"qwen2_5_vl", run_qwen_vl},
      {"llava", run_llava},        {"llava_next", run_llava},     {"llava_onevision", run_llava},
      {"internvl_chat", run_internvl},
      {"owlv2", run_owl},          {"owlvit", run_owl},
  };
  return table;
}

}  // namespace

FixtureRunner find_fixture_runner(const std::string& model_type) {
  auto it = runners().find(model_type);
  return it == runners().end() ? nullptr : it->second;
}

std::vector<std::string> fixture_runner_types() {
  std::vector<std::string> out;
  for (const auto& [type, runner] : runners()) out.push_back(type);
  return out;
}

NamedTensors read_fixture_inputs(const std::string& fixture_dir) {
  return runtime::read_safetensors(util::join_path(fixture_dir, "inputs.safetensors"));
}

const at::Tensor& fixture_input(const NamedTensors& inputs, const std::string& name, const std::string& fixture_dir) {
  auto it = inputs.find(name);
  if (it == inputs.end()) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}/inputs.safetensors: no tensor '{}'", fixture_dir, name));
  }
  return it->second;
}

double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) return std::numeric_limits<double>::infinity();
  if (actual.numel() == 0) return 0;
  const at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  const at::Tensor b = expected.detach().to(at::kCPU, at::kDouble);
  const double diff = (a - b).abs().max().item<double>();
  return std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff;
}

}  // namespace imgjudge::devtools
