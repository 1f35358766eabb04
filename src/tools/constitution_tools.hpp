// The offline stages of the CLUE method as tools (docs/constitution-tools.md):
//
//   objectify  a model rates each rule's objectiveness (1-10) and rewrites the rules
//              under a target until they reach it (or the rounds run out);
//   chains     a model turns each rule into a precondition chain (AND of items, each an
//              OR of short visual statements) with central object words per item.
//
// Both talk to a model only through VisionLanguageModel::generate() with no image, so
// they run on any backend (torch families, the scripted backend, a test double). Both
// return an updated Constitution plus review comments per rule; write_constitution_toml()
// turns that into a TOML file that Constitution::from_string() reads back.
//
// Model output is parsed tolerantly, but never silently: whatever a parser skipped or
// could not read is returned as a note, and a rule whose answer could not be used is
// left unchanged with the reason.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"

namespace imgjudge::tools {

// ---------------------------------------------------------------------------------
// Prompt templates

/// The prompts of the offline tools. Placeholders are `{name}` with a name from the
/// lists below; any other brace text (such as a JSON example) is left as written.
///
///   rate      {rule}                    the wording to rate                  (required)
///   rewrite   {original} {current}      the policy text, the wording to improve
///             {score} {explanation}     the current wording's rating and why
///             {target}                  the score to reach     ({current} required)
///   chains    {rule}                    the (objective) rule text            (required)
///             {original}                the policy text as written
///   system    (no placeholders)         optional system turn; empty means none
struct ToolPrompts {
  std::string system;
  std::string rate;
  std::string rewrite;
  std::string chains;

  /// The built-in prompts (our wording of the paper's method).
  static ToolPrompts defaults();
  /// The defaults with the keys present in `toml_text` replaced. Unknown keys, unknown
  /// placeholders and missing required placeholders are Error(InvalidArgument) naming
  /// "source:line:column".
  static ToolPrompts from_toml(const std::string& toml_text, const std::string& source_name);
  static ToolPrompts from_file(const std::string& path);
  /// A TOML file of these prompts that from_toml() reads back (for editing).
  std::string to_toml() const;
};

/// Replaces each known `{name}` in `template_text` by its value; other braces stay.
std::string render_prompt(const std::string& template_text,
                          const std::map<std::string, std::string>& values);

// ---------------------------------------------------------------------------------
// Objectify

struct Rating {
  int score = 0;  ///< 1..10
  std::string explanation;
};

/// Reads {"score": n, "explanation": "..."} from model text (prose around it, code
/// fences, "7/10", "score: 7" are tolerated). On failure returns nullopt and sets
/// `problem`; on success `problem` may still hold a note (e.g. "read from prose").
std::optional<Rating> parse_rating(const std::string& text, std::string& problem);

/// Reads {"rewrite": "..."} (or a single plain line) from model text.
std::optional<std::string> parse_rewrite(const std::string& text, std::string& problem);

/// A number in an objective text that a person should decide (angle, size, age, ...).
struct FlaggedNumber {
  std::string quantity;  ///< As written with its unit, e.g. "90 degrees", "18 years".
  std::string kind;      ///< "angle", "percentage", "age", "size", "duration", "count" or "number".
  bool in_original = false;  ///< The same value occurs in the text the model was given.
};

/// Every number in `text` (digits or number words from "two" up), classified by the
/// words around it. `original` is searched for the same values.
std::vector<FlaggedNumber> find_policy_numbers(const std::string& text, const std::string& original);

struct ObjectifyOptions {
  int target = 9;           ///< Rewrite rules rated below this.
  int rounds = 3;           ///< At most this many rewrites per rule.
  int max_new_tokens = 384;
  ToolPrompts prompts = ToolPrompts::defaults();
};

/// One wording of a rule and what the model said about it.
struct ObjectifyAttempt {
  std::string text;
  std::optional<Rating> rating;  ///< nullopt: the rating could not be read (see problem).
  std::string problem;           ///< Why this attempt is unrated or unusable; or a note.
};

struct RuleObjectification {
  std::string rule_id;
  /// False: the rule is left unchanged (see not_processed_reason).
  bool processed = false;
  std::string not_processed_reason;
  /// attempts[0] is the rule's current wording; later ones are rewrites, in order.
  std::vector<ObjectifyAttempt> attempts;
  std::size_t best = 0;          ///< Index of the chosen attempt (highest score, earliest on ties).
  bool reached_target = false;
  std::vector<FlaggedNumber> flagged;  ///< Numbers in the chosen rewrite (empty if not rewritten).
};

/// Rates and rewrites one rule's wording (its objective_text).
RuleObjectification objectify_rule(const VisionLanguageModel& model, const Rule& rule,
                                   const ObjectifyOptions& options, const CallContext& call = {});

// ---------------------------------------------------------------------------------
// Precondition chains

/// What parse_chain() read, and what it did not.
struct ChainParse {
  std::vector<ChainItem> chain;
  /// Text around the chain that was ignored (a preamble such as "Here is the chain:").
  std::vector<std::string> notes;
  /// Parts inside or after the chain that were dropped (an unknown key, a repeated
  /// statement, a line that is not an item). The chain is usable; a person should check.
  std::vector<std::string> skipped;
  /// Damage: parts of the chain that could not be read (a truncated answer, an item
  /// without statements). The chain must not be used when this is non-empty, because a
  /// chain with an item missing is looser than the rule.
  std::vector<std::string> errors;
  std::string format;  ///< "json", "list" or "" (nothing found).
};

/// Reads a chain from model text: JSON ({"chain": [{"any_of": [...], "objects": [...]}]}
/// or a bare array), else a numbered or bulleted list with alternatives joined by an
/// upper-case "OR" and optional "(objects: a, b)", else the paper's one-line form
/// "[a OR b] AND [c]".
ChainParse parse_chain(const std::string& text);

struct ChainsOptions {
  int max_new_tokens = 768;
  bool only_missing = false;  ///< Keep rules that already have a chain.
  ToolPrompts prompts = ToolPrompts::defaults();
};

struct RuleChainExtraction {
  std::string rule_id;
  bool processed = false;
  std::string not_processed_reason;
  bool kept_existing = false;  ///< only_missing and the rule had a chain.
  std::string model_output;
  ChainParse parse;
};

RuleChainExtraction extract_chain(const VisionLanguageModel& model, const Rule& rule,
                                  const ChainsOptions& options, const CallContext& call = {});

// ---------------------------------------------------------------------------------
// Whole constitutions and the TOML emitter

/// A constitution after a tool ran, with the review comments to write above each rule.
struct ToolOutput {
  Constitution constitution;
  std::map<std::string, std::vector<std::string>> comments;  ///< rule id -> comment lines
  std::size_t rules_changed = 0;
  std::size_t rules_not_processed = 0;
  std::size_t rules_to_review = 0;  ///< Rules with at least one "REVIEW:" comment.
};

/// Called after each rule: (index, count, a one-line summary).
using ToolProgress = std::function<void(std::size_t, std::size_t, const std::string&)>;

ToolOutput objectify_constitution(const VisionLanguageModel& model, const Constitution& input,
                                  const ObjectifyOptions& options, const ToolProgress& progress = {},
                                  const CallContext& call = {});

ToolOutput extract_chains(const VisionLanguageModel& model, const Constitution& input,
                          const ChainsOptions& options, const ToolProgress& progress = {},
                          const CallContext& call = {});

/// Writes `constitution` as TOML (schema_version 1). Every value that affects judging is
/// written, so Constitution::from_string() of the result has the same hash; comments and
/// the original key order are not preserved. `comments` go above each rule, one "# " line
/// each (wrapped); `header` lines open the file.
std::string write_constitution_toml(const Constitution& constitution,
                                    const std::map<std::string, std::vector<std::string>>& comments = {},
                                    const std::vector<std::string>& header = {});

}  // namespace imgjudge::tools
