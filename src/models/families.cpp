#include "models/families.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include <ATen/ATen.h>

#include "models/clip.hpp"
#include "models/internvl.hpp"
#include "models/llama.hpp"
#include "models/llava.hpp"
#include "models/owl.hpp"
#include "models/qwen2.hpp"
#include "models/qwen2_vl.hpp"
#include "models/relevance.hpp"
#include "models/siglip.hpp"
#include "runtime/config.hpp"
#include "tokenizer/chat_template.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

nlohmann::json clip_processor_config(const runtime::HfConfig& config) {
  const auto size = clip::parse_config(config).vision.image_size;
  return {{"image_processor_type", "CLIPImageProcessor"}, {"do_resize", true}, {"size", {{"shortest_edge", size}}},
          {"resample", 3}, {"do_center_crop", true}, {"crop_size", {{"height", size}, {"width", size}}},
          {"do_rescale", true}, {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true},
          {"image_mean", {0.48145466, 0.4578275, 0.40821073}}, {"image_std", {0.26862954, 0.26130258, 0.27577711}},
          {"do_convert_rgb", true}};
}

nlohmann::json siglip_processor_config(const runtime::HfConfig& config) {
  const auto size = siglip::parse_config(config).vision.image_size;
  return {{"image_processor_type", "SiglipImageProcessor"}, {"do_resize", true},
          {"size", {{"height", size}, {"width", size}}}, {"resample", 3}, {"do_rescale", true},
          {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true}, {"image_mean", {0.5, 0.5, 0.5}},
          {"image_std", {0.5, 0.5, 0.5}}};
}

std::vector<runtime::ParamSpec> clip_parameters(const runtime::HfConfig& c) {
  return clip::parameter_specs(clip::parse_config(c));
}
std::vector<runtime::ParamSpec> siglip_parameters(const runtime::HfConfig& c) {
  return siglip::parameter_specs(siglip::parse_config(c));
}

std::shared_ptr<const MultimodalLM> load_qwen_vl(const std::string& dir, const LoadOptions& options) {
  return QwenVLModel::load(dir, options);
}
std::shared_ptr<const MultimodalLM> load_llava(const std::string& dir, const LoadOptions& options) {
  return LlavaModel::load(dir, options);
}
std::shared_ptr<const MultimodalLM> load_internvl(const std::string& dir, const LoadOptions& options) {
  return InternVLModel::load(dir, options);
}

Family vision_language(const char* type, const char* architecture,
                       std::shared_ptr<const MultimodalLM> (*load)(const std::string&, const LoadOptions&),
                       std::vector<runtime::ParamSpec> (*parameters)(const runtime::HfConfig&),
                       nlohmann::json (*processor)(const runtime::HfConfig&), const char* image_token,
                       const char* image_token_key, const std::string& (*chat_template)()) {
  Family f{type, FamilyRole::VisionLanguage, architecture};
  f.load_lm = load;
  f.parameters = parameters;
  f.processor_config = processor;
  f.image_token = image_token;
  f.image_token_key = image_token_key;
  f.chat_template = chat_template;
  return f;
}

Family with_prompt_tokens(Family family, std::vector<const char*> tokens) {
  family.prompt_tokens = std::move(tokens);
  return family;
}

// The templates the published checkpoints ship (tokenizer/chat_template.cpp).
const std::string& qwen2_vl_template() { return tokenizer::published_chat_template("qwen2_vl"); }
const std::string& llava_template() { return tokenizer::published_chat_template("llava"); }
const std::string& llava_next_template() { return tokenizer::published_chat_template("llava_next_mistral"); }
const std::string& llava_onevision_template() { return tokenizer::published_chat_template("llava_onevision"); }
const std::string& qwen2_5_template() { return tokenizer::published_chat_template("qwen2_5_instruct"); }
const std::string& llama3_1_template() { return tokenizer::published_chat_template("llama3_1_instruct"); }
const std::string& mistral_template() { return tokenizer::published_chat_template("mistral_v02_instruct"); }

std::unique_ptr<const Decoder> qwen2_decoder(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                             const runtime::WeightStore& root, const std::string& lm_head) {
  return load_qwen2_decoder(qwen2_decoder_config(text), transformer, root, lm_head);
}
std::unique_ptr<const Decoder> llama_decoder(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                             const runtime::WeightStore& root, const std::string& lm_head) {
  return load_llama_decoder(llama_decoder_config(text), text, transformer, root, lm_head);
}
std::unique_ptr<const Decoder> mistral_decoder(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                               const runtime::WeightStore& root, const std::string& lm_head) {
  return load_llama_decoder(mistral_decoder_config(text), text, transformer, root, lm_head);
}

// What a text family binds: its decoder on a recorder.
template <std::unique_ptr<const Decoder> (*Load)(const runtime::HfConfig&, const runtime::WeightStore&,
                                                 const runtime::WeightStore&, const std::string&)>
std::vector<runtime::ParamSpec> text_parameters(const runtime::HfConfig& config) {
  auto recorder = runtime::WeightStore::recorder(at::kFloat);
  Load(config, recorder.scope("model"), recorder, "lm_head.weight");
  return recorder.recorded();
}

template <std::unique_ptr<const Decoder> (*Load)(const runtime::HfConfig&, const runtime::WeightStore&,
                                                 const runtime::WeightStore&, const std::string&)>
Family text(const char* type, const char* architecture, const std::string& (*chat_template)()) {
  Family f{type, FamilyRole::Text, architecture};
  f.load_lm = load_text_lm;
  f.load_decoder = Load;
  f.parameters = text_parameters<Load>;
  f.chat_template = chat_template;
  return f;
}

Family relevance(const char* type, const char* architecture,
                 std::shared_ptr<const RelevanceModel> (*load)(const std::string&, const LoadOptions&),
                 std::vector<runtime::ParamSpec> (*parameters)(const runtime::HfConfig&),
                 nlohmann::json (*processor)(const runtime::HfConfig&)) {
  Family f{type, FamilyRole::Relevance, architecture};
  f.load_relevance = load;
  f.parameters = parameters;
  f.processor_config = processor;
  return f;
}

Family locator(const char* type, const char* architecture,
               std::shared_ptr<const Locator> (*load)(const std::string&, const LoadOptions&),
               std::vector<runtime::ParamSpec> (*parameters)(const runtime::HfConfig&),
               nlohmann::json (*processor)(const runtime::HfConfig&)) {
  Family f{type, FamilyRole::Locator, architecture};
  f.load_locator = load;
  f.parameters = parameters;
  f.processor_config = processor;
  return f;
}

}  // namespace

const char* family_role_name(FamilyRole role) {
  switch (role) {
    case FamilyRole::VisionLanguage: return "vision-language";
    case FamilyRole::Text: return "text";
    case FamilyRole::Relevance: return "relevance";
    case FamilyRole::Locator: return "locator";
  }
  return "unknown";
}

const std::vector<Family>& families() {
  // One line per family.
  static const std::vector<Family> table = {
      vision_language("qwen2_vl", "Qwen2VLForConditionalGeneration", load_qwen_vl, qwen_vl_parameter_specs,
                      qwen_vl_processor_config, "<|image_pad|>", "image_token_id", qwen2_vl_template),
      vision_language("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", load_qwen_vl, qwen_vl_parameter_specs,
                      qwen_vl_processor_config, "<|image_pad|>", "image_token_id", qwen2_vl_template),
      vision_language("llava", "LlavaForConditionalGeneration", load_llava, llava_parameter_specs,
                      llava_processor_config, "<image>", "image_token_index", llava_template),
      vision_language("llava_next", "LlavaNextForConditionalGeneration", load_llava, llava_parameter_specs,
                      llava_processor_config, "<image>", "image_token_index", llava_next_template),
      vision_language("llava_onevision", "LlavaOnevisionForConditionalGeneration", load_llava, llava_parameter_specs,
                      llava_processor_config, "<image>", "image_token_index", llava_onevision_template),
      // Tiling settings and the conversation template are named in config.json.
      with_prompt_tokens(vision_language("internvl_chat", "InternVLChatModel", load_internvl, internvl_parameter_specs,
                                         nullptr, "<IMG_CONTEXT>", nullptr, nullptr),
                         {"<img>", "</img>"}),
      text<qwen2_decoder>("qwen2", "Qwen2ForCausalLM", qwen2_5_template),
      text<llama_decoder>("llama", "LlamaForCausalLM", llama3_1_template),
      text<mistral_decoder>("mistral", "MistralForCausalLM", mistral_template),
      relevance("clip", "CLIPModel", load_clip_relevance_model, clip_parameters, clip_processor_config),
      relevance("siglip", "SiglipModel", load_siglip_relevance_model, siglip_parameters, siglip_processor_config),
      locator("owlv2", "Owlv2ForObjectDetection", owl::load_locator, owl::parameter_specs, owl::processor_config),
      locator("owlvit", "OwlViTForObjectDetection", owl::load_locator, owl::parameter_specs, owl::processor_config),
  };
  return table;
}

const Family* find_family(const std::string& model_type) {
  for (const Family& family : families()) {
    if (model_type == family.model_type) return &family;
  }
  return nullptr;
}

std::vector<std::string> family_names(FamilyRole role) {
  std::vector<std::string> names;
  for (const Family& family : families()) {
    if (family.role == role) names.emplace_back(family.model_type);
  }
  return names;
}

const Family& require_family(const std::string& model_type, FamilyRole role, const std::string& where) {
  const Family* family = find_family(model_type);
  // A text-only LLM may stand wherever a vision-language one is asked for:
  // the constitution tools need only text, and the Judge says plainly that
  // judging needs vision.
  const bool fits = family != nullptr && (family->role == role || (role == FamilyRole::VisionLanguage &&
                                                                    family->role == FamilyRole::Text));
  if (!fits) {
    std::vector<std::string> supported = family_names(role);
    if (role == FamilyRole::VisionLanguage) {
      for (const auto& name : family_names(FamilyRole::Text)) supported.push_back(name + " (text only)");
    }
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model_type \"{}\" is not a supported {} family (this build supports: {})", where,
                            model_type, family_role_name(role), fmt::join(supported, ", ")));
  }
  return *family;
}

std::unique_ptr<const Decoder> load_text_decoder(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                                 const runtime::WeightStore& root, const std::string& lm_head,
                                                 const std::string& where) {
  const Family& family = require_family(text.get_string("model_type"), FamilyRole::Text, where + " (text_config)");
  return family.load_decoder(text, transformer, root, lm_head);
}

std::string read_model_type(const std::string& dir) {
  const std::string path = util::join_path(dir, "config.json");
  if (!util::file_exists(path)) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: not a Hugging Face model folder (no config.json)", dir));
  }
  return runtime::HfConfig::load(path).get_string("model_type");
}

}  // namespace imgjudge::models
