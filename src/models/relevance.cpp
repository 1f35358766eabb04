#include "models/relevance.hpp"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "image/preprocess.hpp"
#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "models/siglip.hpp"
#include "runtime/device.hpp"
#include "runtime/nn.hpp"
#include "runtime/weights.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

// CLIP pads to the longest text and masks the padding (causal attention, EOS
// pooling). SigLIP was trained on max_length padding WITHOUT a mask and pools
// the last position, so it must see exactly that layout.
enum class TextLayout { LongestWithMask, MaxLengthNoMask };

template <typename Model>
class DualEncoderRelevanceModel final : public RelevanceModel {
 public:
  DualEncoderRelevanceModel(std::string id, Model model, tokenizer::Tokenizer tokenizer,
                            image::ImageProcessorConfig processor, std::size_t max_text_length, TextLayout layout)
      : id_(std::move(id)),
        model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        processor_(std::move(processor)),
        max_text_length_(max_text_length),
        layout_(layout) {}

  std::string model_id() const override { return id_; }

  std::vector<Embedding> embed_texts(const std::vector<std::string>& texts, const CallContext& call) const override {
    if (texts.empty()) return {};
    call.check();
    c10::InferenceMode inference;  // per call: weights are shared, no autograd state
    tokenizer::BatchOptions options;
    options.truncation = true;
    options.max_length = max_text_length_;
    options.padding = layout_ == TextLayout::LongestWithMask ? tokenizer::Padding::Longest : tokenizer::Padding::MaxLength;
    const tokenizer::BatchEncoding batch = tokenizer_.encode_batch(texts, options);
    const at::Tensor ids = to_matrix(batch.input_ids);
    const at::Tensor mask = layout_ == TextLayout::LongestWithMask ? to_matrix(batch.attention_mask) : at::Tensor();
    const at::Tensor features = model_.encode_text(ids, mask).features;
    call.check();
    return to_embeddings(runtime::nn::l2_normalize(features.to(at::kFloat)));
  }

  Embedding embed_image(const Image& image, const CallContext& call) const override {
    call.check();
    c10::InferenceMode inference;
    image::FloatImage pixels = image::preprocess(image, processor_);
    const at::Tensor tensor =
        at::from_blob(pixels.chw.data(), {1, pixels.channels, pixels.height, pixels.width}, at::kFloat);
    const at::Tensor features = model_.encode_image(tensor).features;
    call.check();
    return to_embeddings(runtime::nn::l2_normalize(features.to(at::kFloat)))[0];
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
      for (std::int64_t c = 0; c < width; ++c) access[static_cast<std::int64_t>(r)][c] = rows[r][static_cast<std::size_t>(c)];
    }
    return out;
  }

  static std::vector<Embedding> to_embeddings(const at::Tensor& unit_rows) {
    const at::Tensor cpu = unit_rows.to(at::kCPU).contiguous();
    std::vector<Embedding> out(static_cast<std::size_t>(cpu.size(0)));
    for (std::size_t i = 0; i < out.size(); ++i) {
      const float* row = cpu.data_ptr<float>() + static_cast<std::int64_t>(i) * cpu.size(1);
      out[i].assign(row, row + cpu.size(1));
    }
    return out;
  }

  std::string id_;
  Model model_;
  tokenizer::Tokenizer tokenizer_;
  image::ImageProcessorConfig processor_;
  std::size_t max_text_length_;
  TextLayout layout_;
};

runtime::WeightStore open_weights(const std::string& dir, const LoadOptions& options) {
  // Relevance runs once per image on a small model: dense weights in the compute dtype.
  return runtime::WeightStore(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                              options.target.device);
}

image::ImageProcessorConfig open_processor(const std::string& dir) {
  return image::ImageProcessorConfig::from_file(util::join_path(dir, "preprocessor_config.json"));
}

}  // namespace

std::shared_ptr<const RelevanceModel> load_clip_relevance_model(const std::string& dir, const LoadOptions& options) {
  const clip::Config model_config = clip::load_config(dir);
  auto weights = open_weights(dir, options);
  clip::ClipModel model(model_config, weights);
  return std::make_shared<DualEncoderRelevanceModel<clip::ClipModel>>(
      "clip:" + dir, std::move(model), tokenizer::Tokenizer::load(dir), open_processor(dir),
      static_cast<std::size_t>(model_config.text.max_position_embeddings), TextLayout::LongestWithMask);
}

std::shared_ptr<const RelevanceModel> load_siglip_relevance_model(const std::string& dir, const LoadOptions& options) {
  const siglip::Config model_config = siglip::load_config(dir);
  if (!model_config.vision.use_head) {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: SigLIP without a vision head has no image embedding", dir));
  }
  auto weights = open_weights(dir, options);
  siglip::SiglipModel model(model_config, weights);
  return std::make_shared<DualEncoderRelevanceModel<siglip::SiglipModel>>(
      "siglip:" + dir, std::move(model), tokenizer::Tokenizer::load(dir), open_processor(dir),
      static_cast<std::size_t>(model_config.text.max_position_embeddings), TextLayout::MaxLengthNoMask);
}

}  // namespace imgjudge::models
