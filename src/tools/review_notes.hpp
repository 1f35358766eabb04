// Conventions shared by the tools for their per-rule comments, and the steps
// of the per-rule loop every tool runs. Internal to src/tools.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"

namespace imgjudge::tools {

/// Comment prefixes a person searches for in the output file.
inline constexpr const char* kReviewPrefix = "REVIEW: ";
inline constexpr const char* kNotProcessedPrefix = "NOT PROCESSED: ";

/// True if a person must look at this rule before shipping.
inline bool needs_review(const std::vector<std::string>& comments) {
  return std::any_of(comments.begin(), comments.end(), [](const std::string& line) {
    return line.rfind(kReviewPrefix, 0) == 0 || line.rfind(kNotProcessedPrefix, 0) == 0;
  });
}

/// Errors that end a whole run; any other error of the model leaves one rule unprocessed.
inline bool ends_the_run(const Error& e) {
  return e.code() == ErrorCode::Cancelled || e.code() == ErrorCode::DeadlineExceeded ||
         e.code() == ErrorCode::InvalidArgument || e.code() == ErrorCode::Unsupported;
}

/// Error(Unsupported) unless `model` generates text, which every tool needs.
inline void require_generation(const VisionLanguageModel& model, const char* tool) {
  if (!model.capabilities().generate) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{} needs text generation, which {} does not offer", tool, model.model_id()));
  }
}

/// `run()` for one rule. A model error that does not end the run becomes the
/// rule's result instead: not processed, with the error as the reason
/// (`Result` has rule_id and not_processed_reason).
template <class Result, class Run>
Result run_on_rule(const Rule& rule, Run&& run) {
  try {
    return std::forward<Run>(run)();
  } catch (const Error& e) {
    if (ends_the_run(e)) throw;
    Result result;
    result.rule_id = rule.id;
    result.not_processed_reason = fmt::format("the model failed [{}]: {}", error_code_name(e.code()), e.what());
    return result;
  }
}

/// Files rule `index`'s comments in `output` and reports its summary.
inline void finish_rule(ToolOutput& output, std::size_t index, const Rule& rule, std::vector<std::string> comments,
                        const std::string& summary, const ToolProgress& progress) {
  if (needs_review(comments)) ++output.rules_to_review;
  output.comments[rule.id] = std::move(comments);
  if (progress) progress(index, output.constitution.rules.size(), fmt::format("{}: {}", rule.id, summary));
}

}  // namespace imgjudge::tools
