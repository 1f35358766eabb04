#include "models/clip.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::models::clip {

namespace nn = runtime::nn;

Config parse_config(const runtime::HfConfig& root) {
  Config config;
  const auto text = root.section("text_config");
  config.text.encoder = read_encoder_config(text, config.text.encoder);
  config.text.vocab_size = text.get_int("vocab_size", config.text.vocab_size);
  config.text.max_position_embeddings = text.get_int("max_position_embeddings", config.text.max_position_embeddings);
  config.text.eos_token_id = text.get_int("eos_token_id", config.text.eos_token_id);
  const auto vision = root.section("vision_config");
  config.vision.encoder = read_encoder_config(vision, config.vision.encoder);
  config.vision.num_channels = vision.get_int("num_channels", config.vision.num_channels);
  config.vision.image_size = vision.get_int("image_size", config.vision.image_size);
  config.vision.patch_size = vision.get_int("patch_size", config.vision.patch_size);
  config.projection_dim = root.get_int("projection_dim", config.projection_dim);
  if (config.vision.patch_size <= 0 || config.vision.image_size < config.vision.patch_size) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: vision_config image_size {} / patch_size {} are invalid",
                                                     root.file(), config.vision.image_size, config.vision.patch_size));
  }
  return config;
}

Config load_config(const std::string& model_dir) {
  return parse_config(runtime::HfConfig::load(util::join_path(model_dir, "config.json")));
}

namespace {
std::int64_t num_patches(const Config::Vision& v) {
  const std::int64_t side = v.image_size / v.patch_size;
  return side * side;
}
}  // namespace

ClipModel::ClipModel(const Config& config, const runtime::WeightStore& weights)
    : config_(config),
      dtype_(weights.dtype()),
      device_(weights.device()),
      token_embedding_(weights.get("text_model.embeddings.token_embedding.weight",
                                   {config.text.vocab_size, config.text.encoder.hidden_size})),
      text_position_embedding_(weights.get("text_model.embeddings.position_embedding.weight",
                                           {config.text.max_position_embeddings, config.text.encoder.hidden_size})),
      text_encoder_(config.text.encoder, weights.scope("text_model.encoder")),
      final_layer_norm_(weights.scope("text_model.final_layer_norm"), config.text.encoder.hidden_size,
                        config.text.encoder.layer_norm_eps),
      class_embedding_(weights.get("vision_model.embeddings.class_embedding", {config.vision.encoder.hidden_size})),
      patch_embedding_(weights.get("vision_model.embeddings.patch_embedding.weight",
                                   {config.vision.encoder.hidden_size, config.vision.num_channels,
                                    config.vision.patch_size, config.vision.patch_size})),
      vision_position_embedding_(weights.get("vision_model.embeddings.position_embedding.weight",
                                             {num_patches(config.vision) + 1, config.vision.encoder.hidden_size})),
      // "pre_layrnorm" is HF's spelling.
      pre_layernorm_(weights.scope("vision_model.pre_layrnorm"), config.vision.encoder.hidden_size,
                     config.vision.encoder.layer_norm_eps),
      post_layernorm_(weights.scope("vision_model.post_layernorm"), config.vision.encoder.hidden_size,
                      config.vision.encoder.layer_norm_eps),
      vision_encoder_(config.vision.encoder, weights.scope("vision_model.encoder")),
      text_projection_(weights.get("text_projection.weight", {config.projection_dim, config.text.encoder.hidden_size})),
      visual_projection_(
          weights.get("visual_projection.weight", {config.projection_dim, config.vision.encoder.hidden_size})),
      logit_scale_(weights.get("logit_scale", {})) {}

TowerOutput ClipModel::encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   bool keep_hidden_states) const {
  if (input_ids.dim() != 2 || input_ids.size(1) < 1 || input_ids.size(1) > config_.text.max_position_embeddings) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("clip text: input_ids must be [batch, 1..{}], got {}", config_.text.max_position_embeddings,
                            runtime::shape_string(input_ids.sizes())));
  }
  const at::Tensor ids = input_ids.to(device_, at::kLong);
  if (ids.min().item<std::int64_t>() < 0 || ids.max().item<std::int64_t>() >= config_.text.vocab_size) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("clip text: token id outside [0, {})", config_.text.vocab_size));
  }
  const std::int64_t length = ids.size(1);
  // [B, L, D] = token embedding + learned absolute position embedding
  at::Tensor x = at::embedding(token_embedding_, ids) + text_position_embedding_.slice(0, 0, length);

  // Causal mask plus padding mask, summed as HF does.
  at::Tensor mask = nn::causal_mask(length, dtype_, device_);
  if (attention_mask.defined()) mask = mask + nn::padding_mask(attention_mask.to(device_), dtype_);

  TowerOutput out;
  x = text_encoder_.forward(x, mask, keep_hidden_states ? &out.hidden_states : nullptr);
  out.last_hidden_state = final_layer_norm_(x);

  // Pool at the end-of-text token. Original openai configs say eos_token_id=2
  // (wrong) and rely on EOT being the largest id; newer ones give the real id
  // and HF takes its first occurrence (argmax of a 0/1 vector).
  const at::Tensor eos_position = config_.text.eos_token_id == 2
                                      ? ids.to(at::kInt).argmax(-1)
                                      : (ids == config_.text.eos_token_id).to(at::kInt).argmax(-1);
  const at::Tensor rows = at::arange(ids.size(0), ids.options());
  out.pooled = out.last_hidden_state.index({rows, eos_position});
  out.features = nn::linear(out.pooled, text_projection_);
  return out;
}

TowerOutput ClipModel::encode_image(const at::Tensor& pixel_values, bool keep_hidden_states) const {
  const auto& v = config_.vision;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != v.num_channels || pixel_values.size(2) != v.image_size ||
      pixel_values.size(3) != v.image_size) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("clip vision: pixel_values must be [batch, {}, {}, {}], got {}", v.num_channels,
                            v.image_size, v.image_size, runtime::shape_string(pixel_values.sizes())));
  }
  const at::Tensor pixels = pixel_values.to(device_, dtype_);
  const std::int64_t batch = pixels.size(0);
  // Conv with stride = kernel = patch: [B, D, g, g] -> [B, g*g, D]
  const at::Tensor patches =
      at::conv2d(pixels, patch_embedding_, {}, {v.patch_size, v.patch_size}).flatten(2).transpose(1, 2);
  const at::Tensor cls = class_embedding_.view({1, 1, -1}).expand({batch, 1, v.encoder.hidden_size});
  at::Tensor x = at::cat({cls, patches}, 1) + vision_position_embedding_.unsqueeze(0);

  TowerOutput out;
  x = pre_layernorm_(x);
  out.last_hidden_state = vision_encoder_.forward(x, {}, keep_hidden_states ? &out.hidden_states : nullptr);
  out.pooled = post_layernorm_(out.last_hidden_state.select(1, 0));  // CLS token
  out.features = nn::linear(out.pooled, visual_projection_);
  return out;
}

at::Tensor ClipModel::logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const {
  return at::matmul(text_embeds, image_embeds.t()).mul(logit_scale_.exp()).t();
}

std::vector<runtime::ParamSpec> parameter_specs(const Config& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  ClipModel model(config, recorder);
  return recorder.recorded();
}

}  // namespace imgjudge::models::clip
