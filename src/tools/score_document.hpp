// The score document: what a vision-language model answers to precondition
// statements about one image (M(x,c), the language prior m0, the paper's
// strategy-1 decision, and strategy 2's evidence for statements that name
// central objects), so a rule author sees it before writing a rule. Written by
// `imgjudge score` (one document per --image) and `imgjudge serve`'s
// POST /v1/score (one per request); schema "imgjudge.score/1".
//
// Talks to models only through the backend interfaces: no libtorch here.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"

namespace imgjudge::tools {

/// One batched score() call holds every question's KV cache at once: the count
/// and sizes are bounded so a wrong file or request cannot exhaust memory.
inline constexpr std::size_t kMaxScoreStatements = 256;
inline constexpr std::size_t kMaxScoreQuestionsBytes = 1u << 20;
inline constexpr std::size_t kMaxScoreStatementBytes = 4096;
inline constexpr std::size_t kMaxScoreObjectsPerStatement = 16;

/// A statement to ask about, with its central object words for strategy 2 (maybe none).
struct ScoreStatement {
  std::string text;
  std::vector<std::string> objects;
};

/// The statements of a questions text: one statement per line (blank lines and
/// lines starting with '#' skipped), or JSON lines {"statement": "...",
/// "objects": ["..."]}. Errors name `source` and the line:
/// Error(InvalidArgument) for malformed lines or no statement at all,
/// Error(LimitExceeded) past the limits above.
std::vector<ScoreStatement> parse_score_statements(const std::string& text, const std::string& source);

/// The statements a rule asks: every chain item's alternatives with the item's
/// objects, or its objective text for a rule without a chain.
std::vector<ScoreStatement> rule_statements(const Rule& rule);

/// Strategy 1 of the paper, the Judge's rule: "accept", "reject" or "uncertain".
const char* strategy1_decision(double score, double prior, const Thresholds& thresholds);

/// What to ask and how: the Judge's template, thresholds and answer spellings
/// of a rule, of a constitution's defaults, or the library defaults.
struct ScoreSetup {
  std::vector<ScoreStatement> statements;
  std::string question_template = QuestionTemplates{}.score;  ///< Contains {statement}.
  Thresholds thresholds;
  AnswerWords answers;
  std::optional<Constitution> constitution;  ///< Named in the document (name, version, hash).
  std::string rule_id;                       ///< The rule asked as, or empty.
  /// A locator folder was asked for: a note says so when no statement names objects.
  bool locator_requested = false;
};

/// Asks the setup's statements about images. The image-independent work (m0 of
/// every statement, the locator's phrase embeddings) is done once, at
/// construction. Immutable afterwards; score_image() is safe from many threads
/// as the backends are.
class StatementScorer {
 public:
  /// Error(InvalidArgument) without a vision-language model or statements,
  /// Error(Unsupported) for a model that cannot score without an image (no m0),
  /// Error(Backend) for a model that answers the wrong number of priors.
  StatementScorer(Models models, ScoreSetup setup, const CallContext& call);

  /// The document of one image (schema "imgjudge.score/1"). `image_fields` are
  /// put into its "image" object beside hash, width and height (e.g. "file");
  /// `timings_ms` beside the scorer's own timings (prepare, scoring, priors,
  /// locate, region), e.g. the caller's "decode" and "load".
  nlohmann::json score_image(const Image& image, const nlohmann::json& image_fields, const nlohmann::json& timings_ms,
                             const CallContext& call) const;

  const ScoreSetup& setup() const noexcept { return setup_; }
  const VisionLanguageModel& vlm() const noexcept { return *models_.vlm; }

 private:
  Models models_;
  ScoreSetup setup_;
  std::vector<Question> questions_;
  std::vector<double> priors_;
  double priors_ms_ = 0;
  bool names_objects_ = false;
  std::vector<std::string> phrases_;  ///< Every object word once, in order of first use.
  std::shared_ptr<const LocatorQueries> queries_;
  double queries_ms_ = 0;
};

}  // namespace imgjudge::tools
