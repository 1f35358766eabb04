#include "core/reasoning.hpp"
#include "util/json.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace imgjudge::core {
namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// "Yes", "yes.", " YES " -> true; "No" -> false; anything else -> nullopt.
std::optional<bool> rating_word(const std::string& word) {
  std::string w = lower(word);
  auto not_letter = [](unsigned char c) { return !std::isalpha(c); };
  w.erase(w.begin(), std::find_if_not(w.begin(), w.end(), not_letter));
  w.erase(std::find_if_not(w.rbegin(), w.rend(), not_letter).base(), w.end());
  if (w == "yes" || w == "true") return true;
  if (w == "no" || w == "false") return false;
  return std::nullopt;
}

std::optional<ReasoningAnswer> from_json_object(const nlohmann::json& object) {
  if (!object.is_object()) return std::nullopt;
  ReasoningAnswer answer;
  bool found = false;
  for (const auto& [key, value] : object.items()) {
    const std::string name = lower(key);
    if (name == "rating" || name == "answer") {
      if (value.is_string()) {
        if (auto yes = rating_word(value.get<std::string>())) {
          answer.yes = *yes;
          found = true;
        }
      } else if (value.is_boolean()) {
        answer.yes = value.get<bool>();
        found = true;
      }
    } else if (name == "rationale" || name == "reason" || name == "explanation") {
      if (value.is_string()) answer.rationale = value.get<std::string>();
    }
  }
  if (!found) return std::nullopt;
  return answer;
}

// Small repairs that models commonly need: single quotes and trailing commas.
std::string repair(const std::string& candidate) {
  std::string out;
  out.reserve(candidate.size());
  bool in_double = false;
  for (std::size_t i = 0; i < candidate.size(); ++i) {
    char c = candidate[i];
    if (c == '\\' && i + 1 < candidate.size()) {
      out += c;
      out += candidate[++i];
      continue;
    }
    if (c == '"') in_double = !in_double;
    if (!in_double && c == '\'') c = '"';
    if (!in_double && c == ',') {
      std::size_t next = candidate.find_first_not_of(" \t\r\n", i + 1);
      if (next != std::string::npos && (candidate[next] == '}' || candidate[next] == ']')) continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::optional<ReasoningAnswer> parse_reasoning_answer(const std::string& text) {
  // 1. Every balanced {...} span, outermost first, parsed as JSON (then repaired).
  for (std::size_t start = text.find('{'); start != std::string::npos; start = text.find('{', start + 1)) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t end = start; end < text.size(); ++end) {
      char c = text[end];
      if (in_string) {
        if (c == '\\') ++end;
        else if (c == '"') in_string = false;
        continue;
      }
      if (c == '"') in_string = true;
      else if (c == '{') ++depth;
      else if (c == '}' && --depth == 0) {
        const std::string candidate = text.substr(start, end - start + 1);
        for (const auto& attempt : {candidate, repair(candidate)}) {
          if (const auto parsed = util::try_parse_json(attempt)) {
            if (auto answer = from_json_object(*parsed)) return answer;
          }
        }
        break;
      }
    }
  }
  // 2. A bare `rating: yes` / `"rating": "No"` outside valid JSON.
  const std::string lowered = lower(text);
  for (std::size_t at = lowered.find("rating"); at != std::string::npos; at = lowered.find("rating", at + 1)) {
    std::size_t colon = lowered.find(':', at);
    if (colon == std::string::npos || colon > at + 10) continue;
    std::size_t word_start = lowered.find_first_not_of(" \t\"'", colon + 1);
    if (word_start == std::string::npos) break;
    std::size_t word_end = lowered.find_first_of(" \t\r\n\"',}.", word_start);
    if (auto yes = rating_word(lowered.substr(word_start, word_end - word_start))) {
      return ReasoningAnswer{*yes, ""};
    }
  }
  return std::nullopt;
}

}  // namespace imgjudge::core
