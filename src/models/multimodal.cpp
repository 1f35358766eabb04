#include "models/multimodal.hpp"

#include <ATen/ATen.h>

#include <algorithm>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "runtime/config.hpp"
#include "runtime/safetensors.hpp"
#include "runtime/weights.hpp"
#include "util/files.hpp"

namespace imgjudge::models {

MultimodalLM::Parts MultimodalLM::with_decoder(Parts parts, std::unique_ptr<const Decoder> decoder) {
  parts.decoder = std::move(decoder);
  return parts;
}

MultimodalLM::MultimodalLM(Parts parts) : parts_(std::move(parts)) {
  if (!parts_.decoder) throw Error(ErrorCode::Internal, "MultimodalLM without a decoder");
  if (parts_.tokenizer && parts_.stop_token_ids.empty()) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the tokenizer has no end-of-turn token to stop generation at", parts_.model_dir));
  }
  const std::int64_t vocab = parts_.decoder->config().vocab_size;
  if (parts_.image_token_id >= vocab) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: config.json: the image token id {} is outside the "
                                                     "vocabulary of {} tokens",
                                                     parts_.model_dir, parts_.image_token_id, vocab));
  }
}

const tokenizer::Tokenizer& MultimodalLM::tokenizer() const {
  if (!parts_.tokenizer) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} was loaded without its tokenizer", parts_.model_dir));
  }
  return *parts_.tokenizer;
}

const tokenizer::ChatTemplate& MultimodalLM::chat_template() const {
  if (!parts_.chat) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{} was loaded without its chat template", parts_.model_dir));
  }
  return *parts_.chat;
}

namespace {
[[noreturn]] void text_only(const std::string& dir, const std::string& type) {
  throw Error(ErrorCode::Unsupported,
              fmt::format("{} ({}) is a text-only language model: it cannot look at images", dir, type));
}
}  // namespace

EncodedImage MultimodalLM::encode_image(const Image&, const CallContext*) const {
  text_only(parts_.model_dir, parts_.model_type);
}

std::optional<ImageFootprint> MultimodalLM::image_footprint(const Image&) const { return std::nullopt; }

std::vector<std::int64_t> MultimodalLM::render(const std::vector<tokenizer::ChatMessage>& messages,
                                               const std::vector<const EncodedImage*>& images,
                                               bool add_generation_prompt) const {
  std::size_t image_items = 0;
  for (const auto& message : messages) {
    for (const auto& item : message.content) image_items += item.kind == tokenizer::ChatContent::Kind::Image;
  }
  if (image_items != images.size()) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the chat has {} image item(s) for {} image(s)", image_items, images.size()));
  }
  if (image_items > 0 && !has_vision()) text_only(parts_.model_dir, parts_.model_type);
  tokenizer::ChatTemplateOptions options;
  options.add_generation_prompt = add_generation_prompt;
  const tokenizer::Tokenizer& tok = tokenizer();
  tokenizer::ChatSpecialTokens special;
  if (auto bos = tok.bos_id()) special.bos = tok.id_to_token(*bos).value_or("");
  if (auto eos = tok.eos_id()) special.eos = tok.id_to_token(*eos).value_or("");
  const std::string text = chat_template().render(messages, options, special);
  // As processor.apply_chat_template(tokenize=True): the tokenizer's special
  // tokens are added unless the template already wrote the BOS itself.
  const bool template_wrote_bos = !special.bos.empty() && text.rfind(special.bos, 0) == 0;
  const std::vector<std::int32_t> encoded = tok.encode(text, !template_wrote_bos);
  std::vector<std::int64_t> ids;
  std::size_t next_image = 0;
  for (const std::int32_t id : encoded) {
    if (id != parts_.image_token_id) {
      ids.push_back(id);
      continue;
    }
    if (next_image == images.size()) {
      throw Error(ErrorCode::InvalidArgument,
                  "the rendered chat has more image placeholders than images (an image token in the text?)");
    }
    ids.insert(ids.end(), static_cast<std::size_t>(images[next_image++]->tokens()), parts_.image_token_id);
  }
  if (next_image != images.size()) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the chat template placed {} of {} images (its image placeholder is not token {})",
                            parts_.model_dir, next_image, images.size(), parts_.image_token_id));
  }
  return ids;
}

std::vector<std::int32_t> MultimodalLM::answer_tokens(const std::string& spelling) const {
  return tokenizer().encode(spelling, /*add_special_tokens=*/false);
}

std::vector<std::int64_t> MultimodalLM::image_runs(const std::vector<std::int64_t>& ids,
                                                   const std::vector<const EncodedImage*>& images) const {
  std::vector<std::int64_t> starts;
  const auto length = static_cast<std::int64_t>(ids.size());
  std::int64_t i = 0;
  while (i < length) {
    if (ids[static_cast<std::size_t>(i)] != parts_.image_token_id) {
      ++i;
      continue;
    }
    if (starts.size() == images.size()) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the prompt has more image-token runs than the {} image(s) given", images.size()));
    }
    const std::int64_t count = images[starts.size()]->tokens();
    std::int64_t run = 0;
    while (i + run < length && ids[static_cast<std::size_t>(i + run)] == parts_.image_token_id) ++run;
    // Adjacent images form one run: take this image's share of it.
    if (run < count) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the image-token run at {} has {} tokens, image {} needs {}", i, run, starts.size(), count));
    }
    starts.push_back(i);
    i += count;
  }
  if (starts.size() != images.size()) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the prompt has {} image-token run(s) for {} image(s)", starts.size(), images.size()));
  }
  return starts;
}

PromptPositions MultimodalLM::positions(const std::vector<std::int64_t>& ids,
                                        const std::vector<const EncodedImage*>& images) const {
  image_runs(ids, images);  // the same checks as every family
  const auto length = static_cast<std::int64_t>(ids.size());
  return PromptPositions{at::arange(length, at::kLong).view({1, 1, length}), 0};
}

at::Tensor MultimodalLM::embed(const std::vector<std::int64_t>& ids, const std::vector<const EncodedImage*>& images) const {
  const auto length = static_cast<std::int64_t>(ids.size());
  const at::Tensor id_tensor = at::tensor(ids, at::kLong).view({1, length});
  at::Tensor embeds = parts_.decoder->embed(id_tensor);  // [1, T, hidden]
  if (images.empty() && parts_.image_token_id < 0) return embeds;
  const at::Tensor is_image = (id_tensor == parts_.image_token_id).unsqueeze(-1);  // [1, T, 1]
  const std::int64_t placeholders = is_image.sum().item<std::int64_t>();
  std::vector<at::Tensor> rows;
  std::int64_t features = 0;
  for (const EncodedImage* image : images) {
    rows.push_back(image->features);
    features += image->tokens();
  }
  if (placeholders != features) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("the prompt has {} image tokens but the images have {} feature rows", placeholders, features));
  }
  if (features == 0) return embeds;
  return embeds.masked_scatter(is_image.expand_as(embeds), at::cat(rows).to(embeds.scalar_type()));
}

std::vector<std::int32_t> turn_end_token_ids(const tokenizer::Tokenizer& tokenizer, const std::string& model_dir) {
  std::vector<std::int32_t> ids;
  const auto add = [&](std::int64_t id) {
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(static_cast<std::int32_t>(id));
  };
  if (auto eos = tokenizer.eos_id()) add(*eos);
  for (const char* file : {"config.json", "generation_config.json"}) {
    const std::string path = util::join_path(model_dir, file);
    if (!util::file_exists(path)) continue;
    const runtime::HfConfig config = runtime::HfConfig::load(path);
    for (const runtime::HfConfig& scope : {config, config.section("text_config")}) {
      if (!scope.has("eos_token_id")) continue;
      for (double id : scope.json().at("eos_token_id").is_array() ? scope.get_doubles("eos_token_id", {})
                                                                  : std::vector<double>{double(scope.get_int("eos_token_id"))}) {
        add(static_cast<std::int64_t>(id));
      }
    }
  }
  for (const char* name : {"<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"}) {
    if (auto id = tokenizer.token_to_id(name)) add(*id);
  }
  return ids;
}

std::shared_ptr<const MultimodalLM> load_text_lm(const std::string& dir, const LoadOptions& options) {
  const runtime::HfConfig config = runtime::HfConfig::load(util::join_path(dir, "config.json"));
  const std::string model_type = config.get_string("model_type");
  const Family& family = require_family(model_type, FamilyRole::Text, dir);
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), options.target.dtype,
                                     options.target.device, options.target.linear_format);
  MultimodalLM::Parts parts;
  parts.model_type = model_type;
  parts.model_dir = dir;
  parts.decoder = family.load_decoder(config, weights.scope("model"), weights, "lm_head.weight");
  if (options.with_processors) {
    parts.tokenizer = tokenizer::Tokenizer::load(dir);
    parts.chat = tokenizer::ChatTemplate::for_folder(dir, std::nullopt);
    parts.stop_token_ids = turn_end_token_ids(*parts.tokenizer, dir);
  }
  return std::make_shared<const MultimodalLM>(std::move(parts));
}

}  // namespace imgjudge::models
