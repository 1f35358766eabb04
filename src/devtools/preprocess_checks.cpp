#include "devtools/preprocess_checks.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>

#include <fmt/format.h>

#include "image/preprocess.hpp"
#include "imgjudge/error.hpp"
#include "models/internvl.hpp"
#include "models/owl.hpp"
#include "models/processors/llava_processor.hpp"
#include "models/processors/owl_processor.hpp"
#include "models/processors/qwen_vl_processor.hpp"
#include "runtime/config.hpp"
#include "runtime/safetensors.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

Image to_image(const at::Tensor& pixels, const std::string& where) {
  if (pixels.dim() != 3 || pixels.size(2) != 3 || pixels.scalar_type() != at::kByte) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: an input image must be uint8 [H, W, 3]", where));
  }
  const at::Tensor contiguous = pixels.contiguous();
  return Image::from_rgb(contiguous.data_ptr<std::uint8_t>(), static_cast<int>(pixels.size(1)),
                         static_cast<int>(pixels.size(0)), static_cast<std::size_t>(pixels.size(1)) * 3);
}

// CLIPImageProcessor / SiglipImageProcessor: [k, 3, h, w].
NamedTensors check_fixed_size(const std::string& processor_config, const std::vector<Image>& images) {
  const auto config = image::ImageProcessorConfig::from_file(processor_config);
  std::vector<at::Tensor> batch;
  for (const Image& image : images) {
    image::FloatImage processed = image::preprocess(image, config);
    batch.push_back(at::from_blob(processed.chw.data(), {processed.channels, processed.height, processed.width},
                                  at::kFloat)
                        .clone());
  }
  return {{"pixel_values", at::stack(batch)}};
}

// Qwen2VLImageProcessor: every image's patches in one [N, patch_dim], and [k, 3] grids.
NamedTensors check_qwen_vl(const std::string& processor_config, const std::vector<Image>& images) {
  const auto config = models::QwenImageProcessorConfig::from_file(processor_config);
  std::vector<at::Tensor> patches;
  std::vector<std::int64_t> grids;
  for (const Image& image : images) {
    const models::ProcessedImage processed = models::qwen_preprocess_image(image, config);
    patches.push_back(processed.pixel_values);
    grids.insert(grids.end(), {processed.grid.t, processed.grid.h, processed.grid.w});
  }
  return {{"pixel_values", at::cat(patches)},
          {"image_grid_thw", at::tensor(grids, at::kLong).view({static_cast<std::int64_t>(images.size()), 3})}};
}

// LlavaNext/OnevisionImageProcessor: [k, max tiles, 3, S, S] (missing tiles
// zero after normalization), and each image's [height, width].
NamedTensors check_llava_anyres(const std::string& processor_config, const std::vector<Image>& images) {
  const auto config = models::LlavaImageProcessorConfig::from_file(processor_config);
  std::vector<at::Tensor> tiles;
  std::vector<std::int64_t> sizes;
  std::int64_t most = 0;
  for (const Image& image : images) {
    const models::LlavaProcessedImage processed = models::llava_preprocess(image, config);
    tiles.push_back(processed.pixel_values);
    sizes.insert(sizes.end(), {processed.height, processed.width});
    most = std::max(most, processed.pixel_values.size(0));
  }
  for (at::Tensor& t : tiles) {
    if (t.size(0) < most) t = at::cat({t, at::zeros({most - t.size(0), t.size(1), t.size(2), t.size(3)})});
  }
  return {{"pixel_values", at::stack(tiles)},
          {"image_sizes", at::tensor(sizes, at::kLong).view({static_cast<std::int64_t>(images.size()), 2})}};
}

// Owlv2ImageProcessor / OwlViTImageProcessor: pixel_values [k, 3, S, S]. The
// detectors' fixtures also record HF's post_process_object_detection
// (threshold 0, target size = the image's own) of the model's outputs for
// those pixels and the fixture's queries: when the processor config lies in
// such a folder (config.json, inputs.safetensors) and there is one image, the
// model runs on our pixels and its scores [P], labels [P] and boxes [P, 4]
// are produced too.
NamedTensors check_owl(const std::string& processor_config, const std::vector<Image>& images) {
  c10::InferenceMode inference;
  const auto config = models::OwlImageProcessorConfig::from_file(processor_config);
  std::vector<at::Tensor> batch;
  for (const Image& image : images) {
    image::FloatImage processed = models::owl_preprocess(image, config);
    batch.push_back(at::from_blob(processed.chw.data(), {processed.channels, processed.height, processed.width},
                                  at::kFloat)
                        .clone());
  }
  NamedTensors out = {{"pixel_values", at::stack(batch)}};
  const std::string dir = std::filesystem::path(processor_config).parent_path().string();
  const std::string inputs_path = util::join_path(dir, "inputs.safetensors");
  if (images.size() != 1 || !util::file_exists(util::join_path(dir, "config.json")) ||
      !util::file_exists(inputs_path)) {
    return out;
  }
  const models::owl::Config model_config = models::owl::load_config(dir);
  const models::owl::OwlDetector model(
      model_config, runtime::WeightStore(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU));
  const NamedTensors inputs = runtime::read_safetensors(inputs_path);
  const auto ids = inputs.find("input_ids");
  if (ids == inputs.end()) throw Error(ErrorCode::InvalidModel, fmt::format("{}: no tensor 'input_ids'", inputs_path));
  const auto mask = inputs.find("attention_mask");
  const models::owl::ImageFeatures features = model.encode_image(out["pixel_values"]);
  const at::Tensor queries = model.embed_texts(ids->second, mask == inputs.end() ? at::Tensor() : mask->second)
                                 .view({1, -1, model_config.projection_dim});
  const models::owl::Detections outputs = model.detect(features, queries, models::owl::query_mask(ids->second, 1));
  const models::owl::PostProcessed result = models::owl::post_process_object_detection(
      model_config, outputs, /*threshold=*/0.0, {{images[0].height, images[0].width}})[0];
  out["scores"] = result.scores;
  out["labels"] = result.labels;
  out["boxes"] = result.boxes;
  return out;
}

// InternVL (settings in config.json): each image's tiles, thumbnail last,
// concatenated over the images as chat() takes them; tiles per image in
// num_patches_list.
NamedTensors check_internvl(const std::string& model_config, const std::vector<Image>& images) {
  c10::InferenceMode inference;
  const auto config = models::InternVLProcessorConfig::from_config(runtime::HfConfig::load(model_config));
  std::vector<at::Tensor> tiles;
  std::vector<std::int64_t> counts;
  for (const Image& image : images) {
    tiles.push_back(models::internvl_preprocess(image, config));
    counts.push_back(tiles.back().size(0));
  }
  return {{"pixel_values", at::cat(tiles)}, {"num_patches_list", at::tensor(counts, at::kLong)}};
}

}  // namespace

PreprocessCheck find_preprocess_check(const std::string& type) {
  if (type == "internvl_chat") return check_internvl;
  if (type == "CLIPImageProcessor" || type == "SiglipImageProcessor") return check_fixed_size;
  if (type == "Qwen2VLImageProcessor") return check_qwen_vl;
  if (type == "LlavaNextImageProcessor" || type == "LlavaOnevisionImageProcessor") return check_llava_anyres;
  if (type == "Owlv2ImageProcessor" || type == "OwlViTImageProcessor") return check_owl;
  return nullptr;
}

std::vector<Image> fixture_images(const NamedTensors& preprocess, const std::string& where) {
  std::vector<Image> images;
  if (auto it = preprocess.find("image"); it != preprocess.end()) images.push_back(to_image(it->second, where));
  for (std::size_t k = 0;; ++k) {
    auto it = preprocess.find(fmt::format("image_{}", k));
    if (it == preprocess.end()) break;
    images.push_back(to_image(it->second, where));
  }
  if (images.empty()) throw Error(ErrorCode::InvalidModel, fmt::format("{}: no 'image' or 'image_0' tensor", where));
  return images;
}

}  // namespace imgjudge::devtools
