// imgjudge: the constitution, a TOML list of safety rules (docs/constitution-format.md).
#pragma once

#include "imgjudge/export.hpp"

#include "imgjudge/backend.hpp"

#include <cstddef>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace imgjudge {

/// The largest constitution text read (file or string), in bytes.
inline constexpr std::size_t kMaxConstitutionBytes = 4u << 20;

/// What a rule whose chain stays uncertain (no item rejected, at least one
/// item no enabled stage could decide) means for the image.
enum class UncertainPolicy {
  Safe,    ///< The rule is not violated (the method as the paper states it).
  Review,  ///< The image needs a person: decision "review", the rule in review_rules.
  Unsafe,  ///< The rule counts as violated.
};
IMGJUDGE_API const char* uncertain_policy_name(UncertainPolicy policy) noexcept;  ///< "safe" / "review" / "unsafe"

/// Every threshold of the CLUE method. Constitution-wide defaults, optionally
/// overridden per rule. Defaults are the paper's (docs/constitution-format.md).
struct Thresholds {
  /// Relevance scanning: a rule is judged only if cos(image, rule text) >= relevance.
  double relevance = 0.22;
  /// Strategy 1 reject: M(x,c) - m0 < -reject_factor * m0.
  double reject_factor = 0.3;
  /// Strategy 1 accept: M(x,c) - m0 > accept_factor * (1 - m0).
  double accept_factor = 0.8;
  /// Strategy 2 accept: M(x,c) - M(x without the central object, c) > region_delta ("beta").
  double region_delta = 0.6;
  /// Strategy 2 uses a detected box only if its confidence exceeds this.
  double locator_confidence = 0.05;
  /// A box under this fraction of the image area is judged on its crop instead.
  double small_region_fraction = 0.01;
  /// Run cascaded chain-of-thought reasoning for items that stay uncertain.
  bool cascade = true;
  /// A rule still uncertain after every enabled stage (docs/constitution-format.md).
  UncertainPolicy uncertain = UncertainPolicy::Review;
  /// A rule is violated when its violation score (the weakest item's evidence,
  /// docs/verdict-json.md) reaches this; 1 = only when every item is accepted.
  double score_threshold = 1.0;
};

/// The prompts the Judge asks. `{statement}` is replaced by a precondition statement.
struct QuestionTemplates {
  /// Token-probability question (the paper's wording).
  std::string score =
      "Is the following content visible via this image? Answer \"Yes\" or \"No\". "
      "Statement: {statement}";
  /// Cascaded reasoning, turn 1: think step by step.
  std::string reason =
      "Look at the image carefully and think step by step: is the following statement "
      "true of what is visible in this image? Statement: {statement}";
  /// Cascaded reasoning, turn 2: the answer as JSON.
  std::string reason_json =
      "Based on your reasoning, answer in JSON only, as {\"rating\": \"Yes\" or \"No\", "
      "\"rationale\": \"one sentence\"}. Is the statement true of the image?";
};

/// `template_text` with every `{statement}` replaced by `statement`: the prompt
/// the Judge asks (tools and benchmarks build the same prompts with it).
IMGJUDGE_API std::string render_question(const std::string& template_text, const std::string& statement);

/// One precondition of a rule: satisfied if ANY of its statements is visible.
struct ChainItem {
  std::vector<std::string> any_of;   ///< Short visual statements (OR).
  std::vector<std::string> objects;  ///< Central object words for strategy 2 (may be empty).
};

enum class Severity { Low, Medium, High, Critical };
IMGJUDGE_API const char* severity_name(Severity severity) noexcept;  ///< "low", "medium", ...

struct Rule {
  std::string id;        ///< Unique, [a-z0-9_.-]+.
  std::string category;  ///< e.g. "sexual", "violence".
  Severity severity = Severity::High;
  std::string text;            ///< The rule as the policy team wrote it.
  std::string objective_text;  ///< The objectified rewrite the model is asked about.
  /// AND of items. A rule is violated only if every item is accepted.
  std::vector<ChainItem> chain;
  /// Texts embedded for relevance scanning (defaults to {objective_text}).
  std::vector<std::string> relevance_texts;
  /// Constitution defaults with this rule's overrides applied.
  Thresholds thresholds;
  /// Constitution templates with this rule's overrides applied.
  QuestionTemplates questions;
};

/// A validated constitution. Plain data: copy it, inspect it, hand it to a Judge.
struct IMGJUDGE_API Constitution {
  int schema_version = 1;
  std::string name;
  std::string version;
  std::string description;
  Thresholds defaults;
  QuestionTemplates questions;
  /// `[defaults] answer_spellings`: which tokens of "Yes"/"No" count (exact by
  /// default, the paper's definition). Constitution-wide: m0 and every score
  /// of a Judge use one definition.
  AnswerSpellings answer_spellings = AnswerSpellings::Exact;
  std::vector<Rule> rules;
  /// `[categories.<name>]`: threshold overrides for every rule of a category
  /// (applied over `defaults`, under a rule's own `thresholds`), by category.
  std::vector<std::pair<std::string, Thresholds>> categories;
  /// "sha256:<hex>" of the normalized constitution (independent of comments,
  /// key order and whitespace); reported in every verdict for audit.
  std::string hash;
  /// Where it came from (a path or "<string>"), used in error messages.
  std::string source;

  /// Parses and validates TOML. Errors are Error(InvalidConstitution) with
  /// "source:line:column: what is wrong".
  static Constitution from_string(const std::string& toml_text,
                                  const std::string& source_name = "<string>");
  /// Reads a file (Error(Io) if unreadable) and parses it.
  static Constitution from_file(const std::string& path);

  /// The constitution bundled with imgjudge (src/core/default_constitution.toml).
  static Constitution builtin_default();
  /// The TOML text of builtin_default(), as shipped.
  static const char* builtin_default_text() noexcept;

  const Rule* find_rule(const std::string& id) const noexcept;
};

/// Non-fatal findings of `imgjudge constitution check` (e.g. a rule with no chain).
IMGJUDGE_API std::vector<std::string> lint_constitution(const Constitution& constitution);

}  // namespace imgjudge
