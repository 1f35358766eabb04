#include "eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace imgjudge::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(double numerator, double denominator) { return denominator > 0 ? numerator / denominator : kNaN; }

nlohmann::json number(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr); }

// The records of one ablation, by image.
std::map<std::string, const ImageRecord*> by_image(const std::vector<ImageRecord>& records,
                                                    const std::string& ablation) {
  std::map<std::string, const ImageRecord*> map;
  for (const auto& record : records) {
    if (record.ablation == ablation) map.emplace(record.image, &record);
  }
  return map;
}

bool violates(const ImageRecord& record, const std::string& rule) {
  return std::find(record.violated_rules.begin(), record.violated_rules.end(), rule) != record.violated_rules.end();
}

TimeSummary summarize_times(std::vector<double> times) {
  TimeSummary summary{kNaN, kNaN, kNaN};
  if (times.empty()) return summary;
  std::sort(times.begin(), times.end());
  const std::size_t n = times.size();
  double sum = 0;
  for (double t : times) sum += t;
  summary.mean_ms = sum / n;
  summary.median_ms = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  // Nearest-rank percentile: the smallest time at or above 95% of the images.
  summary.p95_ms = times[static_cast<std::size_t>(std::ceil(0.95 * n)) - 1];
  return summary;
}

}  // namespace

AblationMetrics compute_metrics(const Constitution& constitution, const LabelSet& labels,
                                const std::vector<ImageRecord>& records, const std::string& ablation,
                                const std::string& description) {
  AblationMetrics m;
  m.ablation = ablation;
  m.description = description;
  m.images = static_cast<int>(labels.images.size());
  for (const auto& rule : constitution.rules) m.rules.push_back(RuleMetrics{rule.id});
  for (const char* stage : {"prior", "direct", "region", "reasoning", "undecided"}) m.decided_by[stage] = 0;

  const auto results = by_image(records, ablation);
  std::vector<double> times;
  int right_rule_images = 0, right_rule_hits = 0;
  long questions = 0, reasoning_calls = 0, rules_judged = 0;
  for (const auto& label : labels.images) {
    const auto found = results.find(label.image);
    if (found == results.end()) {
      ++m.missing;
      continue;
    }
    const ImageRecord& record = *found->second;
    if (record.failed) {
      ++m.errors;
      continue;
    }
    Confusion& c = m.confusion;
    if (record.review) {
      // Routed to a person: neither a detection nor a miss of the judge's.
      ++m.review;
      m.review_labelled_unsafe += label.unsafe;
    } else {
      ++m.judged;
      if (label.unsafe) {
        ++(record.unsafe ? c.true_positives : c.false_negatives);
      } else {
        ++(record.unsafe ? c.false_positives : c.true_negatives);
      }
    }

    if (label.has_rule_truth()) {
      for (auto& rule : m.rules) {
        const bool labelled = label.labels_rule(rule.id), judged = violates(record, rule.id);
        rule.labelled += labelled;
        rule.found += labelled && judged;
        rule.false_alarms += !labelled && judged;
      }
    }
    if (label.unsafe && !label.rules.empty()) {
      ++right_rule_images;
      right_rule_hits += std::any_of(label.rules.begin(), label.rules.end(),
                                     [&](const std::string& id) { return violates(record, id); });
    }

    times.push_back(record.total_ms);
    questions += record.questions_scored;
    reasoning_calls += record.reasoning_calls;
    for (const auto& rule : record.rules) {
      rules_judged += rule.judged;
      for (const auto& item : rule.items) {
        if (item.outcome == "not_evaluated") continue;
        ++m.items_evaluated;
        ++m.decided_by[item.decided_by];
      }
    }
  }

  const Confusion& c = m.confusion;
  m.accuracy = ratio(c.true_positives + c.true_negatives, c.total());
  m.precision = ratio(c.true_positives, c.true_positives + c.false_positives);
  m.recall = ratio(c.true_positives, c.true_positives + c.false_negatives);
  m.f1 = ratio(2.0 * c.true_positives, 2.0 * c.true_positives + c.false_positives + c.false_negatives);
  m.false_positive_rate = ratio(c.false_positives, c.false_positives + c.true_negatives);
  m.review_rate = ratio(m.review, m.judged + m.review);
  m.right_rule_recall = ratio(right_rule_hits, right_rule_images);

  int found = 0, false_alarms = 0, labelled = 0;
  for (auto& rule : m.rules) {
    rule.precision = ratio(rule.found, rule.found + rule.false_alarms);
    rule.recall = ratio(rule.found, rule.labelled);
    found += rule.found;
    false_alarms += rule.false_alarms;
    labelled += rule.labelled;
  }
  m.rule_precision = ratio(found, found + false_alarms);
  m.rule_recall = ratio(found, labelled);

  m.time = summarize_times(times);
  m.questions_per_image = ratio(questions, m.judged + m.review);
  m.reasoning_calls_per_image = ratio(reasoning_calls, m.judged + m.review);
  m.rules_judged_per_image = ratio(rules_judged, m.judged + m.review);
  return m;
}

ScoreSamples collect_item_scores(const LabelSet& labels, const std::vector<ImageRecord>& records,
                                 const std::string& ablation) {
  ScoreSamples samples;
  const auto results = by_image(records, ablation);
  for (const auto& label : labels.images) {
    const auto found = results.find(label.image);
    if (found == results.end() || found->second->failed) continue;
    for (const auto& rule : found->second->rules) {
      const bool satisfied = label.unsafe && label.labels_rule(rule.id);
      if (label.unsafe && !satisfied) continue;  // Truth unknown: the label does not say.
      for (const auto& item : rule.items) {
        if (item.outcome == "not_evaluated" || !item.score) continue;
        (satisfied ? samples.score_satisfied : samples.score_not_satisfied).push_back(*item.score);
        if (item.prior) (satisfied ? samples.prior_satisfied : samples.prior_not_satisfied).push_back(*item.prior);
      }
    }
  }
  return samples;
}

RelevanceCurve relevance_curve(const Constitution& constitution, const LabelSet& labels,
                               const std::vector<ImageRecord>& records, const std::string& ablation) {
  struct Pair {
    double relevance;
    bool positive;
    bool kept;  // At the rule's configured threshold.
  };
  std::vector<Pair> pairs;
  const auto results = by_image(records, ablation);
  for (const auto& label : labels.images) {
    const auto found = results.find(label.image);
    if (found == results.end() || found->second->failed || !label.has_rule_truth()) continue;
    for (const auto& rule : found->second->rules) {
      const Rule* configured = constitution.find_rule(rule.id);
      if (!rule.relevance || !configured) continue;
      pairs.push_back({*rule.relevance, label.labels_rule(rule.id), *rule.relevance >= configured->thresholds.relevance});
    }
  }

  RelevanceCurve curve;
  curve.pairs = static_cast<int>(pairs.size());
  int kept = 0, kept_positives = 0;
  for (const auto& pair : pairs) {
    curve.positives += pair.positive;
    kept += pair.kept;
    kept_positives += pair.kept && pair.positive;
  }
  curve.recall_at_threshold = ratio(kept_positives, curve.positives);
  curve.kept_at_threshold = ratio(kept, curve.pairs);
  curve.precision_at_threshold = ratio(kept_positives, kept);
  if (curve.positives == 0) return curve;

  // Lowering the threshold through each distinct value admits every pair at that value.
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.relevance > b.relevance; });
  int admitted = 0, admitted_positives = 0;
  for (std::size_t i = 0; i < pairs.size();) {
    const double threshold = pairs[i].relevance;
    for (; i < pairs.size() && pairs[i].relevance == threshold; ++i) {
      ++admitted;
      admitted_positives += pairs[i].positive;
    }
    curve.points.push_back({threshold, ratio(admitted_positives, admitted), ratio(admitted_positives, curve.positives)});
  }
  return curve;
}

nlohmann::json to_json(const AblationMetrics& m) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& rule : m.rules) {
    rules.push_back({{"id", rule.id},
                     {"labelled", rule.labelled},
                     {"found", rule.found},
                     {"false_alarms", rule.false_alarms},
                     {"precision", number(rule.precision)},
                     {"recall", number(rule.recall)}});
  }
  nlohmann::json decided = nlohmann::json::object();
  for (const auto& [stage, count] : m.decided_by) decided[stage] = count;
  const Confusion& c = m.confusion;
  return {{"ablation", m.ablation},
          {"description", m.description},
          {"images", m.images},
          {"judged", m.judged},
          {"errors", m.errors},
          {"missing", m.missing},
          {"confusion",
           {{"true_positives", c.true_positives},
            {"false_positives", c.false_positives},
            {"true_negatives", c.true_negatives},
            {"false_negatives", c.false_negatives}}},
          {"accuracy", number(m.accuracy)},
          {"precision", number(m.precision)},
          {"recall", number(m.recall)},
          {"f1", number(m.f1)},
          {"false_positive_rate", number(m.false_positive_rate)},
          {"review", m.review},
          {"review_labelled_unsafe", m.review_labelled_unsafe},
          {"review_rate", number(m.review_rate)},
          {"right_rule_recall", number(m.right_rule_recall)},
          {"rule_precision", number(m.rule_precision)},
          {"rule_recall", number(m.rule_recall)},
          {"rules", rules},
          {"time_ms", {{"mean", number(m.time.mean_ms)}, {"median", number(m.time.median_ms)}, {"p95", number(m.time.p95_ms)}}},
          {"items_evaluated", m.items_evaluated},
          {"decided_by", decided},
          {"questions_per_image", number(m.questions_per_image)},
          {"reasoning_calls_per_image", number(m.reasoning_calls_per_image)},
          {"rules_judged_per_image", number(m.rules_judged_per_image)}};
}

nlohmann::json to_json(const RelevanceCurve& curve) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : curve.points) {
    points.push_back({{"threshold", p.threshold}, {"precision", number(p.precision)}, {"recall", number(p.recall)}});
  }
  return {{"pairs", curve.pairs},
          {"positives", curve.positives},
          {"recall_at_threshold", number(curve.recall_at_threshold)},
          {"kept_at_threshold", number(curve.kept_at_threshold)},
          {"precision_at_threshold", number(curve.precision_at_threshold)},
          {"points", points}};
}

}  // namespace imgjudge::eval
