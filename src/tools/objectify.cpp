// CLUE offline stage 1, objectification: the model rates a rule's objectiveness 1-10
// and rewrites it until it reaches the target. The best-rated wording wins; numbers
// in a rewrite are flagged, because thresholds are policy decisions for a person.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"
#include "tools/model_text.hpp"
#include "tools/review_notes.hpp"

namespace imgjudge::tools {
namespace {

constexpr std::size_t kMaxRewriteChars = 20000;  // the constitution's limit on texts

// The first key of `object` (case-insensitive) among `names`, or nullptr.
const nlohmann::json* find_key(const nlohmann::json& object, std::initializer_list<const char*> names) {
  for (const auto& [key, value] : object.items()) {
    const std::string lowered = text::lower(key);
    for (const char* name : names) {
      if (lowered == name) return &value;
    }
  }
  return nullptr;
}

// Reads the leading integer of "7", "7/10", " 8 out of 10"; nullopt otherwise.
std::optional<double> leading_number(const std::string& raw) {
  const std::string value = text::trim(raw);
  char* end = nullptr;
  const double number = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || !std::isfinite(number)) return std::nullopt;
  return number;
}

// Score values written in prose: "score: 7", "7/10", "7 out of 10".
std::vector<int> scores_in_prose(const std::string& answer) {
  const std::string lowered = text::lower(answer);
  std::vector<int> found;
  auto add = [&](std::size_t digits_at) {
    std::size_t end = digits_at;
    while (end < lowered.size() && std::isdigit(static_cast<unsigned char>(lowered[end]))) ++end;
    if (end == digits_at || end - digits_at > 3) return;
    const int value = std::atoi(lowered.substr(digits_at, end - digits_at).c_str());
    if (std::find(found.begin(), found.end(), value) == found.end()) found.push_back(value);
  };
  for (std::size_t at = lowered.find("score"); at != std::string::npos; at = lowered.find("score", at + 1)) {
    const std::size_t digits = lowered.find_first_of("0123456789", at);
    if (digits != std::string::npos && digits - at <= 12 &&
        lowered.find_first_not_of(" \t:=\"'*is", at + 5) == digits) {
      add(digits);
    }
  }
  for (const char* suffix : {"/10", " / 10", " out of 10"}) {
    for (std::size_t at = lowered.find(suffix); at != std::string::npos; at = lowered.find(suffix, at + 1)) {
      std::size_t start = at;
      while (start > 0 && std::isdigit(static_cast<unsigned char>(lowered[start - 1]))) --start;
      if (start < at) add(start);
    }
  }
  return found;
}

// ----- numbers that a person should decide

struct Token {
  std::string raw;    // as written, outer punctuation removed
  std::string lower;  // lower case
};

std::vector<Token> words_of(const std::string& sentence) {
  std::vector<Token> tokens;
  std::string current;
  auto flush = [&] {
    // Keep %, ° and + attached to numbers ("50%", "90°", "18+"); drop other punctuation.
    auto keep = [](unsigned char c) { return std::isalnum(c) || c == '%' || c == '+' || c >= 0x80; };
    std::size_t first = 0, last = current.size();
    while (first < last && !keep(static_cast<unsigned char>(current[first]))) ++first;
    while (last > first && !keep(static_cast<unsigned char>(current[last - 1]))) --last;
    if (last > first) {
      const std::string raw = current.substr(first, last - first);
      tokens.push_back({raw, text::lower(raw)});
    }
    current.clear();
  };
  for (char c : sentence) {
    // Hyphens split too: "18-year-old" reads as "18 year old".
    if (std::isspace(static_cast<unsigned char>(c)) || c == '-' || c == '/') flush();
    else current += c;
  }
  flush();
  return tokens;
}

const std::pair<const char*, double> kNumberWords[] = {
    {"two", 2},       {"three", 3},     {"four", 4},      {"five", 5},       {"six", 6},
    {"seven", 7},     {"eight", 8},     {"nine", 9},      {"ten", 10},       {"eleven", 11},
    {"twelve", 12},   {"thirteen", 13}, {"fourteen", 14}, {"fifteen", 15},   {"sixteen", 16},
    {"seventeen", 17}, {"eighteen", 18}, {"nineteen", 19}, {"twenty", 20},   {"thirty", 30},
    {"forty", 40},    {"fifty", 50},    {"sixty", 60},    {"seventy", 70},   {"eighty", 80},
    {"ninety", 90},   {"hundred", 100}, {"thousand", 1000}, {"dozen", 12}};

// The value of a number token ("90", "1.5", "50%", "90°", "18+", "ninety"), and the
// unit glued to it ("%", "°", "cm"), or nullopt.
std::optional<double> number_value(const std::string& lowered, std::string& glued_unit) {
  for (const auto& [word, value] : kNumberWords) {
    if (lowered == word) return value;
  }
  std::size_t end = 0;
  while (end < lowered.size() && (std::isdigit(static_cast<unsigned char>(lowered[end])) || lowered[end] == '.' ||
                                  lowered[end] == ',')) {
    ++end;
  }
  if (end == 0 || !std::isdigit(static_cast<unsigned char>(lowered[0]))) return std::nullopt;
  std::string digits = lowered.substr(0, end);
  digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
  glued_unit = lowered.substr(end);
  return std::atof(digits.c_str());
}

const char* kind_of_unit(const std::string& unit) {
  // std::vector, not std::initializer_list: a list inside an aggregate would dangle.
  static const std::pair<std::vector<std::string>, const char*> kUnits[] = {
      {{"degree", "degrees", "°", "deg"}, "angle"},
      {{"%", "percent", "per", "percentage"}, "percentage"},
      {{"year", "years", "yr", "yrs", "+"}, "age"},
      {{"mm", "cm", "m", "km", "meter", "meters", "metre", "metres", "centimeter", "centimeters", "centimetre",
        "centimetres", "millimeter", "millimeters", "inch", "inches", "foot", "feet", "ft", "px", "pixel", "pixels",
        "kg", "lb", "lbs", "pound", "pounds"},
       "size"},
      {{"second", "seconds", "minute", "minutes", "hour", "hours", "day", "days"}, "duration"},
  };
  for (const auto& [names, kind] : kUnits) {
    for (const auto& name : names) {
      if (unit == name) return kind;
    }
  }
  return nullptr;
}

bool is_connector(const std::string& word) {
  static const char* kConnectors[] = {"or", "more", "fewer", "less", "than", "and", "at", "least", "most"};
  for (const char* connector : kConnectors) {
    if (word == connector) return true;
  }
  return false;
}

struct NumberMention {
  double value = 0;
  FlaggedNumber flag;
};

std::vector<NumberMention> numbers_in(const std::string& sentence) {
  const auto tokens = words_of(sentence);
  std::vector<NumberMention> mentions;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    std::string glued;
    const auto value = number_value(tokens[i].lower, glued);
    if (!value) continue;
    NumberMention mention;
    mention.value = *value;
    mention.flag.quantity = tokens[i].raw;
    const char* kind = glued.empty() ? nullptr : kind_of_unit(glued);
    // The unit follows the number, possibly after "or more", "or fewer", "and".
    std::size_t next = i + 1;
    while (!kind && next < tokens.size() && next <= i + 3 && is_connector(tokens[next].lower)) ++next;
    if (!kind && next < tokens.size()) {
      kind = kind_of_unit(tokens[next].lower);
      const bool is_word = std::isalpha(static_cast<unsigned char>(tokens[next].lower[0])) != 0;
      if (!kind && is_word) kind = "count";
      if (kind) {
        for (std::size_t k = i + 1; k <= next; ++k) mention.flag.quantity += " " + tokens[k].raw;
        if (std::string(kind) == "age" && next + 1 < tokens.size() && tokens[next + 1].lower == "old") {
          mention.flag.quantity += " old";
        }
      }
    }
    // "aged 18", "under the age of 18": the word before decides.
    if ((!kind || std::string(kind) == "count" || std::string(kind) == "number") && i > 0 &&
        (tokens[i - 1].lower == "age" || tokens[i - 1].lower == "aged")) {
      kind = "age";
    }
    mention.flag.kind = kind ? kind : "number";
    mentions.push_back(std::move(mention));
  }
  return mentions;
}

std::string format_explanation(const ObjectifyAttempt& attempt) {
  return attempt.rating->explanation.empty() ? "(no explanation)" : text::excerpt(attempt.rating->explanation, 400);
}

}  // namespace

std::optional<Rating> parse_rating(const std::string& answer, std::string& problem) {
  problem.clear();
  const auto scan = text::scan_json(answer);
  for (const auto& span : scan.values) {
    if (!span.value.is_object()) continue;
    const auto* score = find_key(span.value, {"score", "rating", "objectiveness"});
    if (!score) continue;
    std::optional<double> number;
    if (score->is_number()) number = score->get<double>();
    else if (score->is_string()) number = leading_number(score->get<std::string>());
    if (!number) {
      problem = fmt::format("the score is not a number: {}", text::excerpt(score->dump()));
      return std::nullopt;
    }
    if (*number < 1 || *number > 10) {
      problem = fmt::format("the score {} is outside 1-10", *number);
      return std::nullopt;
    }
    Rating rating;
    rating.score = static_cast<int>(std::floor(*number));  // 8.5 does not reach a target of 9
    if (const auto* why = find_key(span.value, {"explanation", "reason", "rationale"}); why && why->is_string()) {
      rating.explanation = text::trim(why->get<std::string>());
    }
    if (rating.score != *number) problem = fmt::format("the score {} was rounded down to {}", *number, rating.score);
    if (span.repaired) problem += std::string(problem.empty() ? "" : "; ") + "the JSON needed repairs";
    return rating;
  }
  const auto prose = scores_in_prose(answer);
  if (prose.size() == 1 && prose[0] >= 1 && prose[0] <= 10) {
    problem = scan.unclosed_at != std::string::npos
                  ? "the answer ends inside unfinished JSON (cut off by the token limit?); the score was read from it"
                  : "no JSON; the score was read from prose";
    return Rating{prose[0], text::excerpt(answer, 400)};
  }
  if (prose.size() > 1) {
    std::string values;
    for (int v : prose) values += (values.empty() ? "" : ", ") + std::to_string(v);
    problem = fmt::format("no JSON, and the prose names several scores ({})", values);
  } else if (scan.unclosed_at != std::string::npos) {
    problem = "the answer ends inside unfinished JSON (cut off by the token limit?)";
  } else {
    problem = fmt::format("no score found in \"{}\"", text::excerpt(answer));
  }
  return std::nullopt;
}

std::optional<std::string> parse_rewrite(const std::string& answer, std::string& problem) {
  problem.clear();
  const auto scan = text::scan_json(answer);
  std::optional<std::string> rewrite;
  for (const auto& span : scan.values) {
    if (!span.value.is_object()) continue;
    const auto* value = find_key(span.value, {"rewrite", "objective_text", "rule", "text"});
    if (!value) continue;
    if (!value->is_string()) {
      problem = "the 'rewrite' value is not a string";
      return std::nullopt;
    }
    rewrite = text::trim(value->get<std::string>());
    break;
  }
  if (!rewrite) {
    if (!scan.values.empty()) {
      problem = fmt::format("the JSON has no 'rewrite' key: {}", text::excerpt(scan.values[0].value.dump()));
      return std::nullopt;
    }
    if (scan.unclosed_at != std::string::npos) {
      problem = "the answer ends inside unfinished JSON (cut off by the token limit?)";
      return std::nullopt;
    }
    // Plain text: accept exactly one line, without a label such as "Rewrite:".
    std::vector<std::string> content;
    for (const auto& line : text::lines(text::strip_code_fences(answer))) {
      if (!text::trim(line).empty()) content.push_back(text::trim(line));
    }
    if (content.size() != 1) {
      problem = content.empty() ? "the answer is empty"
                                : fmt::format("no JSON, and {} lines of prose; not used", content.size());
      return std::nullopt;
    }
    std::string line = content[0];
    const std::string lowered = text::lower(line);
    for (const char* label : {"rewritten rule:", "rewrite:", "objective rule:", "rule:"}) {
      if (lowered.rfind(label, 0) == 0) {
        line = text::trim(line.substr(std::string(label).size()));
        break;
      }
    }
    if (line.size() >= 2 && (line.front() == '"' || line.front() == '\'') && line.back() == line.front()) {
      line = line.substr(1, line.size() - 2);
    }
    rewrite = text::trim(line);
    problem = "no JSON; the answer line was used as the rewrite";
  }
  if (rewrite->empty()) {
    problem = "the rewrite is empty";
    return std::nullopt;
  }
  if (rewrite->size() > kMaxRewriteChars) {
    problem = fmt::format("the rewrite is {} bytes long; the limit is {}", rewrite->size(), kMaxRewriteChars);
    return std::nullopt;
  }
  return text::valid_utf8(*rewrite);
}

std::vector<FlaggedNumber> find_policy_numbers(const std::string& sentence, const std::string& original) {
  std::vector<double> original_values;
  for (const auto& mention : numbers_in(original)) original_values.push_back(mention.value);
  std::vector<FlaggedNumber> flagged;
  for (auto& mention : numbers_in(sentence)) {
    mention.flag.in_original =
        std::find(original_values.begin(), original_values.end(), mention.value) != original_values.end();
    const bool seen = std::any_of(flagged.begin(), flagged.end(),
                                  [&](const FlaggedNumber& f) { return f.quantity == mention.flag.quantity; });
    if (!seen) flagged.push_back(std::move(mention.flag));
  }
  return flagged;
}

RuleObjectification objectify_rule(const VisionLanguageModel& model, const Rule& rule,
                                   const ObjectifyOptions& options, const CallContext& call) {
  if (options.target < 1 || options.target > 10) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("objectify: target {} is outside 1-10", options.target));
  }
  if (options.rounds < 0 || options.rounds > 100) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("objectify: rounds {} is outside 0-100", options.rounds));
  }
  GenerateLimits limits;
  limits.max_new_tokens = options.max_new_tokens;
  auto ask = [&](const std::string& prompt) {
    std::vector<ChatTurn> turns;
    if (!options.prompts.system.empty()) turns.push_back({ChatTurn::Role::System, options.prompts.system});
    turns.push_back({ChatTurn::Role::User, prompt});
    return model.generate(nullptr, turns, limits, call);
  };
  auto rate = [&](const std::string& wording) {
    ObjectifyAttempt attempt;
    attempt.text = wording;
    attempt.rating = parse_rating(ask(render_prompt(options.prompts.rate, {{"rule", wording}})), attempt.problem);
    return attempt;
  };

  RuleObjectification result;
  result.rule_id = rule.id;
  result.attempts.push_back(rate(rule.objective_text));
  if (!result.attempts[0].rating) {
    result.not_processed_reason = "the rating of the current wording could not be read: " + result.attempts[0].problem;
    return result;
  }
  result.processed = true;
  auto best_score = [&] { return result.attempts[result.best].rating->score; };
  for (int round = 1; round <= options.rounds && best_score() < options.target; ++round) {
    const ObjectifyAttempt& best = result.attempts[result.best];
    const std::string prompt = render_prompt(options.prompts.rewrite,
                                             {{"original", rule.text},
                                              {"current", best.text},
                                              {"score", std::to_string(best.rating->score)},
                                              {"explanation", best.rating->explanation},
                                              {"target", std::to_string(options.target)}});
    std::string problem;
    const auto rewrite = parse_rewrite(ask(prompt), problem);
    if (!rewrite) {
      result.attempts.push_back({"", std::nullopt, "the rewrite could not be used: " + problem});
      continue;
    }
    if (*rewrite == best.text) {
      result.attempts.push_back({*rewrite, std::nullopt, "the rewrite repeats the current wording"});
      continue;
    }
    ObjectifyAttempt attempt = rate(*rewrite);
    if (!problem.empty()) attempt.problem = problem + (attempt.problem.empty() ? "" : "; " + attempt.problem);
    if (!attempt.rating) attempt.problem = "the rating of the rewrite could not be read: " + attempt.problem;
    result.attempts.push_back(std::move(attempt));
    const auto& latest = result.attempts.back();
    if (latest.rating && latest.rating->score > best_score()) result.best = result.attempts.size() - 1;
  }
  result.reached_target = best_score() >= options.target;
  if (result.best != 0) {
    result.flagged = find_policy_numbers(result.attempts[result.best].text, rule.text + "\n" + rule.objective_text);
  }
  return result;
}

namespace {

// The review comments of one rule (written above it by write_constitution_toml).
std::vector<std::string> objectify_comments(const Rule& input, const RuleObjectification& result,
                                            const ObjectifyOptions& options) {
  std::vector<std::string> comments;
  if (!result.processed) {
    comments.push_back(kNotProcessedPrefix + result.not_processed_reason);
    return comments;
  }
  const auto& first = result.attempts.front();
  const auto& best = result.attempts[result.best];
  const int rewrites = static_cast<int>(result.attempts.size()) - 1;
  if (result.best == 0 && rewrites == 0) {
    comments.push_back(fmt::format("objectify: rated {}/10 (target {}); kept as written", first.rating->score,
                                   options.target));
  } else if (result.best == 0) {
    comments.push_back(fmt::format("objectify: rated {}/10 (target {}); no rewrite in {} round(s) rated higher; "
                                   "kept as written",
                                   first.rating->score, options.target, rewrites));
  } else {
    comments.push_back(fmt::format("objectify: rated {}/10 -> {}/10 (target {}) with rewrite {} of {}",
                                   first.rating->score, best.rating->score, options.target, result.best, rewrites));
  }
  comments.push_back(fmt::format("rated {}/10: {}", first.rating->score, format_explanation(first)));
  if (result.best != 0) {
    comments.push_back(fmt::format("rated {}/10: {}", best.rating->score, format_explanation(best)));
    if (input.objective_text != input.text) {
      comments.push_back("previous objective_text: " + text::excerpt(input.objective_text, 2000));
    }
  }
  for (std::size_t i = 0; i < result.attempts.size(); ++i) {
    const auto& attempt = result.attempts[i];
    if (attempt.problem.empty()) continue;
    comments.push_back(i == 0 ? "note on the rating: " + attempt.problem
                              : fmt::format("note on rewrite {}: {}", i, attempt.problem));
  }
  if (!result.reached_target) {
    comments.push_back(fmt::format("{}the target {}/10 was not reached (best {}/10); rewrite the rule by hand "
                                   "or accept it",
                                   kReviewPrefix, options.target, best.rating->score));
  }
  for (const auto& number : result.flagged) {
    comments.push_back(fmt::format("{}number \"{}\" ({}) {}; set it for your policy", kReviewPrefix, number.quantity,
                                   number.kind,
                                   number.in_original ? "also occurs in the original text"
                                                      : "was introduced by the model"));
  }
  return comments;
}

}  // namespace

ToolOutput objectify_constitution(const VisionLanguageModel& model, const Constitution& input,
                                  const ObjectifyOptions& options, const ToolProgress& progress,
                                  const CallContext& call) {
  require_generation(model, "objectify");
  ToolOutput output;
  output.constitution = input;
  for (std::size_t i = 0; i < input.rules.size(); ++i) {
    const Rule& rule = input.rules[i];
    Rule& out_rule = output.constitution.rules[i];
    const auto result = run_on_rule<RuleObjectification>(rule, [&] { return objectify_rule(model, rule, options, call); });
    auto comments = objectify_comments(rule, result, options);
    std::string summary;
    if (!result.processed) {
      ++output.rules_not_processed;
      summary = comments.front();
    } else {
      const auto& best = result.attempts[result.best];
      summary = fmt::format("{}/10 -> {}/10{}", result.attempts[0].rating->score, best.rating->score,
                            result.reached_target ? "" : " (below target)");
      if (result.best != 0) {
        // relevance_texts that were the default ({objective_text}) follow the new wording.
        if (out_rule.relevance_texts == std::vector<std::string>{out_rule.objective_text}) {
          out_rule.relevance_texts = {best.text};
        }
        out_rule.objective_text = best.text;
        ++output.rules_changed;
      }
    }
    finish_rule(output, i, rule, std::move(comments), summary, progress);
  }
  return output;
}

}  // namespace imgjudge::tools
