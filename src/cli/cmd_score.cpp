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
#include "core/region_removal.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

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

// One batched score() call holds every question's KV cache at once: cap the
// count and the file size so a wrong file cannot exhaust memory.
constexpr std::size_t kMaxQuestions = 256;
constexpr std::size_t kMaxQuestionsFileBytes = 1u << 20;
constexpr std::size_t kMaxStatementBytes = 4096;
constexpr std::size_t kMaxObjectsPerStatement = 16;
const std::string kPlaceholder = "{statement}";

struct Statement {
  std::string text;
  std::vector<std::string> objects;  ///< Central object words (strategy 2), maybe none.
};

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

// Statements of a questions file: plain lines or JSON lines {"statement": ...}.
std::vector<Statement> read_statements(const std::string& path) {
  const std::string text = util::read_file_text(path, kMaxQuestionsFileBytes);
  std::vector<Statement> statements;
  std::size_t line_number = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    const auto where = fmt::format("{}:{}", path, line_number);
    Statement statement{line, {}};
    if (line[0] == '{') {
      const auto object = util::parse_json(line, where, ErrorCode::InvalidArgument);
      if (!object.is_object()) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("{}: not a valid JSON object", where));
      }
      const auto it = object.find("statement");
      if (it == object.end() || !it->is_string()) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("{}: missing string key \"statement\"", where));
      }
      statement.text = trim(it->get<std::string>());
      if (statement.text.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("{}: empty statement", where));
      for (const auto& [key, value] : object.items()) {
        if (key != "statement" && key != "objects") {
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: unknown key \"{}\" (expected \"statement\", \"objects\")", where, key));
        }
      }
      if (const auto objects = object.find("objects"); objects != object.end()) {
        if (!objects->is_array() || objects->size() > kMaxObjectsPerStatement) {
          throw Error(ErrorCode::InvalidArgument, fmt::format("{}: \"objects\" must be a list of at most {} strings",
                                                              where, kMaxObjectsPerStatement));
        }
        for (const auto& word : *objects) {
          if (!word.is_string() || trim(word.get<std::string>()).empty() ||
              word.get<std::string>().size() > kMaxStatementBytes) {
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("{}: every object must be a non-empty string (of at most {} bytes)", where,
                                    kMaxStatementBytes));
          }
          statement.objects.push_back(trim(word.get<std::string>()));
        }
      }
    }
    if (statement.text.size() > kMaxStatementBytes) {
      throw Error(ErrorCode::LimitExceeded, fmt::format("{}: statement of {} bytes, at most {}", where,
                                                        statement.text.size(), kMaxStatementBytes));
    }
    if (statements.size() == kMaxQuestions) {
      throw Error(ErrorCode::LimitExceeded, fmt::format("{}: more than {} statements", where, kMaxQuestions));
    }
    statements.push_back(std::move(statement));
  }
  if (statements.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("{}: no statements", path));
  return statements;
}

// Strategy 1 of the paper (the Judge's rule): compare M(x,c) with the prior m0.
const char* strategy1_decision(double score, double prior, const Thresholds& t) {
  if (score - prior < -t.reject_factor * prior) return "reject";
  if (score - prior > t.accept_factor * (1.0 - prior)) return "accept";
  return "uncertain";
}

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
  std::vector<Statement> statements;
  if (const auto questions_path = args.value("questions")) {
    statements = read_statements(*questions_path);
  } else {
    for (const auto& item : rule->chain) {
      for (const auto& text : item.any_of) statements.push_back({text, item.objects});
    }
    if (statements.empty()) statements.push_back({rule->objective_text, {}});  // a rule without a chain
  }
  std::vector<Question> questions;
  for (const auto& statement : statements) {
    questions.push_back({statement.text, render_question(question_template, statement.text)});
  }

  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  const Models models = load_models(config);
  const double load_ms = elapsed_ms(started);
  if (!models.vlm) throw Error(ErrorCode::InvalidArgument, fmt::format("backend '{}' gave no vision-language model", config.backend));
  const VisionLanguageModel& vlm = *models.vlm;
  if (!vlm.capabilities().score_without_image) {
    throw Error(ErrorCode::Unsupported, fmt::format("{} cannot score without an image (no m0)", vlm.model_id()));
  }

  const CallContext call;
  // m0 does not depend on the image: asked once for every image.
  started = Clock::now();
  const std::vector<double> priors = vlm.score(nullptr, questions, answers, call);
  const double priors_ms = elapsed_ms(started);
  if (priors.size() != questions.size()) {
    throw Error(ErrorCode::Backend,
                fmt::format("{} returned {} priors for {} questions", vlm.model_id(), priors.size(), questions.size()));
  }
  // Every phrase embedded once for all images (the Judge's cost model).
  const bool names_objects = std::any_of(statements.begin(), statements.end(),
                                         [](const Statement& s) { return !s.objects.empty(); });
  std::vector<std::string> phrases;
  std::shared_ptr<const LocatorQueries> queries;
  double queries_ms = 0;
  if (names_objects && models.locator) {
    for (const auto& statement : statements) {
      for (const auto& object : statement.objects) {
        if (std::find(phrases.begin(), phrases.end(), object) == phrases.end()) phrases.push_back(object);
      }
    }
    started = Clock::now();
    queries = models.locator->embed_queries(phrases, call);
    queries_ms = elapsed_ms(started);
  }

  bool any_failed = false;
  for (const std::string& image_path : image_paths) {
    try {
      started = Clock::now();
      const Image image = load_image_file(image_path);
      const double decode_ms = elapsed_ms(started);

      started = Clock::now();
      const auto context = vlm.prepare(image, call);
      const double prepare_ms = elapsed_ms(started);

      started = Clock::now();
      const std::vector<double> scores = vlm.score(context.get(), questions, answers, call);
      const double scoring_ms = elapsed_ms(started);
      if (scores.size() != questions.size()) {
        throw Error(ErrorCode::Backend, fmt::format("{} returned {} scores for {} questions", vlm.model_id(),
                                                    scores.size(), questions.size()));
      }

      nlohmann::json results = nlohmann::json::array();
      for (std::size_t i = 0; i < questions.size(); ++i) {
        results.push_back({{"statement", questions[i].statement},
                           {"prompt", questions[i].prompt},
                           {"score", scores[i]},
                           {"prior", priors[i]},
                           {"decision", strategy1_decision(scores[i], priors[i], thresholds)}});
      }

      // Strategy 2 for the statements that name objects.
      nlohmann::json notes = nlohmann::json::array();
      double locate_ms = queries_ms, region_ms = 0;
      if (names_objects && !models.locator) {
        notes.push_back("strategy 2 off: statements name objects but no locator is loaded (--locator-model DIR)");
      } else if (!names_objects && !config.locator_model_dir.empty()) {
        notes.push_back("strategy 2 off: no statement names objects (JSON lines with \"objects\")");
      } else if (names_objects) {
        started = Clock::now();
        const auto located_image = models.locator->prepare(image, call);
        locate_ms += elapsed_ms(started);
        for (std::size_t i = 0; i < statements.size(); ++i) {
          if (statements[i].objects.empty()) continue;
          std::vector<std::size_t> which;
          for (const auto& object : statements[i].objects) {
            which.push_back(
                static_cast<std::size_t>(std::find(phrases.begin(), phrases.end(), object) - phrases.begin()));
          }
          started = Clock::now();
          const auto found =
              models.locator->locate(*located_image, *queries, which, thresholds.locator_confidence, call);
          locate_ms += elapsed_ms(started);
          results[i]["objects"] = statements[i].objects;
          const auto chosen = core::choose_region(found, image, thresholds);
          if (!chosen) {
            results[i]["region"] = nullptr;
            continue;
          }
          started = Clock::now();
          const Box& box = chosen->detection.box;
          const Image edited = chosen->crop ? crop_region(image, box) : erase_region(image, box);
          const double region_score =
              vlm.score(vlm.prepare(edited, call).get(), {questions[i]}, answers, call).at(0);
          region_ms += elapsed_ms(started);
          const char* decision = chosen->crop ? strategy1_decision(region_score, priors[i], thresholds)
                                 : scores[i] - region_score > thresholds.region_delta ? "accept"
                                                                                        : "uncertain";
          results[i]["region"] = {{"phrase", statements[i].objects[chosen->query]},
                                  {"box", {box.x0, box.y0, box.x1, box.y1}},
                                  {"confidence", chosen->detection.confidence},
                                  {"area_fraction", chosen->area_fraction},
                                  {"action", chosen->crop ? "crop" : "erase"},
                                  {"score", region_score},
                                  {"decision", decision}};
        }
      }
      const nlohmann::json document = {
          {"schema", "imgjudge.score/1"},
          {"model", vlm.model_id()},
          {"answer_tokens", vlm.describe_answer_tokens(answers)},
          {"answer_spellings", answer_spellings_name(answers.spellings)},
          {"image",
           {{"file", image_path},
            {"hash", "sha256:" + image.content_hash()},
            {"width", image.width},
            {"height", image.height}}},
          {"locator", models.locator ? nlohmann::json(models.locator->model_id()) : nlohmann::json(nullptr)},
          {"constitution", constitution ? nlohmann::json{{"name", constitution->name},
                                                         {"version", constitution->version},
                                                         {"hash", constitution->hash}}
                                        : nlohmann::json(nullptr)},
          {"rule", rule ? nlohmann::json(rule->id) : nlohmann::json(nullptr)},
          {"template", question_template},
          {"thresholds",
           {{"reject_factor", thresholds.reject_factor},
            {"accept_factor", thresholds.accept_factor},
            {"region_delta", thresholds.region_delta},
            {"locator_confidence", thresholds.locator_confidence},
            {"small_region_fraction", thresholds.small_region_fraction}}},
          {"questions", results},
          {"notes", notes},
          {"timings_ms",
           {{"decode", decode_ms},
            {"load", load_ms},
            {"prepare", prepare_ms},
            {"scoring", scoring_ms},
            {"priors", priors_ms},
            {"locate", locate_ms},
            {"region", region_ms}}},
      };
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
