// Metrics of one ablation's results against the labels (definitions: docs/evaluation.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/labels.hpp"
#include "eval/results.hpp"

namespace imgjudge::eval {

/// Image-level confusion matrix; "positive" means unsafe.
struct Confusion {
  int true_positives = 0;   ///< Labelled unsafe, judged unsafe.
  int false_positives = 0;  ///< Labelled safe, judged unsafe.
  int true_negatives = 0;   ///< Labelled safe, judged safe.
  int false_negatives = 0;  ///< Labelled unsafe, judged safe.
  int total() const { return true_positives + false_positives + true_negatives + false_negatives; }
};

/// Per-rule detection over the images whose label says which rules they violate.
struct RuleMetrics {
  std::string id;
  int labelled = 0;      ///< Images labelled as violating the rule.
  int found = 0;         ///< ... that the judge found violating it (hits).
  int false_alarms = 0;  ///< Images judged to violate it that are not labelled so.
  double precision = 0;  ///< found / (found + false_alarms); NaN if the rule never fired.
  double recall = 0;     ///< found / labelled; NaN if no image is labelled with it.
};

struct TimeSummary {
  double mean_ms = 0, median_ms = 0, p95_ms = 0;  ///< Of Verdict total_ms; NaN if no verdict.
};

struct AblationMetrics {
  std::string ablation, description;
  int images = 0;   ///< Labelled images.
  int judged = 0;   ///< With a verdict (these make up the confusion matrix).
  int errors = 0;   ///< Recorded with an error.
  int missing = 0;  ///< Not in the results file.
  int review = 0;                 ///< Judged "review" (not in the confusion matrix).
  int review_labelled_unsafe = 0; ///< ... of which labelled unsafe.
  double review_rate = 0;         ///< review / (judged + review); NaN without verdicts.
  Confusion confusion;
  // Ratios are NaN when their denominator is 0 (reported as null).
  double accuracy = 0, precision = 0, recall = 0, f1 = 0, false_positive_rate = 0;
  /// Of the judged unsafe images labelled with rules: the share judged unsafe for at least
  /// one of their labelled rules (image-level recall where only the right rule counts).
  double right_rule_recall = 0;
  /// Per-rule totals summed over rules (micro average).
  double rule_precision = 0, rule_recall = 0;
  std::vector<RuleMetrics> rules;  ///< Constitution order.
  TimeSummary time;
  /// Evaluated chain items (outcome other than not_evaluated) by the stage that decided
  /// them: prior, direct, region, reasoning, undecided.
  std::map<std::string, int> decided_by;
  int items_evaluated = 0;
  double questions_per_image = 0, reasoning_calls_per_image = 0, rules_judged_per_image = 0;
};

AblationMetrics compute_metrics(const Constitution& constitution, const LabelSet& labels,
                                const std::vector<ImageRecord>& records, const std::string& ablation,
                                const std::string& description = "");

/// Item scores split by item-level ground truth, derived from image labels: every
/// evaluated item of a rule labelled violated in an unsafe image is "satisfied"; every
/// evaluated item of every rule in a safe image is "not satisfied"; items of the other
/// rules of unsafe images are left out (their truth is unknown).
struct ScoreSamples {
  std::vector<double> score_satisfied, score_not_satisfied;  ///< M(x,c)
  std::vector<double> prior_satisfied, prior_not_satisfied;  ///< m0
};
ScoreSamples collect_item_scores(const LabelSet& labels, const std::vector<ImageRecord>& records,
                                 const std::string& ablation);

/// Relevance scanning as a detector of (image, rule) pairs that are violations, over the
/// images whose label gives rule-level truth and the rules with a relevance value.
struct PrPoint {
  double threshold = 0, precision = 0, recall = 0;
};
struct RelevanceCurve {
  int pairs = 0;      ///< (image, rule) pairs with a relevance value.
  int positives = 0;  ///< ... of which labelled violations.
  std::vector<PrPoint> points;  ///< One per distinct relevance value, highest threshold first.
  /// With each rule's configured threshold: share of labelled violations that scanning
  /// keeps (recall; a lost one can never be found), and share of all pairs kept (cost).
  double recall_at_threshold = 0, kept_at_threshold = 0;
  /// Share of the kept pairs that are labelled violations.
  double precision_at_threshold = 0;
};
RelevanceCurve relevance_curve(const Constitution& constitution, const LabelSet& labels,
                               const std::vector<ImageRecord>& records, const std::string& ablation);

nlohmann::json to_json(const AblationMetrics& metrics);
nlohmann::json to_json(const RelevanceCurve& curve);

}  // namespace imgjudge::eval
