#include "backends/torch/torch_backend.hpp"

#include <malloc.h>

#include <functional>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "backends/torch/relevance_model.hpp"
#include "backends/torch/qwen2_vl_judge.hpp"
#include "imgjudge/error.hpp"
#include "util/files.hpp"

namespace imgjudge::backends::torch {
namespace {

using VlmLoader = std::function<std::shared_ptr<const VisionLanguageModel>(const ModelConfig&)>;
using RelevanceLoader =
    std::function<std::shared_ptr<const RelevanceModel>(const std::string& dir, const ModelConfig&)>;

// One line per implemented family; the model files live in src/models.
const std::map<std::string, VlmLoader>& vlm_loaders() {
  static const std::map<std::string, VlmLoader> loaders = {
      {"qwen2_vl", &load_qwen_vl_judge},
      {"qwen2_5_vl", &load_qwen_vl_judge},
  };
  return loaders;
}

const std::map<std::string, RelevanceLoader>& relevance_loaders() {
  static const std::map<std::string, RelevanceLoader> loaders = {
      {"clip", load_clip_relevance_model},
      {"siglip", load_siglip_relevance_model},
  };
  return loaders;
}

template <typename Map>
std::vector<std::string> keys(const Map& map) {
  std::vector<std::string> out;
  for (const auto& [key, value] : map) out.push_back(key);
  return out;
}

}  // namespace

std::string read_model_type(const std::string& dir) {
  const std::string path = util::join_path(dir, "config.json");
  if (!util::file_exists(path)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: not a Hugging Face model folder (no config.json)", dir));
  }
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(util::read_file_text(path, 16u << 20));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  if (!config.is_object() || !config.contains("model_type") || !config["model_type"].is_string()) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: no string \"model_type\"", path));
  }
  return config["model_type"].get<std::string>();
}

std::vector<std::string> supported_vlm_model_types() { return keys(vlm_loaders()); }
std::vector<std::string> supported_relevance_model_types() { return keys(relevance_loaders()); }

Models load_models(const ModelConfig& config) {
  Models models;
  if (config.model_dir.empty()) {
    throw Error(ErrorCode::InvalidArgument, "torch backend: no model folder given (--model DIR)");
  }
  const std::string vlm_type = read_model_type(config.model_dir);
  auto vlm = vlm_loaders().find(vlm_type);
  if (vlm == vlm_loaders().end()) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model_type \"{}\" is not a supported vision-language family "
                            "(this build supports: {})",
                            config.model_dir, vlm_type, fmt::join(supported_vlm_model_types(), ", ")));
  }
  models.vlm = vlm->second(config);
  if (!config.relevance_model_dir.empty()) {
    const std::string rel_type = read_model_type(config.relevance_model_dir);
    auto rel = relevance_loaders().find(rel_type);
    if (rel == relevance_loaders().end()) {
      throw Error(ErrorCode::Unsupported,
                  fmt::format("{}: model_type \"{}\" is not a supported relevance family "
                              "(this build supports: {})",
                              config.relevance_model_dir, rel_type,
                              fmt::join(supported_relevance_model_types(), ", ")));
    }
    models.relevance = rel->second(config.relevance_model_dir, config);
  }
#if defined(__GLIBC__)
  // Loading runs every tensor through temporaries (dtype conversion, int8
  // packing); give the freed heap back so resident memory is the weights.
  malloc_trim(0);
#endif
  return models;
}

}  // namespace imgjudge::backends::torch
