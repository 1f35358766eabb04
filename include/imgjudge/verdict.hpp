// imgjudge: the verdict on one image, and its stable JSON form (docs/verdict-json.md).
#pragma once

#include "imgjudge/export.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "imgjudge/constitution.hpp"

namespace imgjudge {

enum class Decision {
  Safe,    ///< No rule is violated and none needs review.
  Unsafe,  ///< At least one rule is violated.
  Review,  ///< None is violated, but a rule stayed uncertain under `uncertain = "review"`: route to a person.
};
IMGJUDGE_API const char* decision_name(Decision decision) noexcept;  ///< "safe" / "unsafe" / "review"

/// The outcome of one precondition (chain item).
enum class ItemOutcome {
  Accepted,      ///< The item holds.
  Rejected,      ///< The item does not hold: the rule is not violated.
  Uncertain,     ///< Still undecided after every enabled stage (the rule's `uncertain` policy decides).
  NotEvaluated,  ///< Skipped by early exit after an earlier item was rejected.
};
IMGJUDGE_API const char* item_outcome_name(ItemOutcome outcome) noexcept;

/// Which stage of the method decided an item.
enum class Stage {
  None,       ///< Not evaluated.
  Prior,      ///< Strategy 1: score against the language prior m0.
  Direct,     ///< Debiasing off: score compared with 0.5.
  Region,     ///< Strategy 2: score with the central object removed (or its crop).
  Reasoning,  ///< Cascaded chain-of-thought.
  Undecided,  ///< No stage could decide (e.g. cascade off).
};
IMGJUDGE_API const char* stage_name(Stage stage) noexcept;

/// What strategy 2 did for a statement: the central object the locator found
/// and the image without it (or its crop, for an object under
/// Thresholds::small_region_fraction of the image).
struct RegionEvidence {
  std::string phrase;          ///< The item's object word the box was found for.
  Box box;                     ///< In the image's pixels.
  double confidence = 0;       ///< The locator's confidence in the box.
  double area_fraction = 0;    ///< The box's share of the image's area.
  bool cropped = false;        ///< True: judged on the crop; false: judged with the box erased.
  double score = 0;            ///< M(x without the region, c), or M(crop, c).
};

/// Scores of one statement of an item (an item is an OR of statements).
struct StatementScore {
  std::string statement;
  double score = 0;  ///< M(x, c): P(yes)/(P(yes)+P(no)) with the image.
  double prior = 0;  ///< m0 = M(None, c): the same question without the image.
  std::optional<double> region_score;  ///< M(x without the central object, c), strategy 2.
  std::optional<double> crop_score;    ///< M(crop of a small central object, c), strategy 2.
  std::optional<RegionEvidence> region;  ///< What strategy 2 located and asked, when it ran.
  ItemOutcome outcome = ItemOutcome::NotEvaluated;
  Stage decided_by = Stage::None;
  std::string rationale;  ///< From cascaded reasoning, if it ran.
};

struct ItemResult {
  ItemOutcome outcome = ItemOutcome::NotEvaluated;
  Stage decided_by = Stage::None;
  std::vector<StatementScore> statements;  ///< One per OR alternative.
  int deciding_statement = -1;  ///< Index into statements of the accepted one, or -1.
};

struct RuleResult {
  std::string id;
  std::string category;
  Severity severity = Severity::High;
  std::optional<double> relevance;  ///< Best cosine over the rule's relevance texts.
  bool judged = false;    ///< False if relevance scanning skipped the rule.
  /// Every chain item accepted, the violation score at the rule's
  /// score_threshold, or the chain uncertain under `uncertain = "unsafe"`.
  bool violated = false;
  /// No item rejected and at least one uncertain: the rule's `uncertain` policy applied.
  bool uncertain = false;
  /// Uncertain under `uncertain = "review"` (and not violated): a person should look.
  bool review = false;
  /// In [0, 1]: the weakest item's evidence (accepted 1, rejected or not
  /// evaluated 0, uncertain the best statement's (M - m0) / (1 - m0) clamped to
  /// [0, 1]); 0 for a rule that was not judged. docs/verdict-json.md.
  double score = 0;
  std::vector<ItemResult> items;
};

/// Wall-clock milliseconds per stage of one call.
struct StageTimings {
  double decode_ms = 0;
  double relevance_ms = 0;
  double prepare_ms = 0;
  double scoring_ms = 0;
  double region_ms = 0;   ///< Strategy 2, locating included.
  double locate_ms = 0;   ///< Of which: encoding the image for the locator and locating (0 when no item needed it).
  double reasoning_ms = 0;
  double total_ms = 0;
};

/// For an animated image: which frames were judged and which one the verdict is.
struct AnimationInfo {
  int frame_count = 0;              ///< Frames in the file.
  std::vector<int> judged_frames;   ///< 0-based, in order (DecodeOptions::animation).
  int frame = 0;                    ///< The frame this verdict is about: the worst one.
};

struct IMGJUDGE_API Verdict {
  Decision decision = Decision::Safe;
  std::vector<std::string> violated_rules;  ///< Rule ids, in constitution order.
  std::vector<std::string> review_rules;    ///< Rules that need review, in constitution order.
  /// Per category (in order of first appearance): the highest score of its rules.
  std::vector<std::pair<std::string, double>> category_scores;
  std::vector<RuleResult> rules;            ///< One per rule, in constitution order.
  StageTimings timings;
  int questions_scored = 0;  ///< Yes/no questions asked (with an image).
  int reasoning_calls = 0;   ///< Cascaded reasoning conversations run.
  std::vector<std::string> notes;  ///< e.g. "strategy 2 skipped: no locator configured".
  std::string image_hash;          ///< Image::content_hash().
  int image_width = 0, image_height = 0;
  std::string constitution_name, constitution_version, constitution_hash;
  std::string vlm_model_id, relevance_model_id, locator_model_id;
  std::string answer_tokens;  ///< VisionLanguageModel::describe_answer_tokens().
  /// Which answer tokens counted: "exact" (the paper's M(x,c)) or "any" (every
  /// single-token spelling); the constitution's [defaults] answer_spellings.
  std::string answer_spellings = "exact";
  /// Set for an animated GIF/WebP: the verdict is its worst judged frame's
  /// (unsafe over review over safe, then the highest rule score, then the earliest).
  std::optional<AnimationInfo> animation;

  bool unsafe() const noexcept { return decision == Decision::Unsafe; }
  const RuleResult* find_rule(const std::string& id) const noexcept;
  bool needs_review() const noexcept { return decision == Decision::Review; }
  /// The stable JSON form (one line, schema "imgjudge.verdict/2").
  std::string to_json() const;
};

}  // namespace imgjudge
