// Constitution parsing and validation (docs/constitution-format.md).
//
// The TOML is read with toml++, then every key is checked against the schema
// here: unknown keys, wrong types and out-of-range values are errors that name
// "source:line:column". Nothing is silently ignored, because a misspelt
// threshold would silently change what the judge flags.
#include "imgjudge/constitution.hpp"

#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/sha256.hpp"
#include "util/toml_reader.hpp"

namespace imgjudge {
namespace {

constexpr std::size_t kMaxStatementChars = 2000;
constexpr std::size_t kMaxTextChars = 20000;
constexpr std::size_t kMaxRules = 10000;

// Validation context: knows the source name so every error names where it is.
class Reader : public util::TomlReader {
 public:
  explicit Reader(std::string source) : TomlReader(std::move(source), ErrorCode::InvalidConstitution) {}

  const toml::node* find(const toml::table& table, const std::string& key) const {
    return table.get(key);
  }

  std::string string(const toml::node& node, const std::string& what, std::size_t max_chars,
                     bool allow_empty = false) const {
    const auto* value = node.as_string();
    if (!value) fail(node.source(), fmt::format("{} must be a string, found {}", what, type_name(node)));
    std::string text = value->get();
    if (!allow_empty && trimmed_empty(text)) fail(node.source(), fmt::format("{} must not be empty", what));
    if (text.size() > max_chars) {
      fail(node.source(), fmt::format("{} is {} bytes long; the limit is {}", what, text.size(), max_chars));
    }
    return text;
  }

  double number(const toml::node& node, const std::string& what, double min, double max) const {
    double value = 0;
    if (const auto* f = node.as_floating_point()) {
      value = f->get();
    } else if (const auto* i = node.as_integer()) {
      value = static_cast<double>(i->get());
    } else {
      fail(node.source(), fmt::format("{} must be a number, found {}", what, type_name(node)));
    }
    if (!std::isfinite(value) || value < min || value > max) {
      fail(node.source(), fmt::format("{} = {} is out of range [{}, {}]", what, value, min, max));
    }
    return value;
  }

  bool boolean(const toml::node& node, const std::string& what) const {
    const auto* value = node.as_boolean();
    if (!value) fail(node.source(), fmt::format("{} must be true or false, found {}", what, type_name(node)));
    return value->get();
  }

  const toml::table& table(const toml::node& node, const std::string& what) const {
    const auto* value = node.as_table();
    if (!value) fail(node.source(), fmt::format("{} must be a table, found {}", what, type_name(node)));
    return *value;
  }

  const toml::array& array(const toml::node& node, const std::string& what) const {
    const auto* value = node.as_array();
    if (!value) fail(node.source(), fmt::format("{} must be an array, found {}", what, type_name(node)));
    return *value;
  }

  std::vector<std::string> strings(const toml::node& node, const std::string& what,
                                   std::size_t max_chars, bool allow_empty_list) const {
    const auto& list = array(node, what);
    if (list.empty() && !allow_empty_list) fail(node.source(), fmt::format("{} must not be empty", what));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < list.size(); ++i) {
      out.push_back(string(*list.get(i), fmt::format("{}[{}]", what, i), max_chars));
    }
    return out;
  }

  static const char* type_name(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::date: return "a date";
      case toml::node_type::time: return "a time";
      case toml::node_type::date_time: return "a date-time";
      default: return "nothing";
    }
  }

  static bool trimmed_empty(const std::string& text) {
    return text.find_first_not_of(" \t\r\n") == std::string::npos;
  }

};

const std::set<std::string> kThresholdKeys = {
    "relevance", "reject_factor", "accept_factor", "region_delta",
    "locator_confidence", "small_region_fraction", "cascade", "uncertain", "score_threshold"};
const std::set<std::string> kQuestionKeys = {"score", "reason", "reason_json"};

// Applies the keys present in `table` on top of `thresholds`. `extra_keys`
// are other keys the table may hold (read by the caller).
void read_thresholds(const Reader& reader, const toml::table& table, const std::string& section,
                     Thresholds& thresholds, const std::set<std::string>& extra_keys = {}) {
  std::set<std::string> allowed = kThresholdKeys;
  allowed.insert(extra_keys.begin(), extra_keys.end());
  reader.check_keys(table, allowed, section);
  auto number = [&](const char* key, double& field, double min, double max) {
    if (const auto* node = table.get(key)) {
      field = reader.number(*node, fmt::format("{}.{}", section, key), min, max);
    }
  };
  number("relevance", thresholds.relevance, -1.0, 1.0);
  number("reject_factor", thresholds.reject_factor, 0.0, 1.0);
  number("accept_factor", thresholds.accept_factor, 0.0, 1.0);
  number("region_delta", thresholds.region_delta, 0.0, 1.0);
  number("locator_confidence", thresholds.locator_confidence, 0.0, 1.0);
  number("small_region_fraction", thresholds.small_region_fraction, 0.0, 1.0);
  if (const auto* node = table.get("cascade")) {
    thresholds.cascade = reader.boolean(*node, section + ".cascade");
  }
  if (const auto* node = table.get("uncertain")) {
    const std::string value = reader.string(*node, section + ".uncertain", 16);
    if (value == "safe") {
      thresholds.uncertain = UncertainPolicy::Safe;
    } else if (value == "review") {
      thresholds.uncertain = UncertainPolicy::Review;
    } else if (value == "unsafe") {
      thresholds.uncertain = UncertainPolicy::Unsafe;
    } else {
      reader.fail(node->source(),
                  fmt::format("{}.uncertain must be \"safe\", \"review\" or \"unsafe\", not \"{}\"", section, value));
    }
  }
  if (const auto* node = table.get("score_threshold")) {
    thresholds.score_threshold = reader.number(*node, section + ".score_threshold", 0.0, 1.0);
    if (thresholds.score_threshold <= 0.0) {
      reader.fail(node->source(), fmt::format("{}.score_threshold must be above 0 (0 would violate every judged rule)",
                                              section));
    }
  }
}

void read_questions(const Reader& reader, const toml::table& table, const std::string& section,
                    QuestionTemplates& questions) {
  reader.check_keys(table, kQuestionKeys, section);
  auto text = [&](const char* key, std::string& field, bool needs_statement) {
    const auto* node = table.get(key);
    if (!node) return;
    const std::string what = fmt::format("{}.{}", section, key);
    field = reader.string(*node, what, kMaxTextChars);
    if (needs_statement && field.find("{statement}") == std::string::npos) {
      reader.fail(node->source(), fmt::format("{} must contain the placeholder {{statement}}", what));
    }
  };
  text("score", questions.score, true);
  text("reason", questions.reason, true);
  text("reason_json", questions.reason_json, false);
}

Severity parse_severity(const Reader& reader, const toml::node& node, const std::string& what) {
  const std::string name = reader.string(node, what, 32);
  if (name == "low") return Severity::Low;
  if (name == "medium") return Severity::Medium;
  if (name == "high") return Severity::High;
  if (name == "critical") return Severity::Critical;
  reader.fail(node.source(),
              fmt::format("{} = \"{}\" is not one of low, medium, high, critical", what, name));
}

bool valid_rule_id(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<ChainItem> read_chain(const Reader& reader, const toml::node& node,
                                  const std::string& what) {
  const auto& items = reader.array(node, what);
  if (items.empty()) {
    reader.fail(node.source(), fmt::format("{} is empty; a chain needs at least one item (or leave "
                                           "the key out to judge the objective text as one question)",
                                           what));
  }
  std::vector<ChainItem> chain;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string item_what = fmt::format("{}[{}]", what, i);
    const auto& item_table = reader.table(*items.get(i), item_what);
    reader.check_keys(item_table, {"any_of", "objects"}, item_what);
    const auto* any_of = item_table.get("any_of");
    if (!any_of) reader.fail(items.get(i)->source(), fmt::format("{} has no 'any_of' list", item_what));
    ChainItem item;
    item.any_of = reader.strings(*any_of, item_what + ".any_of", kMaxStatementChars, false);
    std::set<std::string> seen;
    for (std::size_t s = 0; s < item.any_of.size(); ++s) {
      if (!seen.insert(item.any_of[s]).second) {
        reader.fail(any_of->as_array()->get(s)->source(),
                    fmt::format("{}.any_of[{}] repeats the statement \"{}\"", item_what, s, item.any_of[s]));
      }
    }
    if (const auto* objects = item_table.get("objects")) {
      item.objects = reader.strings(*objects, item_what + ".objects", 200, true);
    }
    chain.push_back(std::move(item));
  }
  return chain;
}

Rule read_rule(const Reader& reader, const toml::table& table, std::size_t index,
               const Thresholds& defaults, const QuestionTemplates& questions,
               const std::vector<std::pair<std::string, Thresholds>>& categories) {
  const std::string what = fmt::format("rules[{}]", index);
  reader.check_keys(table,
                    {"id", "category", "severity", "text", "objective_text", "chain",
                     "relevance_texts", "thresholds", "questions"},
                    what);
  auto required = [&](const char* key) -> const toml::node& {
    const auto* node = table.get(key);
    if (!node) {
      reader.fail(table.source(), fmt::format("{} has no '{}'", what, key));
    }
    return *node;
  };
  Rule rule;
  const auto& id_node = required("id");
  rule.id = reader.string(id_node, what + ".id", 128);
  if (!valid_rule_id(rule.id)) {
    reader.fail(id_node.source(), fmt::format("{}.id = \"{}\": ids use only a-z, 0-9, '_', '.', '-'",
                                              what, rule.id));
  }
  const std::string rule_what = fmt::format("rule '{}'", rule.id);
  rule.category = reader.string(required("category"), rule_what + " category", 64);
  if (const auto* node = table.get("severity")) rule.severity = parse_severity(reader, *node, rule_what + " severity");
  rule.text = reader.string(required("text"), rule_what + " text", kMaxTextChars);
  rule.objective_text = rule.text;
  if (const auto* node = table.get("objective_text")) {
    rule.objective_text = reader.string(*node, rule_what + " objective_text", kMaxTextChars);
  }
  if (const auto* node = table.get("chain")) rule.chain = read_chain(reader, *node, rule_what + " chain");
  rule.relevance_texts = {rule.objective_text};
  if (const auto* node = table.get("relevance_texts")) {
    rule.relevance_texts = reader.strings(*node, rule_what + " relevance_texts", kMaxTextChars, false);
  }
  rule.thresholds = defaults;
  for (const auto& [category, thresholds] : categories) {
    if (category == rule.category) rule.thresholds = thresholds;
  }
  if (const auto* node = table.get("thresholds")) {
    read_thresholds(reader, reader.table(*node, rule_what + " thresholds"), rule_what + " thresholds",
                    rule.thresholds);
  }
  rule.questions = questions;
  if (const auto* node = table.get("questions")) {
    read_questions(reader, reader.table(*node, rule_what + " questions"), rule_what + " questions",
                   rule.questions);
  }
  return rule;
}

nlohmann::json thresholds_json(const Thresholds& t) {
  nlohmann::json json = {{"relevance", t.relevance},
                         {"reject_factor", t.reject_factor},
                         {"accept_factor", t.accept_factor},
                         {"region_delta", t.region_delta},
                         {"locator_confidence", t.locator_confidence},
                         {"small_region_fraction", t.small_region_fraction},
                         {"cascade", t.cascade}};
  // Only when they differ from the defaults, so the hashes of constitutions
  // that do not set them stay what they were.
  if (t.uncertain != UncertainPolicy::Review) json["uncertain"] = uncertain_policy_name(t.uncertain);
  if (t.score_threshold != 1.0) json["score_threshold"] = t.score_threshold;
  return json;
}

nlohmann::json questions_json(const QuestionTemplates& q) {
  return {{"score", q.score}, {"reason", q.reason}, {"reason_json", q.reason_json}};
}

// The normalized form: every value resolved (defaults applied), keys sorted,
// no comments or formatting. Two files that judge identically hash identically.
std::string normalized_json(const Constitution& c) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& rule : c.rules) {
    nlohmann::json chain = nlohmann::json::array();
    for (const auto& item : rule.chain) chain.push_back({{"any_of", item.any_of}, {"objects", item.objects}});
    rules.push_back({{"id", rule.id},
                     {"category", rule.category},
                     {"severity", severity_name(rule.severity)},
                     {"text", rule.text},
                     {"objective_text", rule.objective_text},
                     {"chain", chain},
                     {"relevance_texts", rule.relevance_texts},
                     {"thresholds", thresholds_json(rule.thresholds)},
                     {"questions", questions_json(rule.questions)}});
  }
  nlohmann::json doc = {{"schema_version", c.schema_version},
                        {"name", c.name},
                        {"version", c.version},
                        {"rules", rules}};
  // Only when it differs from the default, so the hashes of constitutions
  // that do not set it stay what they were.
  if (c.answer_spellings != AnswerSpellings::Exact) doc["answer_spellings"] = answer_spellings_name(c.answer_spellings);
  return doc.dump();
}

// Lint: why a chain statement does not read as a plain fact about what is visible, or
// "" if it does. Word lists, not grammar: a finding is a hint for a person, never an error.
std::string non_visual_reason(const std::string& statement) {
  std::string lowered;
  for (char c : statement) lowered += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<std::string> words;
  std::string word;
  for (char c : lowered + " ") {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '\'' || static_cast<unsigned char>(c) >= 0x80) {
      word += c;
    } else if (!word.empty()) {
      words.push_back(word);
      word.clear();
    }
  }
  auto has_any = [&](std::initializer_list<const char*> list) -> std::string {
    for (const auto& w : words) {
      for (const char* entry : list) {
        if (w == entry) return w;
      }
    }
    return "";
  };
  const auto end = lowered.find_last_not_of(" \t\r\n");
  if (end != std::string::npos && lowered[end] == '?') {
    return "is a question; write it as a statement (\"A knife is visible.\")";
  }
  if (auto w = has_any({"should", "must", "ought", "shall", "forbidden", "prohibited", "allowed", "banned",
                        "acceptable", "unacceptable"}); !w.empty()) {
    return fmt::format("uses the policy word '{}'; describe what is visible instead", w);
  }
  if (!words.empty() && (words[0] == "no" || words[0] == "do" || words[0] == "don't")) {
    return "reads as a rule (\"No ...\", \"Do not ...\"), not as a statement of what is visible";
  }
  if (auto w = has_any({"intends", "intend", "intended", "intent", "intention", "wants", "wishes", "plans",
                        "tries", "trying", "purpose", "meant", "believes", "thinks", "feels", "enjoys",
                        "consent", "consents", "glorifies", "glorify", "promotes", "promote"}); !w.empty()) {
    return fmt::format("depends on intent or feelings ('{}'), which an image does not show", w);
  }
  if (auto w = has_any({"suggestive", "provocative", "inappropriate", "offensive", "disturbing", "vulgar",
                        "obscene", "indecent", "lewd", "tasteless", "shocking", "sexy"}); !w.empty()) {
    return fmt::format("depends on taste ('{}'); name the visible features instead", w);
  }
  if (auto w = has_any({"sound", "sounds", "hear", "heard", "hears", "smell", "smells", "taste", "tastes", "loud",
                        "noise", "audio"}); !w.empty()) {
    return fmt::format("is about '{}', which an image does not carry", w);
  }
  // A statement needs a verb; a bare noun phrase ("bloody injuries", "a knife") is not
  // one. Only short statements are checked, and a non-final word ending in "s" counts as
  // a verb ("The injury looks fatal."), so that full sentences are not flagged.
  bool verb_like = false;
  for (std::size_t i = 0; i + 1 < words.size(); ++i) {
    verb_like = verb_like || (words[i].size() > 3 && words[i].back() == 's' && words[i][words[i].size() - 2] != 's');
  }
  if (words.size() <= 4 && !verb_like &&
      has_any({"is", "are", "was", "were", "be", "being", "been", "has", "have", "had", "shows", "show", "shown",
               "showing", "appears", "appear", "visible", "contains", "contain", "depicts", "depict", "wears", "wear",
               "wearing", "holds", "hold", "holding", "lies", "lying", "stands", "standing", "sits", "sitting",
               "covers", "covered", "displays", "displayed", "points", "pointed", "touches", "touching", "can",
               "does", "do", "bleeds", "bleeding", "looks", "look", "fills", "seems"}).empty()) {
    return "has no verb such as 'is visible', 'shows' or 'wears'; write a full sentence about what is visible";
  }
  return "";
}

// Statements compared for near-duplicates: lower case, letters and digits only.
std::string comparable(const std::string& statement) {
  std::string out;
  for (char c : statement) {
    if (std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace

const char* answer_spellings_name(AnswerSpellings spellings) noexcept {
  return spellings == AnswerSpellings::Any ? "any" : "exact";
}

const char* severity_name(Severity severity) noexcept {
  switch (severity) {
    case Severity::Low: return "low";
    case Severity::Medium: return "medium";
    case Severity::High: return "high";
    case Severity::Critical: return "critical";
  }
  return "unknown";
}

const char* uncertain_policy_name(UncertainPolicy policy) noexcept {
  switch (policy) {
    case UncertainPolicy::Safe: return "safe";
    case UncertainPolicy::Review: return "review";
    case UncertainPolicy::Unsafe: return "unsafe";
  }
  return "unknown";
}

Constitution Constitution::from_string(const std::string& toml_text, const std::string& source_name) {
  const Reader reader(source_name);
  if (toml_text.size() > kMaxConstitutionBytes) {
    reader.fail_at_file(fmt::format("constitution is {} bytes; the limit is {}", toml_text.size(),
                                    kMaxConstitutionBytes));
  }
  // TOML text never holds a NUL byte; one here is usually a length that runs
  // past the end of the caller's string.
  if (const std::size_t nul = toml_text.find('\0'); nul != std::string::npos) {
    reader.fail_at_file(fmt::format("a NUL byte at offset {} (TOML text has none; is the length past the end of the text?)", nul));
  }
  const toml::table root = reader.parse(toml_text);

  Constitution c;
  c.source = source_name;
  reader.check_keys(root,
                    {"schema_version", "name", "version", "description", "defaults", "categories", "questions",
                     "rules"},
                    "the top level");
  const auto* schema = root.get("schema_version");
  if (!schema) reader.fail_at_file("missing 'schema_version' (this library reads schema_version = 1)");
  if (!schema->as_integer() || schema->as_integer()->get() != 1) {
    reader.fail(schema->source(), "schema_version must be the integer 1 (the only version this library reads)");
  }
  const auto* name = root.get("name");
  if (!name) reader.fail_at_file("missing 'name'");
  c.name = reader.string(*name, "name", 200);
  const auto* version = root.get("version");
  if (!version) reader.fail_at_file("missing 'version'");
  c.version = reader.string(*version, "version", 64);
  if (const auto* node = root.get("description")) c.description = reader.string(*node, "description", kMaxTextChars, true);
  if (const auto* node = root.get("defaults")) {
    const toml::table& defaults = reader.table(*node, "defaults");
    read_thresholds(reader, defaults, "defaults", c.defaults, {"answer_spellings"});
    if (const auto* spellings = defaults.get("answer_spellings")) {
      const std::string value = reader.string(*spellings, "defaults.answer_spellings", 16);
      if (value == "exact") {
        c.answer_spellings = AnswerSpellings::Exact;
      } else if (value == "any") {
        c.answer_spellings = AnswerSpellings::Any;
      } else {
        reader.fail(spellings->source(),
                    fmt::format("defaults.answer_spellings must be \"exact\" or \"any\", not \"{}\"", value));
      }
    }
  }
  if (const auto* node = root.get("questions")) {
    read_questions(reader, reader.table(*node, "questions"), "questions", c.questions);
  }

  std::set<std::string> used_categories;
  if (const auto* node = root.get("categories")) {
    const toml::table& categories = reader.table(*node, "categories");
    for (auto&& [key, value] : categories) {
      const std::string category(key.str());
      const std::string section = fmt::format("categories.{}", category);
      Thresholds thresholds = c.defaults;
      read_thresholds(reader, reader.table(value, section), section, thresholds);
      c.categories.emplace_back(category, thresholds);
    }
  }

  const auto* rules_node = root.get("rules");
  if (!rules_node) reader.fail_at_file("no rules: add at least one [[rules]] table");
  const auto* rules = rules_node->as_array();
  if (!rules) reader.fail(rules_node->source(), "'rules' must be an array of tables ([[rules]])");
  if (rules->empty()) reader.fail(rules_node->source(), "'rules' is empty");
  if (rules->size() > kMaxRules) reader.fail(rules_node->source(), fmt::format("more than {} rules", kMaxRules));
  std::map<std::string, const toml::node*> seen_ids;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    const auto* node = rules->get(i);
    Rule rule = read_rule(reader, reader.table(*node, fmt::format("rules[{}]", i)), i, c.defaults, c.questions,
                          c.categories);
    used_categories.insert(rule.category);
    auto [it, inserted] = seen_ids.emplace(rule.id, node);
    if (!inserted) {
      const auto& first = it->second->source().begin;
      reader.fail(node->source(), fmt::format("duplicate rule id '{}' (first defined at line {})",
                                              rule.id, first.line));
    }
    c.rules.push_back(std::move(rule));
  }
  // A [categories] table no rule uses is a misspelt category that would change nothing.
  for (const auto& [category, thresholds] : c.categories) {
    if (used_categories.count(category) == 0) {
      reader.fail(root.get("categories")->as_table()->get(category)->source(),
                  fmt::format("categories.{}: no rule has category \"{}\"", category, category));
    }
  }
  c.hash = "sha256:" + util::sha256_hex(normalized_json(c));
  return c;
}

Constitution Constitution::from_file(const std::string& path) {
  return from_string(util::read_file_text(path, kMaxConstitutionBytes), path);
}

const Rule* Constitution::find_rule(const std::string& id) const noexcept {
  for (const auto& rule : rules) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

std::vector<std::string> lint_constitution(const Constitution& constitution) {
  std::vector<std::string> findings;
  for (const auto& rule : constitution.rules) {
    if (rule.chain.empty()) {
      findings.push_back(fmt::format("rule '{}': no precondition chain; its objective text is asked "
                                     "as one question (run `imgjudge constitution chains`)", rule.id));
    }
    if (rule.objective_text == rule.text) {
      findings.push_back(fmt::format("rule '{}': objective_text is the original text; objectify it "
                                     "(`imgjudge constitution objectify`)", rule.id));
    }
    std::set<std::string> statements;
    std::map<std::string, std::string> by_comparable;  // near-duplicates: same words, other case or punctuation
    for (std::size_t i = 0; i < rule.chain.size(); ++i) {
      for (const auto& statement : rule.chain[i].any_of) {
        if (!statements.insert(statement).second) {
          findings.push_back(fmt::format("rule '{}': chain item {} repeats the statement \"{}\" of an "
                                         "earlier item", rule.id, i, statement));
        } else if (auto [it, fresh] = by_comparable.emplace(comparable(statement), statement); !fresh) {
          findings.push_back(fmt::format("rule '{}': chain item {}: statement \"{}\" repeats \"{}\" apart from "
                                         "case and punctuation", rule.id, i, statement, it->second));
        }
        if (statement.size() < 8) {
          findings.push_back(fmt::format("rule '{}': chain item {}: statement \"{}\" is nearly empty",
                                         rule.id, i, statement));
        } else if (const std::string why = non_visual_reason(statement); !why.empty()) {
          findings.push_back(fmt::format("rule '{}': chain item {}: statement \"{}\" {}", rule.id, i, statement, why));
        }
      }
    }
  }
  return findings;
}

std::string render_question(const std::string& template_text, const std::string& statement) {
  static const std::string placeholder = "{statement}";
  std::string out = template_text;
  for (std::size_t at = out.find(placeholder); at != std::string::npos;
       at = out.find(placeholder, at + statement.size())) {
    out.replace(at, placeholder.size(), statement);
  }
  return out;
}

}  // namespace imgjudge

namespace imgjudge {
namespace core {
extern const char* const kDefaultConstitutionToml;
}

const char* Constitution::builtin_default_text() noexcept { return core::kDefaultConstitutionToml; }

Constitution Constitution::builtin_default() {
  return from_string(core::kDefaultConstitutionToml, "<builtin default constitution>");
}

}  // namespace imgjudge
