// Parsing the model's answer to the second turn of cascaded reasoning.
#pragma once

#include <optional>
#include <string>

namespace imgjudge::core {

struct ReasoningAnswer {
  bool yes = false;
  std::string rationale;
};

/// Reads {"rating": "Yes"|"No", "rationale": "..."} from free model text,
/// tolerating prose around it, code fences, single quotes, trailing commas
/// and case ("yes", "YES.", "No"). Returns nullopt when no rating can be found:
/// the caller treats that as "still uncertain", never as a yes.
std::optional<ReasoningAnswer> parse_reasoning_answer(const std::string& text);

}  // namespace imgjudge::core
