// The one table of model families: config.json "model_type" -> what the family
// is for, how to load it, and what it binds. Every lookup of a model_type goes
// through here (the torch backend, make-random-model, verify-fixture, docs).
//
// Adding a family: its file in src/models (block structure and config), its
// processor in src/models/processors, one line in families.cpp, its fixture
// runner in src/devtools/fixture_runners.cpp, its fixtures in tests/data
// (docs/models.md, "Adding a family").
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "imgjudge/backend.hpp"
#include "models/multimodal.hpp"
#include "runtime/weights.hpp"

namespace imgjudge::runtime {
class HfConfig;
}

namespace imgjudge::models {

enum class FamilyRole {
  VisionLanguage,  ///< The judging MLLM (MultimodalLM with vision).
  Text,            ///< A text-only LLM (constitution tools).
  Relevance,       ///< A CLIP-like dual encoder for relevance scanning.
  Locator,         ///< An open-vocabulary detector for strategy 2.
};
const char* family_role_name(FamilyRole role);

struct Family {
  const char* model_type;
  FamilyRole role;
  const char* architecture;  ///< The transformers class, e.g. "Qwen2VLForConditionalGeneration".
  /// VisionLanguage and Text families.
  std::shared_ptr<const MultimodalLM> (*load_lm)(const std::string& dir, const LoadOptions& options) = nullptr;
  std::shared_ptr<const RelevanceModel> (*load_relevance)(const std::string& dir, const LoadOptions& options) = nullptr;
  std::shared_ptr<const Locator> (*load_locator)(const std::string& dir, const LoadOptions& options) = nullptr;
  /// Text families: the decoder of a text config whose transformer is scoped
  /// at `transformer` and whose LM head is `lm_head` in `root` (also how
  /// vision-language families load their language model).
  std::unique_ptr<const Decoder> (*load_decoder)(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                                 const runtime::WeightStore& root, const std::string& lm_head) = nullptr;
  /// Every parameter the loader binds for a config.json (random-model folders).
  std::vector<runtime::ParamSpec> (*parameters)(const runtime::HfConfig& config) = nullptr;
  /// The preprocessor_config.json the family's published checkpoints ship for
  /// `config` (null: the family has none).
  nlohmann::json (*processor_config)(const runtime::HfConfig& config) = nullptr;
  /// Vision-language families: the token that stands for a row of image
  /// features, and the config.json key holding its id (null: no key, the
  /// tokenizer names it, as InternVL's chat() does).
  const char* image_token = nullptr;
  const char* image_token_key = nullptr;
  /// Other added tokens the family's prompts need ("<img>", "</img>" around
  /// InternVL's image rows); make-random-model adds those a tokenizer lacks.
  std::vector<const char*> prompt_tokens{};
  /// The chat template the published checkpoints ship (null: none).
  const std::string& (*chat_template)() = nullptr;
};

/// Every family, in table order.
const std::vector<Family>& families();

/// The family of `model_type`, or null.
const Family* find_family(const std::string& model_type);

/// The family of `model_type` in `role`. Error(Unsupported) naming the folder
/// (`where`) and the model_types this build supports in that role otherwise.
const Family& require_family(const std::string& model_type, FamilyRole role, const std::string& where);

/// The language model of a text config: its model_type's Text family.
/// Error(Unsupported) naming `where` for a type without one.
std::unique_ptr<const Decoder> load_text_decoder(const runtime::HfConfig& text, const runtime::WeightStore& transformer,
                                                 const runtime::WeightStore& root, const std::string& lm_head,
                                                 const std::string& where);

/// model_types of `role`, in table order.
std::vector<std::string> family_names(FamilyRole role);

/// "model_type" of <dir>/config.json (Error(InvalidModel) naming the file when
/// absent or not a string).
std::string read_model_type(const std::string& dir);

}  // namespace imgjudge::models
