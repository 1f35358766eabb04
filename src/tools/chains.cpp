// CLUE offline stages 2 and 3: a rule's precondition chain (AND of items, each an OR
// of short visual statements) and the central object words of each item, extracted by
// a model from a few-shot prompt. The parser reads JSON or a numbered list, and says
// what it skipped or could not read; a damaged chain is never used, because a chain
// with an item missing flags more than the rule does.
#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"
#include "tools/model_text.hpp"
#include "tools/review_notes.hpp"

namespace imgjudge::tools {
namespace {

// Limits of the constitution format (docs/constitution-format.md) and sane chain sizes.
constexpr std::size_t kMaxStatementChars = 2000;
constexpr std::size_t kMaxObjectChars = 200;
constexpr std::size_t kMaxItems = 20;
constexpr std::size_t kMaxAlternatives = 16;

const nlohmann::json* find_key(const nlohmann::json& object, std::initializer_list<const char*> names) {
  for (const auto& [key, value] : object.items()) {
    const std::string lowered = text::lower(key);
    for (const char* name : names) {
      if (lowered == name) return &value;
    }
  }
  return nullptr;
}

const std::initializer_list<const char*> kStatementKeys = {"any_of", "statements", "or", "alternatives", "any"};
const std::initializer_list<const char*> kObjectKeys = {"objects", "central_objects", "object_words", "object"};

// Splits "A is visible OR B is visible" on the upper-case word OR (a lower-case "or"
// belongs to the statement: "naked or partly naked").
std::vector<std::string> split_alternatives(const std::string& line) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t at = line.find("OR"); at != std::string::npos; at = line.find("OR", at + 2)) {
    const bool word_start = at == 0 || !std::isalnum(static_cast<unsigned char>(line[at - 1]));
    const bool word_end = at + 2 >= line.size() || !std::isalnum(static_cast<unsigned char>(line[at + 2]));
    if (!word_start || !word_end) continue;
    parts.push_back(line.substr(start, at - start));
    start = at + 2;
  }
  parts.push_back(line.substr(start));
  return parts;
}

// Strips quotes, brackets and list joiners around one statement or object word.
std::string clean_piece(std::string piece) {
  piece = text::trim(piece);
  bool changed = true;
  while (changed && !piece.empty()) {
    changed = false;
    for (const char* joiner : {"AND ", "OR "}) {
      if (piece.rfind(joiner, 0) == 0) piece = text::trim(piece.substr(3)), changed = true;
    }
    for (const char* joiner : {" AND", " OR"}) {
      const std::string j(joiner);
      if (piece.size() >= j.size() && piece.compare(piece.size() - j.size(), j.size(), j) == 0) {
        piece = text::trim(piece.substr(0, piece.size() - j.size())), changed = true;
      }
    }
    if (piece.size() >= 2 && ((piece.front() == '"' && piece.back() == '"') ||
                              (piece.front() == '\'' && piece.back() == '\'') ||
                              (piece.front() == '[' && piece.back() == ']') ||
                              (piece.front() == '(' && piece.back() == ')'))) {
      piece = text::trim(piece.substr(1, piece.size() - 2)), changed = true;
    }
    if (!piece.empty() && (piece.back() == ',' || piece.back() == ';')) {
      piece = text::trim(piece.substr(0, piece.size() - 1)), changed = true;
    }
  }
  return piece;
}

std::vector<std::string> split_object_words(const std::string& list) {
  std::vector<std::string> words;
  std::string current;
  for (char c : list + ",") {
    if (c == ',' || c == ';') {
      std::string word = clean_piece(current);
      if (!word.empty() && text::lower(word) != "none") words.push_back(word);
      current.clear();
    } else {
      current += c;
    }
  }
  return words;
}

// One item as read, before validation.
struct RawItem {
  std::vector<std::string> statements;
  std::vector<std::string> objects;
  std::string where;  // "item 2" or "line 5", for messages
};

// ----- JSON

bool looks_like_item(const nlohmann::json& value) {
  return value.is_object() && find_key(value, kStatementKeys) != nullptr;
}

void read_json_item(const nlohmann::json& value, RawItem& item, ChainParse& parse) {
  auto read_strings = [&](const nlohmann::json& list, const std::string& what, std::vector<std::string>& out,
                          bool damage_on_error) {
    if (list.is_string()) {
      out.push_back(list.get<std::string>());
      return;
    }
    if (!list.is_array()) {
      (damage_on_error ? parse.errors : parse.skipped)
          .push_back(fmt::format("{}: {} is not a list of strings: {}", item.where, what, text::excerpt(list.dump())));
      return;
    }
    for (const auto& entry : list) {
      if (entry.is_string()) {
        out.push_back(entry.get<std::string>());
      } else {
        (damage_on_error ? parse.errors : parse.skipped)
            .push_back(fmt::format("{}: {} holds a non-string: {}", item.where, what, text::excerpt(entry.dump())));
      }
    }
  };
  if (value.is_string()) {
    item.statements.push_back(value.get<std::string>());
  } else if (value.is_array()) {
    read_strings(value, "the item", item.statements, true);
  } else if (value.is_object()) {
    const auto* statements = find_key(value, kStatementKeys);
    if (!statements) {
      parse.errors.push_back(fmt::format("{} has no 'any_of' list: {}", item.where, text::excerpt(value.dump())));
      return;
    }
    read_strings(*statements, "'any_of'", item.statements, true);
    if (const auto* objects = find_key(value, kObjectKeys)) {
      read_strings(*objects, "'objects'", item.objects, false);
    }
    for (const auto& [key, entry] : value.items()) {
      const std::string lowered = text::lower(key);
      const bool known = std::any_of(kStatementKeys.begin(), kStatementKeys.end(), [&](const char* k) { return lowered == k; }) ||
                         std::any_of(kObjectKeys.begin(), kObjectKeys.end(), [&](const char* k) { return lowered == k; });
      if (!known) parse.skipped.push_back(fmt::format("{}: unknown key '{}' ignored", item.where, key));
    }
  } else {
    parse.errors.push_back(fmt::format("{} is {}, not a list of statements", item.where, value.type_name()));
  }
  // A JSON string that still joins alternatives with "OR" is split like a list line.
  std::vector<std::string> split;
  for (const auto& statement : item.statements) {
    for (auto& part : split_alternatives(statement)) split.push_back(clean_piece(part));
  }
  if (split.size() != item.statements.size()) {
    parse.skipped.push_back(fmt::format("{}: a statement joined alternatives with \"OR\"; split into {}", item.where,
                                        split.size()));
  }
  item.statements = std::move(split);
}

// The chain in a JSON answer: {"chain": [...]}, a bare [...] of items, or items as
// separate objects. Returns false if the answer holds no chain-shaped JSON.
bool read_json_chain(const std::string& answer, const text::JsonScan& scan, std::vector<RawItem>& items,
                     ChainParse& parse) {
  const nlohmann::json* list = nullptr;
  std::size_t chosen = scan.values.size();
  for (std::size_t i = 0; i < scan.values.size() && !list; ++i) {
    const auto& value = scan.values[i].value;
    if (value.is_object()) {
      const auto* chain = find_key(value, {"chain", "preconditions", "items"});
      if (chain && chain->is_array()) list = chain, chosen = i;
    } else if (value.is_array() && !value.empty() &&
               (value[0].is_object() || value[0].is_array() || value[0].is_string())) {
      list = &value, chosen = i;
    }
  }
  std::vector<const nlohmann::json*> entries;
  std::vector<std::size_t> used_spans;
  if (list) {
    for (const auto& entry : *list) entries.push_back(&entry);
    used_spans.push_back(chosen);
  } else {
    for (std::size_t i = 0; i < scan.values.size(); ++i) {
      if (looks_like_item(scan.values[i].value)) {
        entries.push_back(&scan.values[i].value);
        used_spans.push_back(i);
      }
    }
    if (entries.empty()) return false;
    parse.notes.push_back("the items were separate JSON objects, not one list");
  }
  parse.format = "json";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    RawItem item;
    item.where = fmt::format("item {}", i + 1);
    read_json_item(*entries[i], item, parse);
    items.push_back(std::move(item));
  }
  // Report what lies outside the JSON that was used.
  std::size_t covered_until = 0;
  auto report_gap = [&](std::size_t from, std::size_t to, bool after_chain) {
    const std::string gap = text::trim(text::strip_code_fences(answer.substr(from, to - from)));
    if (gap.empty()) return;
    if (after_chain) {
      parse.skipped.push_back(fmt::format("text after the chain ignored: \"{}\"", text::excerpt(gap)));
    } else {
      parse.notes.push_back(fmt::format("text before the chain ignored: \"{}\"", text::excerpt(gap)));
    }
  };
  for (std::size_t span_index : used_spans) {
    const auto& span = scan.values[span_index];
    report_gap(covered_until, span.begin, covered_until > 0);
    covered_until = span.end;
    if (span.repaired) parse.notes.push_back("the JSON needed repairs (quotes or trailing commas)");
  }
  report_gap(covered_until, answer.size(), true);
  return true;
}

// ----- Lists

// "1. ", "2) ", "- ", "* ", "• ", "Item 3: ", "Precondition 2: " -> the rest; nullopt if none.
std::optional<std::string> strip_item_marker(const std::string& line) {
  std::size_t at = 0;
  if (line.rfind("- ", 0) == 0 || line.rfind("* ", 0) == 0) return text::trim(line.substr(2));
  if (line.rfind("\xE2\x80\xA2", 0) == 0) return text::trim(line.substr(3));  // U+2022 bullet
  const std::string lowered = text::lower(line);
  for (const char* word : {"item ", "precondition ", "step "}) {
    if (lowered.rfind(word, 0) == 0) at = std::string(word).size();
  }
  const std::size_t digits_begin = at;
  while (at < line.size() && std::isdigit(static_cast<unsigned char>(line[at]))) ++at;
  if (at == digits_begin || at - digits_begin > 3 || at >= line.size()) return std::nullopt;
  if (line[at] != '.' && line[at] != ')' && line[at] != ':') return std::nullopt;
  return text::trim(line.substr(at + 1));
}

// Splits "statement ... (objects: a, b)" into the statement and the object words.
std::string take_objects(const std::string& body, std::vector<std::string>& objects) {
  const std::string lowered = text::lower(body);
  for (const char* label : {"central objects:", "central object:", "objects:", "object:", "object words:"}) {
    const std::size_t at = lowered.find(label);
    if (at == std::string::npos) continue;
    std::size_t statement_end = at;
    while (statement_end > 0 && (body[statement_end - 1] == '(' || body[statement_end - 1] == '[' ||
                                 body[statement_end - 1] == ' ' || body[statement_end - 1] == '-' ||
                                 body[statement_end - 1] == '|')) {
      --statement_end;
    }
    std::string list = body.substr(at + std::string(label).size());
    while (!list.empty() && (list.back() == ')' || list.back() == ']' || list.back() == ' ')) list.pop_back();
    objects = split_object_words(list);
    return body.substr(0, statement_end);
  }
  return body;
}

RawItem item_from_text(const std::string& body, const std::string& where) {
  RawItem item;
  item.where = where;
  for (const auto& part : split_alternatives(take_objects(body, item.objects))) {
    item.statements.push_back(clean_piece(part));
  }
  return item;
}

// The paper's one-line form: "[a OR b] AND [c] AND [d]".
bool read_bracket_chain(const std::string& line, std::size_t line_number, std::vector<RawItem>& items) {
  const std::string trimmed = text::trim(line);
  if (trimmed.empty() || trimmed.front() != '[' || trimmed.find("] AND [") == std::string::npos) return false;
  std::size_t at = 0;
  while (at < trimmed.size()) {
    const std::size_t open = trimmed.find('[', at);
    if (open == std::string::npos) break;
    const std::size_t close = trimmed.find(']', open);
    if (close == std::string::npos) break;
    items.push_back(item_from_text(trimmed.substr(open + 1, close - open - 1),
                                   fmt::format("line {} item {}", line_number, items.size() + 1)));
    at = close + 1;
  }
  return true;
}

void read_list_chain(const std::string& answer, std::vector<RawItem>& items, ChainParse& parse) {
  const auto all_lines = text::lines(text::strip_code_fences(answer));
  for (std::size_t n = 0; n < all_lines.size(); ++n) {
    const std::string line = text::trim(all_lines[n]);
    const std::size_t line_number = n + 1;
    if (line.empty() || line == "AND") continue;  // a bare joiner between items says nothing new
    if (read_bracket_chain(line, line_number, items)) continue;
    const std::string lowered = text::lower(line);
    if (auto body = strip_item_marker(line)) {
      if (read_bracket_chain(*body, line_number, items)) continue;
      items.push_back(item_from_text(*body, fmt::format("line {}", line_number)));
      continue;
    }
    if (!items.empty() && (lowered.rfind("or ", 0) == 0 || lowered.rfind("or:", 0) == 0)) {
      // A continuation line: more alternatives of the item above.
      RawItem more = item_from_text(line.substr(3), fmt::format("line {}", line_number));
      auto& last = items.back();
      last.statements.insert(last.statements.end(), more.statements.begin(), more.statements.end());
      last.objects.insert(last.objects.end(), more.objects.begin(), more.objects.end());
      continue;
    }
    if (!items.empty() && (lowered.rfind("objects:", 0) == 0 || lowered.rfind("central object", 0) == 0 ||
                           lowered.rfind("object words:", 0) == 0)) {
      std::vector<std::string> objects;
      take_objects(line, objects);
      auto& last = items.back();
      last.objects.insert(last.objects.end(), objects.begin(), objects.end());
      continue;
    }
    if (items.empty()) {
      parse.notes.push_back(fmt::format("line {} before the chain ignored: \"{}\"", line_number, text::excerpt(line)));
    } else {
      parse.skipped.push_back(fmt::format("line {} is not an item and was not read: \"{}\"", line_number,
                                          text::excerpt(line)));
    }
  }
  if (!items.empty()) parse.format = "list";
}

// ----- Validation shared by both formats

void validate(std::vector<RawItem>& raw, ChainParse& parse) {
  if (raw.size() > kMaxItems) {
    parse.errors.push_back(fmt::format("{} items; at most {} are accepted", raw.size(), kMaxItems));
    return;
  }
  for (auto& item : raw) {
    ChainItem out;
    std::set<std::string> seen;
    for (auto& statement : item.statements) {
      const std::string cleaned = text::valid_utf8(text::trim(statement));
      if (cleaned != text::trim(statement)) {
        parse.skipped.push_back(fmt::format("{}: invalid UTF-8 replaced in \"{}\"", item.where, text::excerpt(cleaned)));
      }
      if (cleaned.empty()) {
        parse.errors.push_back(fmt::format("{} has an empty statement", item.where));
        continue;
      }
      if (cleaned.size() > kMaxStatementChars) {
        parse.errors.push_back(fmt::format("{}: a statement is {} bytes long; the limit is {}", item.where,
                                           cleaned.size(), kMaxStatementChars));
        continue;
      }
      if (!seen.insert(cleaned).second) {
        parse.skipped.push_back(fmt::format("{}: repeated statement \"{}\" dropped", item.where, text::excerpt(cleaned)));
        continue;
      }
      out.any_of.push_back(cleaned);
    }
    if (out.any_of.size() > kMaxAlternatives) {
      parse.errors.push_back(fmt::format("{} has {} alternatives; at most {} are accepted", item.where,
                                         out.any_of.size(), kMaxAlternatives));
    }
    if (out.any_of.empty() && item.statements.empty()) {
      parse.errors.push_back(fmt::format("{} has no statements", item.where));
    }
    std::set<std::string> seen_objects;
    for (const auto& object : item.objects) {
      const std::string cleaned = text::valid_utf8(text::trim(object));
      if (cleaned.empty() || cleaned.size() > kMaxObjectChars) {
        parse.skipped.push_back(fmt::format("{}: object word \"{}\" dropped (empty or longer than {} bytes)",
                                            item.where, text::excerpt(cleaned), kMaxObjectChars));
        continue;
      }
      if (seen_objects.insert(cleaned).second) out.objects.push_back(cleaned);
    }
    parse.chain.push_back(std::move(out));
  }
}

std::string describe_chain(const std::vector<ChainItem>& chain) {
  std::string out;
  for (const auto& item : chain) {
    std::string alternatives;
    for (const auto& s : item.any_of) alternatives += (alternatives.empty() ? "" : " OR ") + s;
    out += (out.empty() ? "[" : " AND [") + alternatives + "]";
  }
  return out;
}

}  // namespace

ChainParse parse_chain(const std::string& answer) {
  ChainParse parse;
  std::vector<RawItem> raw;
  const auto scan = text::scan_json(answer);
  // An unclosed bracket that opens JSON ('{', '[{', '["') means the answer was cut off;
  // a stray '[' in prose does not.
  bool cut_off = false;
  if (scan.unclosed_at != std::string::npos) {
    const std::size_t next = answer.find_first_not_of(" \t\r\n", scan.unclosed_at + 1);
    cut_off = answer[scan.unclosed_at] == '{' ||
              (next != std::string::npos && (answer[next] == '{' || answer[next] == '"' || answer[next] == '['));
  }
  const bool found_json = read_json_chain(answer, scan, raw, parse);
  if (cut_off) {
    parse.errors.push_back("the answer ends inside unfinished JSON (cut off by the token limit?)");
    return parse;
  }
  if (!found_json) read_list_chain(answer, raw, parse);
  if (raw.empty()) {
    if (parse.errors.empty()) {
      parse.errors.push_back(fmt::format("no chain found (neither JSON nor a numbered list) in \"{}\"",
                                         text::excerpt(answer)));
    }
    return parse;
  }
  validate(raw, parse);
  return parse;
}

RuleChainExtraction extract_chain(const VisionLanguageModel& model, const Rule& rule, const ChainsOptions& options,
                                  const CallContext& call) {
  RuleChainExtraction result;
  result.rule_id = rule.id;
  if (options.only_missing && !rule.chain.empty()) {
    result.kept_existing = true;
    return result;
  }
  std::vector<ChatTurn> turns;
  if (!options.prompts.system.empty()) turns.push_back({ChatTurn::Role::System, options.prompts.system});
  turns.push_back({ChatTurn::Role::User,
                   render_prompt(options.prompts.chains, {{"rule", rule.objective_text}, {"original", rule.text}})});
  GenerateLimits limits;
  limits.max_new_tokens = options.max_new_tokens;
  result.model_output = model.generate(nullptr, turns, limits, call);
  result.parse = parse_chain(result.model_output);
  if (!result.parse.errors.empty()) {
    std::string reasons;
    for (const auto& error : result.parse.errors) reasons += (reasons.empty() ? "" : "; ") + error;
    result.not_processed_reason = "the chain could not be read: " + reasons;
    return result;
  }
  result.processed = true;
  return result;
}

ToolOutput extract_chains(const VisionLanguageModel& model, const Constitution& input, const ChainsOptions& options,
                          const ToolProgress& progress, const CallContext& call) {
  require_generation(model, "chains");
  ToolOutput output;
  output.constitution = input;
  for (std::size_t i = 0; i < input.rules.size(); ++i) {
    const Rule& rule = input.rules[i];
    Rule& out_rule = output.constitution.rules[i];
    const auto result = run_on_rule<RuleChainExtraction>(rule, [&] { return extract_chain(model, rule, options, call); });
    std::vector<std::string> comments;
    std::string summary;
    if (result.kept_existing) {
      comments.push_back("chains: kept the existing chain (--only-missing)");
      summary = "kept existing chain";
    } else if (!result.processed) {
      ++output.rules_not_processed;
      comments.push_back(kNotProcessedPrefix + result.not_processed_reason);
      if (!result.model_output.empty()) {
        comments.push_back("model answer: " + text::excerpt(result.model_output, 400));
      }
      summary = comments.front();
    } else {
      std::size_t statements = 0;
      for (const auto& item : result.parse.chain) statements += item.any_of.size();
      comments.push_back(fmt::format("chains: {} items, {} statements (read as {})", result.parse.chain.size(),
                                     statements, result.parse.format));
      if (!rule.chain.empty()) {
        comments.push_back("previous chain (replaced): " + text::excerpt(describe_chain(rule.chain), 2000));
      }
      for (const auto& note : result.parse.notes) comments.push_back("note: " + note);
      for (const auto& skipped : result.parse.skipped) comments.push_back(kReviewPrefix + ("the parser: " + skipped));
      out_rule.chain = result.parse.chain;
      ++output.rules_changed;
      // The same findings as `constitution check`, on the new chain only.
      Constitution single;
      single.rules = {out_rule};
      const std::string prefix = fmt::format("rule '{}': ", rule.id);
      for (auto finding : lint_constitution(single)) {
        if (finding.rfind(prefix, 0) == 0) finding = finding.substr(prefix.size());
        if (finding.find("objective_text is the original text") != std::string::npos) continue;  // objectify's job
        comments.push_back(kReviewPrefix + finding);
      }
      summary = fmt::format("{} items, {} statements", result.parse.chain.size(), statements);
    }
    finish_rule(output, i, rule, std::move(comments), summary, progress);
  }
  return output;
}

}  // namespace imgjudge::tools
