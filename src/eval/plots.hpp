// PNG plots of an evaluation, drawn with PLplot (its pngcairo driver). Headless: no
// display is needed. PLplot keeps global state, so calls are serialised internally.
#pragma once

#include <string>
#include <vector>

#include "eval/metrics.hpp"

namespace imgjudge::eval {

/// Two overlaid histograms on [0, 1] (each normalised to the share of its items, so
/// groups of different sizes compare): `satisfied` in blue, `not_satisfied` in orange.
/// Throws Error(Unsupported) if PLplot's pngcairo driver is not installed, Error(Io) if
/// the file was not written, Error(InvalidArgument) for a value outside [0, 1].
void plot_score_histograms(const std::string& png_path, const std::string& title, const std::string& x_label,
                           const std::vector<double>& satisfied, const std::vector<double>& not_satisfied,
                           int bins = 20);

/// Precision against recall of relevance scanning as its threshold moves, with the
/// point of the constitution's configured thresholds marked. Needs curve.points.
void plot_relevance_curve(const std::string& png_path, const RelevanceCurve& curve);

}  // namespace imgjudge::eval
