#include "tools/score_document.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "core/region_removal.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "util/json.hpp"

namespace imgjudge::tools {
namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

}  // namespace

std::vector<ScoreStatement> parse_score_statements(const std::string& text, const std::string& source) {
  if (text.size() > kMaxScoreQuestionsBytes) {
    throw Error(ErrorCode::LimitExceeded,
                fmt::format("{}: {} bytes of statements, at most {}", source, text.size(), kMaxScoreQuestionsBytes));
  }
  std::vector<ScoreStatement> statements;
  std::size_t line_number = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    const auto where = fmt::format("{}:{}", source, line_number);
    ScoreStatement statement{line, {}};
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
        if (!objects->is_array() || objects->size() > kMaxScoreObjectsPerStatement) {
          throw Error(ErrorCode::InvalidArgument, fmt::format("{}: \"objects\" must be a list of at most {} strings",
                                                              where, kMaxScoreObjectsPerStatement));
        }
        for (const auto& word : *objects) {
          if (!word.is_string() || trim(word.get<std::string>()).empty() ||
              word.get<std::string>().size() > kMaxScoreStatementBytes) {
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("{}: every object must be a non-empty string (of at most {} bytes)", where,
                                    kMaxScoreStatementBytes));
          }
          statement.objects.push_back(trim(word.get<std::string>()));
        }
      }
    }
    if (statement.text.size() > kMaxScoreStatementBytes) {
      throw Error(ErrorCode::LimitExceeded, fmt::format("{}: statement of {} bytes, at most {}", where,
                                                        statement.text.size(), kMaxScoreStatementBytes));
    }
    if (statements.size() == kMaxScoreStatements) {
      throw Error(ErrorCode::LimitExceeded, fmt::format("{}: more than {} statements", where, kMaxScoreStatements));
    }
    statements.push_back(std::move(statement));
  }
  if (statements.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("{}: no statements", source));
  return statements;
}

std::vector<ScoreStatement> rule_statements(const Rule& rule) {
  std::vector<ScoreStatement> statements;
  for (const auto& item : rule.chain) {
    for (const auto& text : item.any_of) statements.push_back({text, item.objects});
  }
  if (statements.empty()) statements.push_back({rule.objective_text, {}});  // a rule without a chain
  return statements;
}

const char* strategy1_decision(double score, double prior, const Thresholds& t) {
  if (score - prior < -t.reject_factor * prior) return "reject";
  if (score - prior > t.accept_factor * (1.0 - prior)) return "accept";
  return "uncertain";
}

StatementScorer::StatementScorer(Models models, ScoreSetup setup, const CallContext& call)
    : models_(std::move(models)), setup_(std::move(setup)) {
  if (!models_.vlm) throw Error(ErrorCode::InvalidArgument, "scoring needs a vision-language model");
  if (setup_.statements.empty()) throw Error(ErrorCode::InvalidArgument, "no statements to score");
  const VisionLanguageModel& vlm = *models_.vlm;
  if (!vlm.capabilities().score_without_image) {
    throw Error(ErrorCode::Unsupported, fmt::format("{} cannot score without an image (no m0)", vlm.model_id()));
  }
  for (const auto& statement : setup_.statements) {
    questions_.push_back({statement.text, render_question(setup_.question_template, statement.text)});
  }
  // m0 does not depend on the image: asked once for every image.
  auto started = std::chrono::steady_clock::now();
  priors_ = vlm.score(nullptr, questions_, setup_.answers, call);
  priors_ms_ = elapsed_ms(started);
  if (priors_.size() != questions_.size()) {
    throw Error(ErrorCode::Backend,
                fmt::format("{} returned {} priors for {} questions", vlm.model_id(), priors_.size(), questions_.size()));
  }
  // Every phrase embedded once for all images (the Judge's cost model).
  names_objects_ = std::any_of(setup_.statements.begin(), setup_.statements.end(),
                               [](const ScoreStatement& s) { return !s.objects.empty(); });
  if (names_objects_ && models_.locator) {
    for (const auto& statement : setup_.statements) {
      for (const auto& object : statement.objects) {
        if (std::find(phrases_.begin(), phrases_.end(), object) == phrases_.end()) phrases_.push_back(object);
      }
    }
    started = std::chrono::steady_clock::now();
    queries_ = models_.locator->embed_queries(phrases_, call);
    queries_ms_ = elapsed_ms(started);
  }
}

nlohmann::json StatementScorer::score_image(const Image& image, const nlohmann::json& image_fields,
                                            const nlohmann::json& timings_ms, const CallContext& call) const {
  using Clock = std::chrono::steady_clock;
  const VisionLanguageModel& vlm = *models_.vlm;
  const Thresholds& thresholds = setup_.thresholds;

  auto started = Clock::now();
  const auto context = vlm.prepare(image, call);
  const double prepare_ms = elapsed_ms(started);

  started = Clock::now();
  const std::vector<double> scores = vlm.score(context.get(), questions_, setup_.answers, call);
  const double scoring_ms = elapsed_ms(started);
  if (scores.size() != questions_.size()) {
    throw Error(ErrorCode::Backend, fmt::format("{} returned {} scores for {} questions", vlm.model_id(),
                                                scores.size(), questions_.size()));
  }

  nlohmann::json results = nlohmann::json::array();
  for (std::size_t i = 0; i < questions_.size(); ++i) {
    results.push_back({{"statement", questions_[i].statement},
                       {"prompt", questions_[i].prompt},
                       {"score", scores[i]},
                       {"prior", priors_[i]},
                       {"decision", strategy1_decision(scores[i], priors_[i], thresholds)}});
  }

  // Strategy 2 for the statements that name objects.
  nlohmann::json notes = nlohmann::json::array();
  double locate_ms = queries_ms_, region_ms = 0;
  if (names_objects_ && !models_.locator) {
    notes.push_back("strategy 2 off: statements name objects but no locator is loaded (--locator-model DIR)");
  } else if (!names_objects_ && setup_.locator_requested) {
    notes.push_back("strategy 2 off: no statement names objects (JSON lines with \"objects\")");
  } else if (names_objects_) {
    started = Clock::now();
    const auto located_image = models_.locator->prepare(image, call);
    locate_ms += elapsed_ms(started);
    for (std::size_t i = 0; i < setup_.statements.size(); ++i) {
      const ScoreStatement& statement = setup_.statements[i];
      if (statement.objects.empty()) continue;
      std::vector<std::size_t> which;
      for (const auto& object : statement.objects) {
        which.push_back(static_cast<std::size_t>(std::find(phrases_.begin(), phrases_.end(), object) - phrases_.begin()));
      }
      started = Clock::now();
      const auto found = models_.locator->locate(*located_image, *queries_, which, thresholds.locator_confidence, call);
      locate_ms += elapsed_ms(started);
      results[i]["objects"] = statement.objects;
      const auto chosen = core::choose_region(found, image, thresholds);
      if (!chosen) {
        results[i]["region"] = nullptr;
        continue;
      }
      started = Clock::now();
      const Box& box = chosen->detection.box;
      const Image edited = chosen->crop ? crop_region(image, box) : erase_region(image, box);
      const double region_score = vlm.score(vlm.prepare(edited, call).get(), {questions_[i]}, setup_.answers, call).at(0);
      region_ms += elapsed_ms(started);
      const char* decision = chosen->crop ? strategy1_decision(region_score, priors_[i], thresholds)
                             : scores[i] - region_score > thresholds.region_delta ? "accept"
                                                                                    : "uncertain";
      results[i]["region"] = {{"phrase", statement.objects[chosen->query]},
                              {"box", {box.x0, box.y0, box.x1, box.y1}},
                              {"confidence", chosen->detection.confidence},
                              {"area_fraction", chosen->area_fraction},
                              {"action", chosen->crop ? "crop" : "erase"},
                              {"score", region_score},
                              {"decision", decision}};
    }
  }

  nlohmann::json image_object = image_fields.is_object() ? image_fields : nlohmann::json::object();
  image_object["hash"] = "sha256:" + image.content_hash();
  image_object["width"] = image.width;
  image_object["height"] = image.height;
  nlohmann::json timings = timings_ms.is_object() ? timings_ms : nlohmann::json::object();
  timings["prepare"] = prepare_ms;
  timings["scoring"] = scoring_ms;
  timings["priors"] = priors_ms_;
  timings["locate"] = locate_ms;
  timings["region"] = region_ms;
  const auto& constitution = setup_.constitution;
  return {
      {"schema", "imgjudge.score/1"},
      {"model", vlm.model_id()},
      {"answer_tokens", vlm.describe_answer_tokens(setup_.answers)},
      {"answer_spellings", answer_spellings_name(setup_.answers.spellings)},
      {"image", image_object},
      {"locator", models_.locator ? nlohmann::json(models_.locator->model_id()) : nlohmann::json(nullptr)},
      {"constitution", constitution ? nlohmann::json{{"name", constitution->name},
                                                     {"version", constitution->version},
                                                     {"hash", constitution->hash}}
                                    : nlohmann::json(nullptr)},
      {"rule", setup_.rule_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(setup_.rule_id)},
      {"template", setup_.question_template},
      {"thresholds",
       {{"reject_factor", thresholds.reject_factor},
        {"accept_factor", thresholds.accept_factor},
        {"region_delta", thresholds.region_delta},
        {"locator_confidence", thresholds.locator_confidence},
        {"small_region_fraction", thresholds.small_region_fraction}}},
      {"questions", results},
      {"notes", notes},
      {"timings_ms", timings},
  };
}

}  // namespace imgjudge::tools
