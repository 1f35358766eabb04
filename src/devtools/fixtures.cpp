#include "devtools/fixtures.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <limits>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "backends/torch/vlm.hpp"
#include "devtools/fixture_runners.hpp"
#include "devtools/preprocess_checks.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "models/qwen2_vl.hpp"
#include "runtime/config.hpp"
#include "runtime/tensor.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

using json = nlohmann::json;

TensorDiff compare(const std::string& name, const NamedTensors& actual, const at::Tensor& expected) {
  TensorDiff diff{name, std::numeric_limits<double>::infinity(), "", false};
  auto it = actual.find(name);
  if (it == actual.end() || !it->second.defined()) {
    diff.problem = "not produced";
  } else if (it->second.sizes() != expected.sizes()) {
    diff.problem = fmt::format("shape {} vs reference {}", runtime::shape_string(it->second.sizes()),
                               runtime::shape_string(expected.sizes()));
  } else {
    diff.max_abs_diff = max_abs_diff(it->second, expected);
  }
  return diff;
}

// `image` and `image_<k>` are a preprocess case's inputs; the rest its outputs.
bool is_input_image(const std::string& name) {
  if (name == "image") return true;
  if (name.rfind("image_", 0) != 0 || name.size() == 6) return false;
  return name.find_first_not_of("0123456789", 6) == std::string::npos;
}

// The image processor against preprocess.safetensors (independent of the model).
void check_preprocess(const std::string& dir, FixtureReport& report) {
  const std::string path = util::join_path(dir, "preprocess.safetensors");
  if (!util::file_exists(path)) return;
  const NamedTensors reference = runtime::read_safetensors(path);
  // A family whose processing settings are in config.json (InternVL) is
  // checked by its model_type; the others by preprocessor_config.json.
  std::string processor_path = util::join_path(dir, "config.json");
  std::string type = report.model_type;
  PreprocessCheck check = find_preprocess_check(type);
  if (check == nullptr) {
    processor_path = util::join_path(dir, "preprocessor_config.json");
    type = runtime::HfConfig::load(processor_path).get_string("image_processor_type");
    check = find_preprocess_check(type);
  }
  if (check == nullptr) {
    report.preprocess.push_back({"pixel_values", std::numeric_limits<double>::infinity(),
                                 fmt::format("{}: image_processor_type \"{}\" is not implemented", processor_path, type),
                                 false});
    return;
  }
  const NamedTensors actual = check(processor_path, fixture_images(reference, path));
  for (const auto& [name, expected] : reference) {
    if (!is_input_image(name)) report.preprocess.push_back(compare(name, actual, expected));
  }
}

FixtureReport verify_model_fixture(const std::string& dir) {
  FixtureReport report;
  report.kind = "model";
  report.model_type = models::read_model_type(dir);
  const FixtureRunner runner = find_fixture_runner(report.model_type);
  if (runner == nullptr) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model_type \"{}\" has no fixture runner (implemented: {})", dir, report.model_type,
                            fmt::join(fixture_runner_types(), ", ")));
  }
  at::set_num_threads(1);  // the references were computed with one thread
  const NamedTensors reference = runtime::read_safetensors(util::join_path(dir, "outputs.safetensors"));
  const NamedTensors actual = runner(dir, reference);
  for (const auto& [name, expected] : reference) report.outputs.push_back(compare(name, actual, expected));
  check_preprocess(dir, report);
  return report;
}

// ---- judge fixtures (expected.json, schema judge-fixture/1) ----

const json& field(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: missing \"{}\"", where, key));
  }
  return object.at(key);
}

// Exact comparison of id lists: a diff of 0 or a problem naming the first difference.
void compare_ids(TensorDiff& diff, const std::vector<std::int64_t>& actual, const std::vector<std::int64_t>& expected,
                 const std::string& where) {
  if (!diff.problem.empty()) return;  // report the first mismatch only
  if (actual == expected) return;
  std::size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  diff.max_abs_diff = std::numeric_limits<double>::infinity();
  diff.problem = fmt::format("{}: {} ids vs {} in the reference, first difference at index {}", where, actual.size(),
                             expected.size(), i);
}

FixtureReport verify_judge_fixture(const std::string& dir) {
  const std::string expected_path = util::join_path(dir, "expected.json");
  json expected;
  try {
    expected = json::parse(util::read_file_text(expected_path, 64u << 20));
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("{}: invalid JSON: {}", expected_path, e.what()));
  }
  if (field(expected, "schema", expected_path) != "judge-fixture/1") {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: schema {} is not judge-fixture/1", expected_path,
                                                    field(expected, "schema", expected_path).dump()));
  }
  FixtureReport report;
  report.kind = "judge";
  report.model_type = models::read_model_type(dir);
  const models::Family& family = models::require_family(report.model_type, models::FamilyRole::VisionLanguage, dir);
  at::set_num_threads(1);
  c10::InferenceMode inference;
  models::LoadOptions options;  // float32 on the CPU: the reference's precision
  const backends::torch::MultimodalJudge judge(family.load_lm(dir, options), "float32");
  const std::string template_text = field(expected, "template", expected_path).get<std::string>();

  TensorDiff score{"score", 0, "", false}, prior{"prior", 0, "", false};
  TensorDiff score_any{"score_any_spelling", 0, "", false}, prior_any{"prior_any_spelling", 0, "", false};
  TensorDiff prompt_ids{"prompt_ids", 0, "", true}, prior_ids{"prior_prompt_ids", 0, "", true};
  TensorDiff image_layout{"image_tokens", 0, "", true}, generated{"generate_ids", 0, "", true};
  TensorDiff answer_ids{"answer_ids", 0, "", true};

  // The answer tokens: exact words, and every spelling.
  const json& answers = field(expected, "answer_ids", expected_path);
  for (const char* word : {"Yes", "No"}) {
    compare_ids(answer_ids, judge.answer_token_ids(word, AnswerSpellings::Exact),
                {field(answers, word, expected_path).get<std::int64_t>()}, fmt::format("answer '{}'", word));
    std::vector<std::int64_t> any = judge.answer_token_ids(word, AnswerSpellings::Any);
    std::vector<std::int64_t> reference = field(field(expected, "answer_spellings", expected_path), word, expected_path);
    std::sort(any.begin(), any.end());
    std::sort(reference.begin(), reference.end());
    compare_ids(answer_ids, any, reference, fmt::format("spellings of '{}'", word));
  }

  const json& cases = field(expected, "cases", expected_path);
  std::map<std::string, std::vector<const json*>> by_image;
  std::vector<std::string> image_order;
  for (const json& c : cases) {
    const std::string image = field(c, "image", expected_path).get<std::string>();
    if (!by_image.count(image)) image_order.push_back(image);
    by_image[image].push_back(&c);
  }
  const CallContext call;
  const auto update = [](TensorDiff& diff, double actual, double reference) {
    diff.max_abs_diff = std::max(diff.max_abs_diff, std::isnan(actual) ? std::numeric_limits<double>::infinity()
                                                                        : std::abs(actual - reference));
  };
  std::map<std::string, std::shared_ptr<const ImageContext>> contexts;
  for (const std::string& name : image_order) {
    const Image image = load_image_file(util::join_path(dir, name));
    const auto context = judge.prepare(image, call);
    contexts[name] = context;
    // As the Judge asks: one batched call per image, with and without the image.
    std::vector<Question> questions;
    for (const json* c : by_image[name]) {
      const std::string statement = field(*c, "statement", expected_path).get<std::string>();
      questions.push_back({statement, render_question(template_text, statement)});
    }
    AnswerWords exact, any;
    any.spellings = AnswerSpellings::Any;
    const auto scores = judge.score(context.get(), questions, exact, call);
    const auto priors = judge.score(nullptr, questions, exact, call);
    const auto scores_any = judge.score(context.get(), questions, any, call);
    const auto priors_any = judge.score(nullptr, questions, any, call);
    for (std::size_t i = 0; i < questions.size(); ++i) {
      const json& c = *by_image[name][i];
      const std::string where = fmt::format("{} '{}'", name, questions[i].statement);
      update(score, scores[i], field(c, "score", expected_path).get<double>());
      update(prior, priors[i], field(c, "prior", expected_path).get<double>());
      update(score_any, scores_any[i], field(c, "score_any_spelling", expected_path).get<double>());
      update(prior_any, priors_any[i], field(c, "prior_any_spelling", expected_path).get<double>());
      compare_ids(prompt_ids, judge.question_ids(context.get(), questions[i].prompt),
                  field(c, "prompt_ids", expected_path).get<std::vector<std::int64_t>>(), where);
      compare_ids(prior_ids, judge.question_ids(nullptr, questions[i].prompt),
                  field(c, "prior_prompt_ids", expected_path).get<std::vector<std::int64_t>>(), where);
    }
  }
  // How the processor cut each image (the token count itself is in the prompt ids).
  for (const std::string& name : image_order) {
    const json& c = *by_image[name].front();
    const models::EncodedImage& encoded = judge.encoded_image(contexts[name].get());
    std::vector<std::int64_t> actual, reference;
    if (c.contains("image_grid_thw")) {  // Qwen: [t, h, w] in patches
      const auto* qwen = dynamic_cast<const models::QwenVLModel*>(&judge.model());
      const std::int64_t merge = qwen != nullptr ? qwen->config().vision.spatial_merge_size : 0;
      actual = {encoded.grid_t, encoded.grid_h * merge, encoded.grid_w * merge};
      reference = c["image_grid_thw"].at(0).get<std::vector<std::int64_t>>();
    } else if (c.contains("image_sizes")) {  // LLaVA: [height, width] of the image as given
      const Image image = load_image_file(util::join_path(dir, name));
      actual = {image.height, image.width};
      reference = c["image_sizes"].at(0).get<std::vector<std::int64_t>>();
    }
    compare_ids(image_layout, actual, reference, name);
  }
  if (expected.contains("generate")) {
    for (const json& g : expected["generate"]) {
      const std::string name = field(g, "image", expected_path).get<std::string>();
      const auto reference = field(g, "new_ids", expected_path).get<std::vector<std::int64_t>>();
      if (!contexts.count(name)) contexts[name] = judge.prepare(load_image_file(util::join_path(dir, name)), call);
      GenerateLimits limits;
      limits.max_new_tokens = static_cast<int>(reference.size());
      const auto ids = judge.generate_ids(contexts[name].get(),
                                          {{ChatTurn::Role::User, field(g, "prompt", expected_path).get<std::string>()}},
                                          limits, call);
      compare_ids(generated, std::vector<std::int64_t>(ids.begin(), ids.end()), reference, name);
    }
  } else {
    report.notes.push_back("no \"generate\" cases: generation not checked");
  }
  report.outputs = {score, prior, score_any, prior_any, prompt_ids, prior_ids, answer_ids, image_layout, generated};
  return report;
}

}  // namespace

bool FixtureReport::passed(double tolerance) const {
  for (const auto* list : {&outputs, &preprocess}) {
    for (const auto& d : *list) {
      if (!d.problem.empty() || !(d.max_abs_diff <= (d.exact ? 0.0 : tolerance))) return false;
    }
  }
  return !outputs.empty();
}

std::vector<std::string> fixture_model_types() { return fixture_runner_types(); }

FixtureReport verify_fixture(const std::string& dir) {
  if (util::file_exists(util::join_path(dir, "expected.json"))) {
    try {
      return verify_judge_fixture(dir);
    } catch (const nlohmann::json::exception& e) {
      // A value of the wrong type in expected.json: the file's fault, named.
      throw Error(ErrorCode::InvalidArgument, fmt::format("{}/expected.json: {}", dir, e.what()));
    }
  }
  if (util::file_exists(util::join_path(dir, "outputs.safetensors")) &&
      util::file_exists(util::join_path(dir, "inputs.safetensors"))) {
    return verify_model_fixture(dir);
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("{}: not a golden fixture folder: it has neither expected.json (a judge fixture) nor "
                          "inputs.safetensors and outputs.safetensors (a model fixture)",
                          dir));
}

}  // namespace imgjudge::devtools
