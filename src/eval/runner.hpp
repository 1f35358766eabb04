// Runs Judges over a labelled set, one per ablation, appending to a results file.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "eval/labels.hpp"
#include "eval/results.hpp"
#include "imgjudge/judge.hpp"

namespace imgjudge::eval {

/// One configuration of the method: "full" (every stage on) or one stage switched off.
struct Ablation {
  std::string name;         ///< Key in the results file: "full", "no-relevance", ...
  std::string description;  ///< Column heading in the report.
  JudgeOptions options;
};

/// "full" (`base`, the method as configured) followed by one ablation per
/// name of the comma-separated `list` (relevance, debias, chains, cascade,
/// early-exit, locator), in the order given: `base` with that stage off. Throws
/// Error(InvalidArgument) for an unknown or repeated name.
std::vector<Ablation> make_ablations(const std::string& list, const JudgeOptions& base = {});

/// Called before each image is judged, and once at the end with done == total.
using ProgressCallback = std::function<void(std::size_t done, std::size_t total, const std::string& label)>;

struct RunCounts {
  std::size_t judged = 0;   ///< Judged in this run.
  std::size_t resumed = 0;  ///< Already in the results file.
  std::size_t failed = 0;   ///< Judged in this run and raised an error (recorded too).
};

/// Judges every labelled image under every ablation that the results file does not
/// already hold, appending each result as soon as it exists. An image that cannot be
/// judged is recorded with its error and counts as done. Throws Error(InvalidArgument)
/// if the results file holds verdicts of another constitution (they cannot be mixed).
/// `timeout` (when > 0) is each image's deadline.
RunCounts run_evaluation(const Constitution& constitution, const Models& models, const LabelSet& labels,
                         const std::vector<Ablation>& ablations, ResultsFile& results,
                         const ProgressCallback& progress = {},
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

}  // namespace imgjudge::eval
