#include "eval/report.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>

#include "eval/plots.hpp"
#include "imgjudge/error.hpp"
#include "util/files.hpp"

namespace imgjudge::eval {
namespace {

std::string ratio_text(double value) { return std::isfinite(value) ? fmt::format("{:.3f}", value) : "–"; }
std::string ms_text(double value) { return std::isfinite(value) ? fmt::format("{:.1f}", value) : "–"; }
std::string per_image_text(double value) { return std::isfinite(value) ? fmt::format("{:.2f}", value) : "–"; }

// A Markdown table: one row per metric, one column per ablation.
void metric_rows(std::string& out, const std::vector<AblationMetrics>& metrics,
                 const std::vector<std::pair<std::string, std::function<std::string(const AblationMetrics&)>>>& rows) {
  out += "| |";
  for (const auto& m : metrics) out += fmt::format(" {} |", m.description.empty() ? m.ablation : m.description);
  out += "\n|---|";
  for (std::size_t i = 0; i < metrics.size(); ++i) out += "---:|";
  out += "\n";
  for (const auto& [name, cell] : rows) {
    out += fmt::format("| {} |", name);
    for (const auto& m : metrics) out += fmt::format(" {} |", cell(m));
    out += "\n";
  }
  out += "\n";
}

}  // namespace

std::string render_report(const ReportInput& input, const PlotFiles& plots) {
  const Constitution& constitution = *input.constitution;
  const LabelSet& labels = *input.labels;
  const auto& metrics = input.metrics;
  int unsafe = 0, with_rules = 0;
  for (const auto& image : labels.images) {
    unsafe += image.unsafe;
    with_rules += image.unsafe && !image.rules.empty();
  }

  std::string out;
  out += fmt::format("# Evaluation of constitution '{}' {}\n\n", constitution.name, constitution.version);
  out += fmt::format("- constitution: `{}` ({})\n", constitution.source, constitution.hash);
  out += fmt::format("- labels: `{}`: {} images, {} unsafe ({} with violated rules named), {} safe\n", labels.source,
                     labels.images.size(), unsafe, with_rules, labels.images.size() - unsafe);
  out += input.results_path.empty() ? std::string("- results: kept in memory for this run only\n")
                                    : fmt::format("- results: `{}`\n", input.results_path);
  const auto model = [](const std::string& id) { return id.empty() ? std::string("none") : "`" + id + "`"; };
  out += fmt::format("- models: vision-language {}, relevance {}, locator {} (backend `{}`, dtype `{}`)\n",
                     model(input.models.vlm), model(input.models.relevance), model(input.models.locator),
                     input.models.backend, input.models.dtype);
  out += "- definitions of every number: docs/evaluation.md\n\n";

  out += "## Image-level results\n\n";
  metric_rows(out, metrics,
              {{"accuracy", [](const AblationMetrics& m) { return ratio_text(m.accuracy); }},
               {"precision", [](const AblationMetrics& m) { return ratio_text(m.precision); }},
               {"recall", [](const AblationMetrics& m) { return ratio_text(m.recall); }},
               {"F1", [](const AblationMetrics& m) { return ratio_text(m.f1); }},
               {"false-positive rate", [](const AblationMetrics& m) { return ratio_text(m.false_positive_rate); }},
               {"review rate (of which labelled unsafe)",
                [](const AblationMetrics& m) {
                  return fmt::format("{} ({})", ratio_text(m.review_rate), m.review_labelled_unsafe);
                }},
               {"recall, right rule only", [](const AblationMetrics& m) { return ratio_text(m.right_rule_recall); }},
               {"rule precision (micro)", [](const AblationMetrics& m) { return ratio_text(m.rule_precision); }},
               {"rule recall (micro)", [](const AblationMetrics& m) { return ratio_text(m.rule_recall); }},
               {"judged / errors / missing",
                [](const AblationMetrics& m) { return fmt::format("{} / {} / {}", m.judged, m.errors, m.missing); }}});

  out += "## Confusion matrices\n\nPositive = unsafe. Images that raised an error or were routed to review are not "
         "counted (the review rate is above).\n\n";
  out += "| | labelled unsafe, judged unsafe (TP) | labelled safe, judged unsafe (FP) | labelled safe, judged safe (TN) "
         "| labelled unsafe, judged safe (FN) |\n|---|---:|---:|---:|---:|\n";
  for (const auto& m : metrics) {
    const Confusion& c = m.confusion;
    out += fmt::format("| {} | {} | {} | {} | {} |\n", m.description.empty() ? m.ablation : m.description,
                       c.true_positives, c.false_positives, c.true_negatives, c.false_negatives);
  }
  out += "\n";

  out += "## Per rule\n\nPrecision / recall per rule; a hit counts only if the judge found the labelled rule. ";
  out += "Counted over the safe images and the unsafe images whose label names their rules.\n\n";
  out += "| rule | labelled |";
  for (const auto& m : metrics) out += fmt::format(" {} |", m.description.empty() ? m.ablation : m.description);
  out += "\n|---|---:|";
  for (std::size_t i = 0; i < metrics.size(); ++i) out += "---:|";
  out += "\n";
  for (std::size_t r = 0; r < constitution.rules.size(); ++r) {
    out += fmt::format("| `{}` | {} |", constitution.rules[r].id, metrics.front().rules[r].labelled);
    for (const auto& m : metrics) {
      out += fmt::format(" {} / {} |", ratio_text(m.rules[r].precision), ratio_text(m.rules[r].recall));
    }
    out += "\n";
  }
  out += "\n";

  out += "## Cost and stages\n\n";
  std::vector<std::pair<std::string, std::function<std::string(const AblationMetrics&)>>> cost_rows{
      {"ms per image, mean", [](const AblationMetrics& m) { return ms_text(m.time.mean_ms); }},
      {"ms per image, median", [](const AblationMetrics& m) { return ms_text(m.time.median_ms); }},
      {"ms per image, p95", [](const AblationMetrics& m) { return ms_text(m.time.p95_ms); }},
      {"rules judged per image", [](const AblationMetrics& m) { return per_image_text(m.rules_judged_per_image); }},
      {"questions per image", [](const AblationMetrics& m) { return per_image_text(m.questions_per_image); }},
      {"cascade (reasoning) calls per image",
       [](const AblationMetrics& m) { return per_image_text(m.reasoning_calls_per_image); }},
      {"chain items evaluated", [](const AblationMetrics& m) { return std::to_string(m.items_evaluated); }}};
  for (const char* stage : {"prior", "direct", "region", "reasoning", "undecided"}) {
    cost_rows.push_back({fmt::format("items decided by `{}`", stage), [stage](const AblationMetrics& m) {
                           const int count = m.decided_by.count(stage) ? m.decided_by.at(stage) : 0;
                           if (m.items_evaluated == 0) return std::to_string(count);
                           return fmt::format("{} ({:.0f}%)", count, 100.0 * count / m.items_evaluated);
                         }});
  }
  metric_rows(out, metrics, cost_rows);

  const RelevanceCurve& rel = input.relevance;
  out += "## Relevance scanning\n\n";
  if (rel.pairs == 0) {
    out += "No relevance values in the results (no relevance model, or scanning switched off).\n\n";
  } else {
    out += fmt::format(
        "Over {} (image, rule) pairs with rule-level labels, {} of them labelled violations. With the constitution's "
        "thresholds, scanning keeps {} of all pairs and {} of the violations (recall; a violation it drops can never "
        "be found); precision of the kept pairs {}.\n\n",
        rel.pairs, rel.positives, ratio_text(rel.kept_at_threshold), ratio_text(rel.recall_at_threshold),
        ratio_text(rel.precision_at_threshold));
    if (!plots.relevance.empty()) out += fmt::format("![relevance precision/recall]({})\n\n", plots.relevance);
  }

  out += "## Score distributions (full method)\n\n";
  out += "Item-level truth comes from the image labels: the chain items of a rule labelled violated in an unsafe image "
         "are *satisfied*; the items of every rule in a safe image are *not satisfied*; the other rules of unsafe "
         "images are left out. Each evaluated item contributes its most likely alternative's M(x,c) and m0.\n\n";
  const ScoreSamples& s = input.scores;
  out += fmt::format("| | satisfied | not satisfied |\n|---|---:|---:|\n| items with M(x,c) | {} | {} |\n"
                     "| items with m0 | {} | {} |\n\n",
                     s.score_satisfied.size(), s.score_not_satisfied.size(), s.prior_satisfied.size(),
                     s.prior_not_satisfied.size());
  if (!plots.score.empty()) out += fmt::format("![M(x,c) distribution]({})\n\n", plots.score);
  if (!plots.prior.empty()) out += fmt::format("![m0 distribution]({})\n\n", plots.prior);
  if (plots.score.empty() && plots.prior.empty()) out += "No scored items to plot.\n\n";
  return out;
}

std::string write_report(const std::string& dir, const ReportInput& input) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::Io, fmt::format("{}: cannot create the report folder: {}", dir, ec.message()));

  PlotFiles plots;
  const ScoreSamples& s = input.scores;
  if (!s.score_satisfied.empty() || !s.score_not_satisfied.empty()) {
    plots.score = "scores_M.png";
    plot_score_histograms(util::join_path(dir, plots.score), "M(x,c) of chain items, full method", "M(x,c)",
                          s.score_satisfied, s.score_not_satisfied);
  }
  if (!s.prior_satisfied.empty() || !s.prior_not_satisfied.empty()) {
    plots.prior = "scores_m0.png";
    plot_score_histograms(util::join_path(dir, plots.prior), "language prior m#d0#u of chain items, full method",
                          "m#d0#u = M(None,c)", s.prior_satisfied, s.prior_not_satisfied);
  }
  if (!input.relevance.points.empty()) {
    plots.relevance = "relevance_pr.png";
    plot_relevance_curve(util::join_path(dir, plots.relevance), input.relevance);
  }

  const std::string path = util::join_path(dir, "report.md");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << render_report(input, plots);
  out.flush();
  if (!out) throw Error(ErrorCode::Io, fmt::format("{}: cannot write: {}", path, std::strerror(errno)));
  return path;
}

}  // namespace imgjudge::eval
