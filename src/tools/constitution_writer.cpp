// Writes a Constitution as TOML (schema_version 1, docs/constitution-format.md).
//
// The parser resolves defaults into every rule, so the writer reverses that: a rule's
// thresholds and questions are written only where they differ from the constitution's,
// and relevance_texts only where they differ from {objective_text}. Re-parsing gives
// the same content hash (the hash is over resolved values). Review notes from the tools
// go in comments, so the schema stays strict.
#include <fmt/format.h>

#include "tools/constitution_tools.hpp"
#include "tools/model_text.hpp"

namespace imgjudge::tools {
namespace {

constexpr std::size_t kCommentWidth = 96;

// Shortest text that reads back as the same double, always with a TOML float form.
std::string toml_number(double value) {
  std::string out = fmt::format("{}", value);
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

std::string toml_string_array(const std::vector<std::string>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + text::toml_quoted(values[i]);
  return out + "]";
}

// `key = value` lines (or inline-table entries) of the thresholds that differ from `base`.
std::vector<std::string> threshold_entries(const Thresholds& t, const Thresholds* base) {
  std::vector<std::string> entries;
  auto number = [&](const char* key, double value, double base_value) {
    if (!base || value != base_value) entries.push_back(fmt::format("{} = {}", key, toml_number(value)));
  };
  const Thresholds none;
  const Thresholds& b = base ? *base : none;
  number("relevance", t.relevance, b.relevance);
  number("reject_factor", t.reject_factor, b.reject_factor);
  number("accept_factor", t.accept_factor, b.accept_factor);
  number("region_delta", t.region_delta, b.region_delta);
  number("locator_confidence", t.locator_confidence, b.locator_confidence);
  number("small_region_fraction", t.small_region_fraction, b.small_region_fraction);
  if (!base || t.cascade != b.cascade) entries.push_back(fmt::format("cascade = {}", t.cascade ? "true" : "false"));
  return entries;
}

std::vector<std::string> question_entries(const QuestionTemplates& q, const QuestionTemplates& base) {
  std::vector<std::string> entries;
  if (q.score != base.score) entries.push_back("score = " + text::toml_quoted(q.score));
  if (q.reason != base.reason) entries.push_back("reason = " + text::toml_quoted(q.reason));
  if (q.reason_json != base.reason_json) entries.push_back("reason_json = " + text::toml_quoted(q.reason_json));
  return entries;
}

std::string inline_table(const std::vector<std::string>& entries) {
  std::string out = "{ ";
  for (std::size_t i = 0; i < entries.size(); ++i) out += (i ? ", " : "") + entries[i];
  return out + " }";
}

// "# ..." lines: one per comment, wrapped at word boundaries, control characters
// (which TOML forbids in comments) turned into spaces.
void append_comment(std::string& out, const std::string& comment, const std::string& continuation_indent) {
  std::string clean = text::valid_utf8(comment);
  for (char& c : clean) {
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7F) c = ' ';
  }
  std::string line;
  std::size_t at = 0;
  bool first = true;
  while (at < clean.size()) {
    std::size_t end = clean.find(' ', at);
    if (end == std::string::npos) end = clean.size();
    const std::string word = clean.substr(at, end - at);
    at = end + 1;
    if (word.empty()) continue;
    if (!line.empty() && line.size() + 1 + word.size() > kCommentWidth) {
      out += "# " + std::string(first ? "" : continuation_indent) + line + "\n";
      first = false;
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty() || first) out += "# " + std::string(first ? "" : continuation_indent) + line + "\n";
}

}  // namespace

std::string write_constitution_toml(const Constitution& c,
                                    const std::map<std::string, std::vector<std::string>>& comments,
                                    const std::vector<std::string>& header) {
  std::string out;
  for (const auto& line : header) append_comment(out, line, "  ");
  if (!header.empty()) out += "\n";
  out += fmt::format("schema_version = {}\n", c.schema_version);
  out += "name = " + text::toml_quoted(c.name) + "\n";
  out += "version = " + text::toml_quoted(c.version) + "\n";
  if (!c.description.empty()) out += "description = " + text::toml_quoted(c.description) + "\n";

  out += "\n[defaults]\n";
  for (const auto& entry : threshold_entries(c.defaults, nullptr)) out += entry + "\n";
  const auto questions = question_entries(c.questions, QuestionTemplates{});
  if (!questions.empty()) {
    out += "\n[questions]\n";
    for (const auto& entry : questions) out += entry + "\n";
  }

  for (const auto& rule : c.rules) {
    out += "\n[[rules]]\n";
    if (auto it = comments.find(rule.id); it != comments.end()) {
      for (const auto& comment : it->second) append_comment(out, comment, "  ");
    }
    out += "id = " + text::toml_quoted(rule.id) + "\n";
    out += "category = " + text::toml_quoted(rule.category) + "\n";
    out += fmt::format("severity = \"{}\"\n", severity_name(rule.severity));
    out += "text = " + text::toml_quoted(rule.text) + "\n";
    out += "objective_text = " + text::toml_quoted(rule.objective_text) + "\n";
    if (rule.relevance_texts != std::vector<std::string>{rule.objective_text}) {
      out += "relevance_texts = " + toml_string_array(rule.relevance_texts) + "\n";
    }
    if (!rule.chain.empty()) {
      out += "chain = [\n";
      for (const auto& item : rule.chain) {
        out += "  { any_of = " + toml_string_array(item.any_of);
        if (!item.objects.empty()) out += ", objects = " + toml_string_array(item.objects);
        out += " },\n";
      }
      out += "]\n";
    }
    const auto thresholds = threshold_entries(rule.thresholds, &c.defaults);
    if (!thresholds.empty()) out += "thresholds = " + inline_table(thresholds) + "\n";
    const auto rule_questions = question_entries(rule.questions, c.questions);
    if (!rule_questions.empty()) out += "questions = " + inline_table(rule_questions) + "\n";
  }
  return out;
}

}  // namespace imgjudge::tools
