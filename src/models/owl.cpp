#include "models/owl.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/processors/owl_processor.hpp"
#include "runtime/config.hpp"
#include "runtime/device.hpp"
#include "runtime/nn.hpp"
#include "runtime/safetensors.hpp"
#include "runtime/tensor.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models::owl {

namespace nn = runtime::nn;

namespace {

// torch.finfo(float32).min: HF's value for a masked query's logits.
constexpr float kLowest = std::numeric_limits<float>::lowest();

// torch.linalg.norm(x, dim=-1, keepdim=True): [..., 1]
at::Tensor l2_norm(const at::Tensor& x) { return at::linalg_vector_norm(x, 2, at::IntArrayRef{-1}, /*keepdim=*/true); }

// torch.argmax semantics made explicit: the FIRST position of each row's
// largest id (the eos id is the vocabulary's largest). ids [N, S] int64 CPU.
at::Tensor first_argmax(const at::Tensor& ids) {
  const at::Tensor cpu = ids.to(at::kCPU, at::kLong).contiguous();
  const auto rows = cpu.accessor<std::int64_t, 2>();
  at::Tensor out = at::empty({cpu.size(0)}, at::kLong);
  auto position = out.accessor<std::int64_t, 1>();
  for (std::int64_t r = 0; r < cpu.size(0); ++r) {
    std::int64_t best = 0;
    for (std::int64_t s = 1; s < cpu.size(1); ++s) {
      if (rows[r][s] > rows[r][best]) best = s;
    }
    position[r] = best;
  }
  return out;
}

}  // namespace

// ---- config ------------------------------------------------------------------

Config parse_config(const runtime::HfConfig& root) {
  Config config;
  config.model_type = root.get_string("model_type");
  if (config.model_type != "owlv2" && config.model_type != "owlvit") {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: model_type \"{}\" is not an OWL detector (owlv2, owlvit)", root.file(),
                            config.model_type));
  }
  if (config.model_type == "owlvit") config.vision.patch_size = 32;  // OwlViTVisionConfig's default
  const auto text = root.section("text_config");
  config.text.encoder = read_encoder_config(text, config.text.encoder);
  config.text.vocab_size = text.get_int("vocab_size", config.text.vocab_size);
  config.text.max_position_embeddings = text.get_int("max_position_embeddings", config.text.max_position_embeddings);
  config.vision = VitConfig::read(root.section("vision_config"), config.vision);
  config.projection_dim = root.get_int("projection_dim", config.projection_dim);
  if (config.text.vocab_size <= 0 || config.text.max_position_embeddings <= 0 || config.projection_dim <= 0) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: vocab_size, max_position_embeddings and projection_dim "
                                                     "must be positive",
                                                     root.file()));
  }
  // The class head's dense0 maps to the text width and is dotted with
  // projected queries: the two widths must agree (they do in every checkpoint).
  if (config.text.encoder.hidden_size != config.projection_dim) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: text_config.hidden_size {} must equal projection_dim {} (the class head compares "
                            "patch embeddings of the text width with projected queries)",
                            root.file(), config.text.encoder.hidden_size, config.projection_dim));
  }
  return config;
}

Config load_config(const std::string& model_dir) {
  return parse_config(runtime::HfConfig::load(util::join_path(model_dir, "config.json")));
}

at::Tensor ImageFeatures::feature_map() const {
  return patches.reshape({patches.size(0), grid_h, grid_w, patches.size(2)});
}

// ---- model -------------------------------------------------------------------

OwlDetector::MlpHead::MlpHead(const runtime::WeightStore& scope, std::int64_t hidden, std::int64_t out)
    : w0(scope.get("dense0.weight", {hidden, hidden})),
      b0(scope.get("dense0.bias", {hidden})),
      w1(scope.get("dense1.weight", {hidden, hidden})),
      b1(scope.get("dense1.bias", {hidden})),
      w2(scope.get("dense2.weight", {out, hidden})),
      b2(scope.get("dense2.bias", {out})) {}

at::Tensor OwlDetector::MlpHead::operator()(const at::Tensor& x) const {
  // nn.GELU(): the exact erf form.
  const at::Tensor h = at::gelu(nn::linear(at::gelu(nn::linear(x, w0, b0)), w1, b1));
  return nn::linear(h, w2, b2);
}

OwlDetector::OwlDetector(const Config& config, const runtime::WeightStore& weights)
    : config_(config),
      dtype_(weights.dtype()),
      device_(weights.device()),
      // OWL spells the tower's pre-norm "pre_layernorm" (CLIP: "pre_layrnorm").
      vision_(config.vision, weights.scope(config.model_type + ".vision_model"), "pre_layernorm"),
      token_embedding_(weights.get(config.model_type + ".text_model.embeddings.token_embedding.weight",
                                   {config.text.vocab_size, config.text.encoder.hidden_size})),
      text_position_embedding_(weights.get(config.model_type + ".text_model.embeddings.position_embedding.weight",
                                           {config.text.max_position_embeddings, config.text.encoder.hidden_size})),
      text_encoder_(config.text.encoder, weights.scope(config.model_type + ".text_model.encoder")),
      final_layer_norm_(weights.scope(config.model_type + ".text_model.final_layer_norm"),
                        config.text.encoder.hidden_size, config.text.encoder.layer_norm_eps),
      text_projection_(weights.get(config.model_type + ".text_projection.weight",
                                   {config.projection_dim, config.text.encoder.hidden_size})),
      image_layer_norm_(weights.scope("layer_norm"), config.vision.encoder.hidden_size,
                        config.vision.encoder.layer_norm_eps),
      class_dense0_w_(weights.get("class_head.dense0.weight",
                                  {config.text.encoder.hidden_size, config.vision.encoder.hidden_size})),
      class_dense0_b_(weights.get("class_head.dense0.bias", {config.text.encoder.hidden_size})),
      logit_shift_w_(weights.get("class_head.logit_shift.weight", {1, config.vision.encoder.hidden_size})),
      logit_shift_b_(weights.get("class_head.logit_shift.bias", {1})),
      logit_scale_w_(weights.get("class_head.logit_scale.weight", {1, config.vision.encoder.hidden_size})),
      logit_scale_b_(weights.get("class_head.logit_scale.bias", {1})),
      box_head_(weights.scope("box_head"), config.vision.encoder.hidden_size, 4) {
  if (config.has_objectness()) objectness_head_.emplace(weights.scope("objectness_head"), config.vision.encoder.hidden_size, 1);
  // Every checkpoint also holds the dual encoder's image projection and
  // logit scale, which detection never reads: bound (and dropped) so that a
  // folder lacking them is refused and random folders are complete.
  weights.get(config.model_type + ".visual_projection.weight",
              {config.projection_dim, config.vision.encoder.hidden_size});
  weights.get(config.model_type + ".logit_scale", {});
}

ImageFeatures OwlDetector::encode_image(const at::Tensor& pixel_values, const CallContext* call) const {
  const VitConfig& v = config_.vision;
  if (pixel_values.dim() != 4 || pixel_values.size(0) < 1 || pixel_values.size(1) != v.num_channels ||
      pixel_values.size(2) != v.image_size || pixel_values.size(3) != v.image_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} vision: pixel_values must be [batch, {}, {}, {}] (the position embeddings fix the "
                            "image size), got {}",
                            config_.model_type, v.num_channels, v.image_size, v.image_size,
                            runtime::shape_string(pixel_values.sizes())));
  }
  const std::int64_t grid = v.grid(), patches = grid * grid;
  // post_layernorm on every token [B, 1 + P, Dv]; each patch times the class token, then layer_norm.
  const at::Tensor hidden = vision_.post_layernorm(vision_.last_hidden_state(pixel_values, call));
  const at::Tensor merged = hidden.narrow(1, 1, patches) * hidden.narrow(1, 0, 1);
  return {image_layer_norm_(merged), grid, grid};
}

at::Tensor OwlDetector::embed_texts(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                    const CallContext* call) const {
  const std::int64_t max_length = config_.text.max_position_embeddings;
  if (input_ids.dim() != 2 || input_ids.size(0) < 1 || input_ids.size(1) < 1 || input_ids.size(1) > max_length) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} text: input_ids must be [queries, 1..{}], got {}",
                                                        config_.model_type, max_length,
                                                        runtime::shape_string(input_ids.sizes())));
  }
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes()) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} text: attention_mask {} does not match input_ids {}", config_.model_type,
                            runtime::shape_string(attention_mask.sizes()), runtime::shape_string(input_ids.sizes())));
  }
  const at::Tensor ids = input_ids.to(at::kCPU, at::kLong);
  if (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= config_.text.vocab_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} text: a token id is outside [0, {})", config_.model_type, config_.text.vocab_size));
  }
  const std::int64_t rows = ids.size(0), length = ids.size(1);
  const at::Tensor device_ids = ids.to(device_);
  // [N, S, Dt] = token embedding + learned absolute position embedding
  at::Tensor x = at::embedding(token_embedding_, device_ids) + text_position_embedding_.slice(0, 0, length);
  // HF adds the causal mask, then the padding mask, to the scores; summing the
  // two first gives the same float32 scores (a key hidden twice is -inf
  // either way), so a row of padding only still attends uniformly, never NaN.
  at::Tensor mask = nn::causal_mask(length, dtype_, device_);
  if (attention_mask.defined()) mask = mask + nn::padding_mask(attention_mask.to(device_), dtype_);
  x = final_layer_norm_(text_encoder_.forward(x, mask, nullptr, -1, call));
  // Pooled at argmax(input_ids) (eos_token_id is not consulted): [N, Dt].
  const at::Tensor pooled = x.index({at::arange(rows, device_ids.options()), first_argmax(ids).to(device_)});
  const at::Tensor projected = nn::linear(pooled, text_projection_);  // [N, Dp]
  return projected / l2_norm(projected);
}

PatchClassifier OwlDetector::classify_patches(const ImageFeatures& image) const {
  PatchClassifier out;
  const at::Tensor embeds = nn::linear(image.patches, class_dense0_w_, class_dense0_b_).to(at::kFloat);  // [B, P, Dt]
  out.class_embeds = embeds / (l2_norm(embeds) + 1e-6);
  out.logit_shift = nn::linear(image.patches, logit_shift_w_, logit_shift_b_).to(at::kFloat);  // [B, P, 1]
  out.logit_scale = at::elu(nn::linear(image.patches, logit_scale_w_, logit_scale_b_).to(at::kFloat)) + 1;
  return out;
}

at::Tensor class_logits(const PatchClassifier& patches, const at::Tensor& queries, const at::Tensor& query_mask) {
  const at::Tensor q = queries.to(patches.class_embeds.device(), at::kFloat);
  const at::Tensor unit = q / (l2_norm(q) + 1e-6);  // [B, Q, Dp]
  // einsum("bpd,bqd->bpq"): [B, P, Q]
  at::Tensor logits = at::matmul(patches.class_embeds, unit.transpose(-1, -2));
  logits = (logits + patches.logit_shift) * patches.logit_scale;
  if (query_mask.defined()) {
    const at::Tensor keep = query_mask.to(logits.device(), at::kBool).unsqueeze(-2);  // [B, 1, Q]
    logits = at::where(keep, logits, at::full({}, kLowest, logits.options()));
  }
  return logits;
}

at::Tensor box_bias(std::int64_t grid_h, std::int64_t grid_w) {
  // HF compute_box_bias, float32 torch ops in the same order: the bottom-right
  // corner of patch (row i, column j) is ((j + 1) / grid_w, (i + 1) / grid_h).
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor x = at::arange(1, grid_w + 1, f32) / static_cast<double>(grid_w);
  const at::Tensor y = at::arange(1, grid_h + 1, f32) / static_cast<double>(grid_h);
  const at::Tensor corners =
      at::stack({x.repeat({grid_h}), y.repeat_interleave(grid_w)}, -1).clamp(0.0, 1.0);  // [P, 2], row-major
  const auto inverse_sigmoid = [](const at::Tensor& t) { return at::log(t + 1e-4) - at::log1p(-t + 1e-4); };
  at::Tensor size = at::ones({grid_h * grid_w, 2}, f32);
  size.select(1, 0).div_(static_cast<double>(grid_w));
  size.select(1, 1).div_(static_cast<double>(grid_h));
  return at::cat({inverse_sigmoid(corners), inverse_sigmoid(size)}, -1);  // [P, 4]
}

at::Tensor OwlDetector::pred_boxes(const ImageFeatures& image) const {
  const at::Tensor offsets = box_head_(image.patches).to(at::kFloat);  // [B, P, 4]
  return at::sigmoid(offsets + box_bias(image.grid_h, image.grid_w).to(offsets.device()));
}

at::Tensor OwlDetector::objectness_logits(const ImageFeatures& image) const {
  if (!objectness_head_) {
    throw Error(ErrorCode::Internal, fmt::format("{} has no objectness head", config_.model_type));
  }
  return (*objectness_head_)(image.patches).to(at::kFloat).select(-1, 0);  // [B, P]
}

Detections OwlDetector::detect(const ImageFeatures& image, const at::Tensor& query_embeds,
                               const at::Tensor& query_mask) const {
  if (query_embeds.dim() != 3 || query_embeds.size(0) != image.patches.size(0) ||
      query_embeds.size(2) != config_.projection_dim) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: query_embeds must be [{}, queries, {}], got {}", config_.model_type,
                            image.patches.size(0), config_.projection_dim,
                            runtime::shape_string(query_embeds.sizes())));
  }
  Detections out;
  const PatchClassifier patches = classify_patches(image);
  out.logits = class_logits(patches, query_embeds, query_mask);
  out.class_embeds = patches.class_embeds;
  out.pred_boxes = pred_boxes(image);
  if (objectness_head_) out.objectness_logits = objectness_logits(image);
  return out;
}

at::Tensor query_mask(const at::Tensor& input_ids, std::int64_t batch) {
  const at::Tensor ids = input_ids.reshape({batch, -1, input_ids.size(-1)});
  return ids.select(-1, 0) > 0;
}

at::Tensor center_to_corners(const at::Tensor& boxes) {
  const at::Tensor cx = boxes.select(-1, 0), cy = boxes.select(-1, 1);
  const at::Tensor w = boxes.select(-1, 2), h = boxes.select(-1, 3);
  return at::stack({cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h}, -1);
}

std::vector<PostProcessed> post_process_object_detection(const Config& config, const Detections& outputs,
                                                         double threshold,
                                                         const std::vector<std::array<std::int64_t, 2>>& target_sizes) {
  const at::Tensor logits = outputs.logits.to(at::kCPU, at::kFloat);  // [B, P, Q]
  if (logits.dim() != 3 || logits.size(2) < 1) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("post_process_object_detection: logits must be [batch, "
                                                        "patches, queries >= 1], got {}",
                                                        runtime::shape_string(logits.sizes())));
  }
  const std::int64_t batch = logits.size(0);
  if (!target_sizes.empty() && static_cast<std::int64_t>(target_sizes.size()) != batch) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("post_process_object_detection: {} target sizes for {} images",
                                                        target_sizes.size(), batch));
  }
  // max over queries, ties to the first query (what torch.max returns on CPU),
  // made explicit rather than left to a kernel's tie-breaking.
  const at::Tensor flat = logits.reshape({-1, logits.size(-1)}).contiguous();  // [B * P, Q]
  const auto rows = flat.accessor<float, 2>();
  at::Tensor best = at::empty({flat.size(0)}, at::kFloat), labels = at::empty({flat.size(0)}, at::kLong);
  auto best_at = best.accessor<float, 1>();
  auto label_at = labels.accessor<std::int64_t, 1>();
  for (std::int64_t r = 0; r < flat.size(0); ++r) {
    std::int64_t label = 0;
    for (std::int64_t q = 1; q < flat.size(1); ++q) {
      if (rows[r][q] > rows[r][label]) label = q;
    }
    best_at[r] = rows[r][label];
    label_at[r] = label;
  }
  const at::Tensor scores = at::sigmoid(best).view({batch, -1});  // [B, P]
  labels = labels.view({batch, -1});
  at::Tensor boxes = center_to_corners(outputs.pred_boxes.to(at::kCPU, at::kFloat));  // [B, P, 4]
  std::vector<PostProcessed> results;
  for (std::int64_t b = 0; b < batch; ++b) {
    at::Tensor image_boxes = boxes[b];
    if (!target_sizes.empty()) {
      const auto [height, width] = target_sizes[static_cast<std::size_t>(b)];
      // OWLv2 pads to a square before resizing, so its boxes scale by the side.
      const std::int64_t side = std::max(height, width);
      const std::vector<float> scale = config.model_type == "owlv2"
                                           ? std::vector<float>(4, static_cast<float>(side))
                                           : std::vector<float>{static_cast<float>(width), static_cast<float>(height),
                                                                static_cast<float>(width), static_cast<float>(height)};
      image_boxes = image_boxes * at::tensor(scale, at::kFloat);
    }
    const at::Tensor keep = scores[b] > threshold;
    results.push_back({scores[b].index({keep}), labels[b].index({keep}), image_boxes.index({keep})});
  }
  return results;
}

// ---- family table entries ------------------------------------------------------

std::vector<runtime::ParamSpec> parameter_specs(const runtime::HfConfig& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  const OwlDetector model(parse_config(config), recorder);
  return recorder.recorded();
}

nlohmann::json processor_config(const runtime::HfConfig& config) {
  const Config c = parse_config(config);
  const std::int64_t size = c.vision.image_size;
  const nlohmann::json mean = {0.48145466, 0.4578275, 0.40821073}, std = {0.26862954, 0.26130258, 0.27577711};
  if (c.model_type == "owlv2") {
    // google/owlv2-base-patch16-ensemble (resample is stored, the resize ignores it).
    return {{"image_processor_type", "Owlv2ImageProcessor"}, {"do_resize", true},
            {"size", {{"height", size}, {"width", size}}}, {"resample", 3}, {"do_pad", true},
            {"do_rescale", true}, {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true},
            {"image_mean", mean}, {"image_std", std}};
  }
  // google/owlvit-base-patch32, spelled as the current processor class saves it.
  return {{"image_processor_type", "OwlViTImageProcessor"}, {"do_resize", true},
          {"size", {{"height", size}, {"width", size}}}, {"resample", 3}, {"do_center_crop", false},
          {"crop_size", {{"height", size}, {"width", size}}}, {"do_rescale", true},
          {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true}, {"image_mean", mean}, {"image_std", std}};
}

// ---- the Locator ---------------------------------------------------------------

namespace {

// Phrases as embedded by one OwlLocator.
class OwlQueries final : public LocatorQueries {
 public:
  OwlQueries(const void* owner, at::Tensor embeds) : owner(owner), embeds(std::move(embeds)) {}
  std::size_t size() const override { return embeds.defined() ? static_cast<std::size_t>(embeds.size(0)) : 0; }
  const void* owner;
  at::Tensor embeds;  ///< [N, Dp] unit query embeddings (undefined when N = 0)
};

// An image as encoded by one OwlLocator: everything locate() needs that does
// not depend on the phrases.
class OwlImage final : public LocatorImage {
 public:
  const void* owner = nullptr;
  PatchClassifier patches;  ///< [1, P, ...]
  at::Tensor boxes;         ///< [P, 4] float32 CPU: (x0, y0, x1, y1) in the original image, clipped
};

class OwlLocator final : public Locator {
 public:
  OwlLocator(std::string id, OwlDetector model, tokenizer::Tokenizer tokenizer, OwlImageProcessorConfig processor)
      : id_(std::move(id)), model_(std::move(model)), tokenizer_(std::move(tokenizer)), processor_(processor) {}

  std::string model_id() const override { return id_; }

  std::shared_ptr<const LocatorQueries> embed_queries(const std::vector<std::string>& phrases,
                                                      const CallContext& call) const override {
    call.check();
    if (phrases.empty()) return std::make_shared<OwlQueries>(this, at::Tensor());
    c10::InferenceMode inference;  // per call: the weights are shared, no autograd state
    // As the OWL processors tokenize: padding="max_length" (16); longer
    // phrases are cut (keeping bos ... eos) where HF would fail on the
    // position embeddings.
    tokenizer::BatchOptions options;
    options.padding = tokenizer::Padding::MaxLength;
    options.max_length = static_cast<std::size_t>(model_.config().text.max_position_embeddings);
    options.truncation = true;
    const tokenizer::BatchEncoding batch = tokenizer_.encode_batch(phrases, options);
    const at::Tensor embeds = model_.embed_texts(to_matrix(batch.input_ids), to_matrix(batch.attention_mask), &call);
    call.check();
    return std::make_shared<OwlQueries>(this, embeds);
  }

  std::shared_ptr<const LocatorImage> prepare(const Image& image, const CallContext& call) const override {
    call.check();
    c10::InferenceMode inference;
    image::FloatImage pixels = owl_preprocess(image, processor_);
    const at::Tensor pixel_values =
        at::from_blob(pixels.chw.data(), {1, pixels.channels, pixels.height, pixels.width}, at::kFloat);
    const ImageFeatures features = model_.encode_image(pixel_values, &call);
    auto encoded = std::make_shared<OwlImage>();
    encoded->owner = this;
    encoded->patches = model_.classify_patches(features);
    // Corners in the original image's pixels, as HF's post-processing scales
    // them (OWLv2: by the padded square's side). Then clipped to the image:
    // strategy 2 erases the box's pixels, and the part of a box beyond the
    // image (OWLv2's padding) holds none.
    const OwlBoxFrame frame = owl_box_frame(image.height, image.width, processor_);
    const at::Tensor corners = center_to_corners(model_.pred_boxes(features)[0].to(at::kCPU));  // [P, 4]
    const at::Tensor scale = at::tensor({frame.scale_x, frame.scale_y, frame.scale_x, frame.scale_y}, at::kFloat);
    const at::Tensor offset = at::tensor({frame.offset_x, frame.offset_y, frame.offset_x, frame.offset_y}, at::kFloat);
    const at::Tensor limit = at::tensor({float(image.width), float(image.height), float(image.width),
                                         float(image.height)}, at::kFloat);
    encoded->boxes = at::minimum(at::maximum(corners * scale + offset, at::zeros({4}, at::kFloat)), limit).contiguous();
    call.check();
    return encoded;
  }

  std::vector<std::vector<Detection>> locate(const LocatorImage& image, const LocatorQueries& queries,
                                             const std::vector<std::size_t>& which, double min_confidence,
                                             const CallContext& call) const override {
    const auto* encoded = dynamic_cast<const OwlImage*>(&image);
    const auto* embedded = dynamic_cast<const OwlQueries*>(&queries);
    if (encoded == nullptr || embedded == nullptr || encoded->owner != this || embedded->owner != this) {
      throw Error(ErrorCode::InvalidArgument, fmt::format("{}: image or queries prepared by another locator", id_));
    }
    for (std::size_t index : which) {
      if (index >= embedded->size()) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("{}: query {} of {} does not exist", id_, index,
                                                            embedded->size()));
      }
    }
    c10::InferenceMode inference;
    const auto boxes = encoded->boxes.accessor<float, 2>();
    std::vector<std::vector<Detection>> found;
    found.reserve(which.size());
    for (std::size_t index : which) {
      call.check();
      // Each phrase on its own: its logit per patch and sigmoid as the
      // confidence (not HF's label = the best of the phrases asked), in a
      // product of its own, so no other phrase can change a bit of it.
      const at::Tensor query = embedded->embeds.narrow(0, static_cast<std::int64_t>(index), 1).unsqueeze(0);
      const at::Tensor confidence =
          at::sigmoid(class_logits(encoded->patches, query, at::Tensor())).reshape({-1}).to(at::kCPU).contiguous();
      const float* values = confidence.data_ptr<float>();
      std::vector<std::int64_t> kept;
      for (std::int64_t p = 0; p < confidence.numel(); ++p) {
        if (static_cast<double>(values[p]) > min_confidence) kept.push_back(p);
      }
      // Most confident first; equal confidences in patch order.
      std::stable_sort(kept.begin(), kept.end(), [&](std::int64_t a, std::int64_t b) { return values[a] > values[b]; });
      std::vector<Detection> detections;
      detections.reserve(kept.size());
      for (std::int64_t p : kept) {
        detections.push_back({Box{boxes[p][0], boxes[p][1], boxes[p][2], boxes[p][3]}, values[p]});
      }
      found.push_back(std::move(detections));
    }
    return found;
  }

 private:
  static at::Tensor to_matrix(const std::vector<std::vector<std::int32_t>>& rows) {
    const auto width = static_cast<std::int64_t>(rows.front().size());
    at::Tensor out = at::empty({static_cast<std::int64_t>(rows.size()), width}, at::kLong);
    auto access = out.accessor<std::int64_t, 2>();
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (static_cast<std::int64_t>(rows[r].size()) != width) {
        throw Error(ErrorCode::Internal, "tokenizer returned a ragged padded batch");
      }
      for (std::int64_t c = 0; c < width; ++c) {
        access[static_cast<std::int64_t>(r)][c] = rows[r][static_cast<std::size_t>(c)];
      }
    }
    return out;
  }

  std::string id_;
  OwlDetector model_;
  tokenizer::Tokenizer tokenizer_;
  OwlImageProcessorConfig processor_;
};

}  // namespace

std::shared_ptr<const Locator> load_locator(const std::string& dir, const LoadOptions& options) {
  const Config config = load_config(dir);
  const std::string processor_path = util::join_path(dir, "preprocessor_config.json");
  const OwlImageProcessorConfig processor = OwlImageProcessorConfig::from_file(processor_path);
  // The position embeddings fix the input size: a processor making another is a broken folder.
  const bool crops = processor.kind == OwlImageProcessorConfig::Kind::OwlVit && processor.do_center_crop;
  const int out_height = crops ? processor.crop_height : processor.height;
  const int out_width = crops ? processor.crop_width : processor.width;
  if ((processor.do_resize || crops) && (out_height != config.vision.image_size || out_width != config.vision.image_size)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the processor makes {}x{} images, the model takes {}x{} (vision_config.image_size)",
                            processor_path, out_width, out_height, config.vision.image_size, config.vision.image_size));
  }
  // Dense weights in the compute dtype: the detector runs once per image.
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                                     options.target.device);
  OwlDetector model(config, weights);
  return std::make_shared<OwlLocator>(fmt::format("{}:{} ({})", config.model_type, dir,
                                                  runtime::dtype_label(options.target.dtype)),
                                      std::move(model), tokenizer::Tokenizer::load(dir), processor);
}

}  // namespace imgjudge::models::owl
