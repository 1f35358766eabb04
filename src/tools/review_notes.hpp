// Conventions shared by the tools for their per-rule comments. Internal to src/tools.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "imgjudge/error.hpp"

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

}  // namespace imgjudge::tools
