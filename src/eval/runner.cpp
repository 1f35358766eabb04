#include "eval/runner.hpp"

#include <optional>

#include <fmt/format.h>

namespace imgjudge::eval {

std::vector<Ablation> make_ablations(const std::string& list, const JudgeOptions& base) {
  std::vector<Ablation> ablations{{"full", "full method", base}};
  for (std::size_t start = 0; start < list.size();) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string stage = list.substr(start, end - start);
    start = end + 1;
    if (stage.empty()) continue;
    Ablation ablation{"no-" + stage, "", base};
    if (stage == "relevance") {
      ablation.options.relevance = false;
      ablation.description = "w/o relevance scanning";
    } else if (stage == "debias") {
      ablation.options.debias = false;
      ablation.description = "w/o debiasing";
    } else if (stage == "chains") {
      ablation.options.chains = false;
      ablation.description = "w/o precondition chains";
    } else if (stage == "cascade") {
      ablation.options.cascade = false;
      ablation.description = "w/o cascaded reasoning";
    } else if (stage == "locator") {
      ablation.options.locator = false;
      ablation.description = "w/o strategy 2 (region removal)";
    } else if (stage == "early-exit") {
      ablation.options.early_exit = false;
      ablation.description = "w/o early exit";
    } else {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("unknown ablation '{}'; choose from relevance, debias, chains, cascade, early-exit, locator", stage));
    }
    for (const auto& existing : ablations) {
      if (existing.name == ablation.name) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("ablation '{}' is listed twice", stage));
      }
    }
    ablations.push_back(std::move(ablation));
  }
  return ablations;
}

RunCounts run_evaluation(const Constitution& constitution, const Models& models, const LabelSet& labels,
                         const std::vector<Ablation>& ablations, ResultsFile& results,
                         const ProgressCallback& progress, std::chrono::milliseconds timeout) {
  for (const auto& record : results.records()) {
    if (!record.failed && record.constitution_hash != constitution.hash) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}:{}: judged with constitution {}, not {} ('{}'); use another results file "
                              "or start afresh",
                              results.path(), record.line, record.constitution_hash, constitution.hash,
                              constitution.source));
    }
  }

  RunCounts counts;
  const std::size_t total = labels.images.size() * ablations.size();
  std::size_t done = 0;
  for (const auto& ablation : ablations) {
    // Built only if this ablation has work left: construction computes m0 and rule embeddings.
    std::optional<Judge> judge;
    for (const auto& entry : labels.images) {
      if (results.find(ablation.name, entry.image)) {
        ++counts.resumed;
        ++done;
        continue;
      }
      if (progress) progress(done, total, ablation.name + ": " + entry.image);
      if (!judge) judge.emplace(constitution, models, ablation.options);
      std::optional<Verdict> verdict;
      try {
        verdict = judge->judge_file(entry.path, timeout.count() > 0 ? CallOptions::with_timeout(timeout) : CallOptions{});
      } catch (const Error& e) {
        // Cancellation is the user's, not the image's: stop rather than record it.
        if (e.code() == ErrorCode::Cancelled) throw;
        results.append_error(ablation.name, entry.image, e);
        ++counts.failed;
      }
      // Outside the try: failing to write the results file is not the image's error.
      if (verdict) results.append_verdict(ablation.name, entry.image, *verdict);
      ++counts.judged;
      ++done;
    }
  }
  if (progress) progress(total, total, "");
  return counts;
}

}  // namespace imgjudge::eval
