#include "devtools/random_models.hpp"

#include <filesystem>
#include <fstream>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "devtools/random_weights.hpp"
#include "models/families.hpp"
#include "runtime/config.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

// Tokenizer files a HF folder may hold (README/test files are not copied).
const char* const kTokenizerFiles[] = {"tokenizer.json",     "tokenizer_config.json", "vocab.json",
                                       "merges.txt",         "special_tokens_map.json", "added_tokens.json",
                                       "chat_template.json", "chat_template.jinja",   "tokenizer.model",
                                       "spiece.model"};

nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(util::read_file_text(path, 64u << 20));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
}

void write_json(const std::string& path, const nlohmann::json& json);

// Adds `content` as a special added token with `id` to the tokenizer files of
// `dir`, as the LLaVA conversions added "<image>" to their base tokenizers.
void add_special_token(const std::string& dir, const std::string& content, std::int64_t id) {
  const nlohmann::json token = {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
                                {"rstrip", false},    {"normalized", false}, {"special", true}};
  const std::string fast = util::join_path(dir, "tokenizer.json");
  if (util::file_exists(fast)) {
    nlohmann::json json = read_json(fast);
    json["added_tokens"].push_back(token);
    write_json(fast, json);
  }
  const std::string config_path = util::join_path(dir, "tokenizer_config.json");
  nlohmann::json config = util::file_exists(config_path) ? read_json(config_path) : nlohmann::json::object();
  nlohmann::json entry = token;
  entry.erase("id");
  config["added_tokens_decoder"][std::to_string(id)] = entry;
  write_json(config_path, config);
  const std::string added_path = util::join_path(dir, "added_tokens.json");
  if (util::file_exists(added_path)) {
    nlohmann::json added = read_json(added_path);
    added[content] = id;
    write_json(added_path, added);
  }
}

void write_json(const std::string& path, const nlohmann::json& json) {
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) throw Error(ErrorCode::Io, fmt::format("{}: cannot write", path));
}

}  // namespace

std::vector<std::string> random_model_types() {
  std::vector<std::string> out;
  for (const models::Family& family : models::families()) {
    if (family.parameters != nullptr) out.emplace_back(family.model_type);
  }
  return out;
}

std::vector<std::string> make_random_model(const RandomModelRequest& request) {
  if (request.dtype != "f32" && request.dtype != "bf16") {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--dtype must be f32 or bf16, not \"{}\"", request.dtype));
  }
  runtime::HfConfig loaded = runtime::HfConfig::load(request.config_path);
  nlohmann::json config = loaded.json();
  const std::string model_type = loaded.get_string("model_type");
  const models::Family* family = models::find_family(model_type);
  if (family == nullptr || family->parameters == nullptr) {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: no random-model support for model_type \"{}\" (have: {})",
                                                    request.config_path, model_type,
                                                    fmt::join(random_model_types(), ", ")));
  }
  std::error_code error;
  std::filesystem::create_directories(request.out_dir, error);
  if (error) throw Error(ErrorCode::Io, fmt::format("{}: cannot create: {}", request.out_dir, error.message()));
  std::vector<std::string> written;

  if (!request.tokenizer_dir.empty()) {
    for (const char* name : kTokenizerFiles) {
      const std::string from = util::join_path(request.tokenizer_dir, name);
      if (!util::file_exists(from)) continue;
      std::filesystem::copy_file(from, util::join_path(request.out_dir, name),
                                 std::filesystem::copy_options::overwrite_existing, error);
      if (error) throw Error(ErrorCode::Io, fmt::format("{}: cannot copy: {}", from, error.message()));
      written.push_back(name);
    }
    // The family's image placeholder must be one token the config names (or,
    // without a config key, the tokenizer alone); its other prompt tokens too.
    if (family->image_token != nullptr) {
      const auto token_id = [&](const char* content) {
        const auto tokenizer = tokenizer::Tokenizer::load(request.out_dir);
        if (const auto existing = tokenizer.token_to_id(content)) return static_cast<std::int64_t>(*existing);
        const auto id = static_cast<std::int64_t>(tokenizer.id_end());
        add_special_token(request.out_dir, content, id);
        return id;
      };
      const std::int64_t id = token_id(family->image_token);
      if (family->image_token_key != nullptr) config[family->image_token_key] = id;
      for (const char* token : family->prompt_tokens) token_id(token);
    }
    // The embedding table must cover every id the tokenizer can produce.
    const auto tokenizer = tokenizer::Tokenizer::load(request.out_dir);
    const char* nested = config.contains("text_config") ? "text_config" : config.contains("llm_config") ? "llm_config" : nullptr;
    nlohmann::json& text = nested != nullptr ? config[nested] : config;
    text["vocab_size"] = static_cast<std::int64_t>(tokenizer.id_end());
    if (nested != nullptr && tokenizer.eos_id()) text["eos_token_id"] = *tokenizer.eos_id();
    if (family->chat_template != nullptr) {
      write_json(util::join_path(request.out_dir, "chat_template.json"), {{"chat_template", family->chat_template()}});
      written.push_back("chat_template.json");
    }
  }
  config["torch_dtype"] = request.dtype == "bf16" ? "bfloat16" : "float32";
  const runtime::HfConfig final_config(config, request.config_path);
  write_json(util::join_path(request.out_dir, "config.json"), config);
  written.push_back("config.json");

  write_random_weights(util::join_path(request.out_dir, "model.safetensors"),
                                family->parameters(final_config), request.seed,
                                request.dtype == "bf16" ? at::kBFloat16 : at::kFloat);
  written.push_back("model.safetensors");
  if (family->processor_config != nullptr) {
    write_json(util::join_path(request.out_dir, "preprocessor_config.json"), family->processor_config(final_config));
    written.push_back("preprocessor_config.json");
  }
  return written;
}

}  // namespace imgjudge::devtools
