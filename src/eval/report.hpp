// The Markdown report of an evaluation, with its PNG plots.
#pragma once

#include <string>
#include <vector>

#include "eval/labels.hpp"
#include "eval/metrics.hpp"

namespace imgjudge::eval {

/// What judged: the backend and dtype asked for, and the loaded models' ids ("" for none).
struct ModelIds {
  std::string backend, dtype, vlm, relevance, locator;
};

struct ReportInput {
  const Constitution* constitution = nullptr;
  const LabelSet* labels = nullptr;
  std::string results_path;  ///< "" when the results were kept in memory only.
  ModelIds models;
  std::vector<AblationMetrics> metrics;  ///< The full method first, then each ablation.
  ScoreSamples scores;                   ///< Of the full method.
  RelevanceCurve relevance;              ///< Of the full method.
};

/// The Markdown text; `plots` are the PNG file names (in the report's folder) to link,
/// "" for a plot that was not drawn.
struct PlotFiles {
  std::string score, prior, relevance;
};
std::string render_report(const ReportInput& input, const PlotFiles& plots);

/// Creates `dir` if needed, draws the plots that have data (scores_M.png, scores_m0.png,
/// relevance_pr.png) and writes report.md. Returns the path of report.md.
std::string write_report(const std::string& dir, const ReportInput& input);

}  // namespace imgjudge::eval
