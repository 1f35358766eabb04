#include "models/random_models.hpp"

#include <filesystem>
#include <fstream>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "models/qwen2_vl.hpp"
#include "models/siglip.hpp"
#include "runtime/config.hpp"
#include "runtime/random_model.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::models {
namespace {

struct RandomModelFamily {
  /// The parameters the family's constructor binds for this config.
  std::vector<runtime::ParamSpec> (*parameters)(const runtime::HfConfig& config);
  /// preprocessor_config.json matching the config (null: the family has none).
  nlohmann::json (*preprocessor)(const runtime::HfConfig& config);
};

nlohmann::json clip_preprocessor(const runtime::HfConfig& config) {
  const auto size = clip::parse_config(config).vision.image_size;
  return {{"image_processor_type", "CLIPImageProcessor"}, {"do_resize", true}, {"size", {{"shortest_edge", size}}},
          {"resample", 3}, {"do_center_crop", true}, {"crop_size", {{"height", size}, {"width", size}}},
          {"do_rescale", true}, {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true},
          {"image_mean", {0.48145466, 0.4578275, 0.40821073}}, {"image_std", {0.26862954, 0.26130258, 0.27577711}},
          {"do_convert_rgb", true}};
}

nlohmann::json siglip_preprocessor(const runtime::HfConfig& config) {
  const auto size = siglip::parse_config(config).vision.image_size;
  return {{"image_processor_type", "SiglipImageProcessor"}, {"do_resize", true},
          {"size", {{"height", size}, {"width", size}}}, {"resample", 3}, {"do_rescale", true},
          {"rescale_factor", 1.0 / 255.0}, {"do_normalize", true}, {"image_mean", {0.5, 0.5, 0.5}},
          {"image_std", {0.5, 0.5, 0.5}}};
}

// model_type -> family. One line per family.
const std::map<std::string, RandomModelFamily>& families() {
  static const std::map<std::string, RandomModelFamily> table = {
      {"clip", {[](const runtime::HfConfig& c) { return clip::parameter_specs(clip::parse_config(c)); }, clip_preprocessor}},
      {"siglip", {[](const runtime::HfConfig& c) { return siglip::parameter_specs(siglip::parse_config(c)); }, siglip_preprocessor}},
      {"qwen2_vl", {qwen_vl_parameter_specs, qwen_vl_random_preprocessor}},
      {"qwen2_5_vl", {qwen_vl_parameter_specs, qwen_vl_random_preprocessor}},
  };
  return table;
}

// Tokenizer files a HF folder may hold (README/test files are not copied).
const char* const kTokenizerFiles[] = {"tokenizer.json",     "tokenizer_config.json", "vocab.json",
                                       "merges.txt",         "special_tokens_map.json", "added_tokens.json",
                                       "chat_template.json", "chat_template.jinja",   "tokenizer.model",
                                       "spiece.model"};

void write_json(const std::string& path, const nlohmann::json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) throw Error(ErrorCode::Io, fmt::format("{}: cannot write", path));
}

}  // namespace

std::vector<std::string> random_model_types() {
  std::vector<std::string> out;
  for (const auto& [type, family] : families()) out.push_back(type);
  return out;
}

std::vector<std::string> make_random_model(const RandomModelRequest& request) {
  if (request.dtype != "f32" && request.dtype != "bf16") {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--dtype must be f32 or bf16, not \"{}\"", request.dtype));
  }
  runtime::HfConfig loaded = runtime::HfConfig::load(request.config_path);
  nlohmann::json config = loaded.json();
  const std::string model_type = loaded.get_string("model_type");
  auto family = families().find(model_type);
  if (family == families().end()) {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: no random-model support for model_type \"{}\" (have: {})",
                                                    request.config_path, model_type,
                                                    fmt::join(random_model_types(), ", ")));
  }
  std::error_code error;
  std::filesystem::create_directories(request.out_dir, error);
  if (error) throw Error(ErrorCode::Io, fmt::format("{}: cannot create: {}", request.out_dir, error.message()));
  std::vector<std::string> written;

  if (!request.tokenizer_dir.empty()) {
    // The embedding table must cover every id the tokenizer can produce.
    const auto tokenizer = tokenizer::Tokenizer::load(request.tokenizer_dir);
    const auto vocab = static_cast<std::int64_t>(tokenizer.id_end());
    nlohmann::json& text = config.contains("text_config") ? config["text_config"] : config;
    text["vocab_size"] = vocab;
    if (config.contains("text_config") && tokenizer.eos_id()) text["eos_token_id"] = *tokenizer.eos_id();
    for (const char* name : kTokenizerFiles) {
      const std::string from = util::join_path(request.tokenizer_dir, name);
      if (!util::file_exists(from)) continue;
      std::filesystem::copy_file(from, util::join_path(request.out_dir, name),
                                 std::filesystem::copy_options::overwrite_existing, error);
      if (error) throw Error(ErrorCode::Io, fmt::format("{}: cannot copy: {}", from, error.message()));
      written.push_back(name);
    }
  }
  config["torch_dtype"] = request.dtype == "bf16" ? "bfloat16" : "float32";
  const runtime::HfConfig final_config(config, request.config_path);
  write_json(util::join_path(request.out_dir, "config.json"), config);
  written.push_back("config.json");

  runtime::write_random_weights(util::join_path(request.out_dir, "model.safetensors"),
                                family->second.parameters(final_config), request.seed,
                                request.dtype == "bf16" ? at::kBFloat16 : at::kFloat);
  written.push_back("model.safetensors");
  if (family->second.preprocessor != nullptr) {
    write_json(util::join_path(request.out_dir, "preprocessor_config.json"), family->second.preprocessor(final_config));
    written.push_back("preprocessor_config.json");
  }
  return written;
}

}  // namespace imgjudge::models
