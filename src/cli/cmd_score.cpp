// `imgjudge score`: ask a vision-language model the yes/no question of each
// precondition statement about images and show M(x,c), the language prior
// m0 and the strategy-1 decision, so a rule author sees what the model answers
// before writing a rule. With a locator, statements that name central objects
// also get strategy 2's evidence: the box, and M(x) with it erased (or on its crop).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/model_options.hpp"
#include "cli/commands.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "tools/score_document.hpp"
#include "util/files.hpp"

namespace imgjudge::cli {
namespace {

const char* kHelp = R"(usage: imgjudge score --model DIR --image FILE... (--questions FILE | --rule ID) [options]

Scores each precondition statement against each image and prints one JSON
document per image (JSON lines, in the order of the --image options): per
statement the exact user prompt, M(x,c) = P(yes) with the image, the language
prior m0 = P(yes) without it, and the paper's strategy-1 decision (accept,
reject or uncertain). The model is loaded and m0 computed once for all images.

questions file: one statement per line (blank lines and lines starting with '#'
are skipped), or JSON lines {"statement": "...", "objects": ["..."]} where the
optional objects are the statement's central object words for strategy 2.

With --constitution FILE (and/or --rule ID) the statements are asked as the
Judge asks them: the rule's own score template and thresholds (without --rule,
the constitution's defaults) and the constitution's answer_spellings. --rule ID
without --questions asks the rule's chain statements with their objects; without
--constitution, --rule looks in the bundled default constitution. Without
either, the default template and thresholds are used.

With a locator (--locator-model; the scripted backend has its own), every
statement with objects also reports "region": the most confident box of its
objects above locator_confidence (null if none), whether it was erased (gray
128) or judged on its crop (under small_region_fraction of the image), the score
asked that way, and strategy 2's decision (erase: accept iff M(x,c) - M(erased)
> region_delta; crop: strategy 1 on the crop).

An image that cannot be scored gets {"schema", "image": {"file"}, "error":
{"code", "message"}} in its place, and the others are still scored.

options:
  --model DIR               Hugging Face folder of the vision-language model (torch)
  --locator-model DIR       Hugging Face folder of OWLv2/OWL-ViT for the statements' objects
  --image FILE              an image to ask about; repeat it for several images
  --questions FILE          the statements, see above
  --constitution FILE       TOML rules whose templates and thresholds to use (see above)
  --rule ID                 the rule of the constitution to ask as (see above)
  --template TEXT           user prompt; must contain {statement}
                            (default: the rule's or the constitution's score template)
  --answer-spellings S      exact (default, or the constitution's): P("Yes") / (P("Yes") +
                            P("No")) on the words' own tokens, the paper's M(x,c); any: sum
                            over every single-token spelling (Yes, " Yes", yes, " yes")
  --backend NAME            torch (default) or scripted
  --script FILE             answer script of the scripted backend
  --device DEV              cpu (default) or cuda[:N]
  --dtype T                 auto (default), float32, bfloat16 or int8
  --threads N               intra-op threads (default: all cores)
  --image-memory-mb N       memory one image may take in the model (default: half the RAM, at most 8192)

exit status: 0 every image scored, 2 usage, input or model error,
             3 some image could not be scored
)";

const std::string kPlaceholder = "{statement}";

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

int run_score(const Argv& argv) {
  const Args args(argv,
                  {"backend", "model", "locator-model", "script", "image", "questions", "template", "answer-spellings",
                   "device", "dtype", "threads", "image-memory-mb", "constitution", "rule"},
                  {"help"});
  if (args.flag("help")) {
    fmt::print("{}", kHelp);
    return 0;
  }
  const std::vector<std::string> image_paths = args.values("image");
  if (image_paths.empty()) {
    fmt::print(stderr, "imgjudge score: --image is required\n\n{}", kHelp);
    return 2;
  }
  if (!args.value("questions") && !args.value("rule")) {
    fmt::print(stderr, "imgjudge score: --questions is required (or --rule ID: its chain's statements)\n\n{}", kHelp);
    return 2;
  }

  // The rule (or the constitution's defaults) gives the template, thresholds and answer
  // spellings the Judge would use; explicit options win.
  std::optional<Constitution> constitution;
  const Rule* rule = nullptr;
  if (args.value("constitution") || args.value("rule")) constitution = constitution_from(args);
  if (const auto id = args.value("rule")) {
    rule = constitution->find_rule(*id);
    if (!rule) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--rule: no rule '{}' in constitution '{}' ({})", *id, constitution->name,
                              constitution->source));
    }
  }
  const Thresholds thresholds = rule ? rule->thresholds : constitution ? constitution->defaults : Thresholds{};
  const std::string default_template =
      rule ? rule->questions.score : constitution ? constitution->questions.score : QuestionTemplates{}.score;
  const std::string question_template = args.value_or("template", default_template);
  if (question_template.find(kPlaceholder) == std::string::npos) {
    fmt::print(stderr, "imgjudge score: --template must contain the placeholder {{statement}}\n");
    return 2;
  }

  AnswerWords answers;
  if (constitution) answers.spellings = constitution->answer_spellings;
  if (const auto spellings = args.value("answer-spellings")) {
    if (*spellings == "any") {
      answers.spellings = AnswerSpellings::Any;
    } else if (*spellings == "exact") {
      answers.spellings = AnswerSpellings::Exact;
    } else {
      fmt::print(stderr, "imgjudge score: --answer-spellings must be exact or any, not '{}'\n", *spellings);
      return 2;
    }
  }

  const ModelConfig config = model_config_from(args);
  if (config.backend == "torch" && config.model_dir.empty()) {
    fmt::print(stderr, "imgjudge score: no model given (--model DIR)\n");
    return 2;
  }

  // Inputs first: a bad questions file must not wait for a model load.
  tools::ScoreSetup setup;
  if (const auto questions_path = args.value("questions")) {
    setup.statements = tools::parse_score_statements(
        util::read_file_text(*questions_path, tools::kMaxScoreQuestionsBytes), *questions_path);
  } else {
    setup.statements = tools::rule_statements(*rule);
  }
  setup.question_template = question_template;
  setup.thresholds = thresholds;
  setup.answers = answers;
  setup.constitution = constitution;
  setup.rule_id = rule ? rule->id : "";
  setup.locator_requested = !config.locator_model_dir.empty();

  const auto started = std::chrono::steady_clock::now();
  const Models models = load_models(config);
  const double load_ms = elapsed_ms(started);
  if (!models.vlm) throw Error(ErrorCode::InvalidArgument, fmt::format("backend '{}' gave no vision-language model", config.backend));
  const CallContext call;
  const tools::StatementScorer scorer(models, std::move(setup), call);

  bool any_failed = false;
  for (const std::string& image_path : image_paths) {
    try {
      const auto decode_started = std::chrono::steady_clock::now();
      const Image image = load_image_file(image_path);
      const double decode_ms = elapsed_ms(decode_started);
      const nlohmann::json document =
          scorer.score_image(image, {{"file", image_path}}, {{"decode", decode_ms}, {"load", load_ms}}, call);
      fmt::print("{}\n", document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } catch (const Error& e) {
      // An image that cannot be scored (unreadable, not an image, too large) does not stop
      // the others, as in `judge`.
      any_failed = true;
      fmt::print("{}\n", nlohmann::json{{"schema", "imgjudge.score/1"},
                                        {"image", {{"file", image_path}}},
                                        {"error", {{"code", error_code_name(e.code())}, {"message", e.what()}}}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    std::fflush(stdout);
  }
  return any_failed ? 3 : 0;
}

}  // namespace imgjudge::cli
