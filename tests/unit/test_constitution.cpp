#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"

using imgjudge::Constitution;
using imgjudge::Error;
using imgjudge::ErrorCode;
using Catch::Matchers::Contains;

namespace {

const char* kMinimal = R"(
schema_version = 1
name = "test"
version = "1"

[[rules]]
id = "gore.blood"
category = "violence"
text = "No gore."
objective_text = "The image shows blood."
chain = [
  { any_of = ["A person is visible.", "An animal is visible."] },
  { any_of = ["Blood is visible."], objects = ["blood"] },
]
)";

// Parses `text` expecting an InvalidConstitution error containing `fragment`.
std::string error_of(const std::string& text) {
  try {
    Constitution::from_string(text, "policy.toml");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidConstitution);
    return e.what();
  }
  FAIL("expected an InvalidConstitution error");
  return "";
}

std::string with_rule_fields(const std::string& extra) {
  return std::string("schema_version = 1\nname = \"t\"\nversion = \"1\"\n[[rules]]\nid = \"r\"\n"
                     "category = \"c\"\ntext = \"No x.\"\n") + extra;
}

}  // namespace

TEST_CASE("a minimal constitution parses with the paper's defaults", "[unit][constitution]") {
  const Constitution c = Constitution::from_string(kMinimal);
  REQUIRE(c.rules.size() == 1);
  const auto& rule = c.rules[0];
  CHECK(rule.id == "gore.blood");
  CHECK(rule.severity == imgjudge::Severity::High);
  CHECK(rule.chain.size() == 2);
  CHECK(rule.chain[0].any_of.size() == 2);
  CHECK(rule.chain[1].objects == std::vector<std::string>{"blood"});
  CHECK(rule.relevance_texts == std::vector<std::string>{"The image shows blood."});
  CHECK(rule.thresholds.relevance == Approx(0.22));
  CHECK(rule.thresholds.reject_factor == Approx(0.3));
  CHECK(rule.thresholds.accept_factor == Approx(0.8));
  CHECK(rule.thresholds.region_delta == Approx(0.6));
  CHECK(rule.thresholds.locator_confidence == Approx(0.05));
  CHECK(rule.thresholds.small_region_fraction == Approx(0.01));
  CHECK(rule.thresholds.cascade);
  CHECK(rule.questions.score.find("{statement}") != std::string::npos);
  CHECK(c.hash.rfind("sha256:", 0) == 0);
  CHECK(c.hash.size() == 7 + 64);
}

TEST_CASE("defaults and per-rule overrides resolve in order", "[unit][constitution]") {
  const Constitution c = Constitution::from_string(std::string(kMinimal).replace(
      std::string(kMinimal).find("[[rules]]"), 9,
      "[defaults]\nrelevance = 0.3\ncascade = false\n[questions]\nscore = \"Is it so? {statement}\"\n"
      "[[rules]]\nthresholds = { accept_factor = 0.5 }"));
  const auto& rule = c.rules[0];
  CHECK(rule.thresholds.relevance == Approx(0.3));
  CHECK(rule.thresholds.accept_factor == Approx(0.5));
  CHECK_FALSE(rule.thresholds.cascade);
  CHECK(rule.questions.score == "Is it so? {statement}");
}

TEST_CASE("answer_spellings is exact by default, any on request, constitution-wide only", "[unit][constitution]") {
  const std::string base = kMinimal;
  const auto with_defaults = [&](const std::string& defaults) {
    std::string text = base;
    return text.replace(text.find("[[rules]]"), 9, "[defaults]\n" + defaults + "\n[[rules]]");
  };
  CHECK(Constitution::from_string(base).answer_spellings == imgjudge::AnswerSpellings::Exact);
  CHECK(Constitution::from_string(with_defaults("answer_spellings = \"exact\"")).hash == Constitution::from_string(base).hash);
  const Constitution any = Constitution::from_string(with_defaults("answer_spellings = \"any\""));
  CHECK(any.answer_spellings == imgjudge::AnswerSpellings::Any);
  CHECK(any.hash != Constitution::from_string(base).hash);  // it changes every score, so the hash
  CHECK_THAT(error_of(with_defaults("answer_spellings = \"some\"")),
             Contains("policy.toml:7:20: defaults.answer_spellings must be \"exact\" or \"any\", not \"some\""));
  std::string per_rule = base;
  per_rule.replace(per_rule.find("chain = ["), 9, "thresholds = { answer_spellings = \"any\" }\nchain = [");
  CHECK_THAT(error_of(per_rule), Contains("answer_spellings"));
  CHECK(std::string(imgjudge::answer_spellings_name(imgjudge::AnswerSpellings::Any)) == "any");
}

TEST_CASE("the hash ignores comments and formatting but not content", "[unit][constitution]") {
  const std::string base = kMinimal;
  const std::string reformatted = "# a comment\n" + base + "\n\n# trailing\n";
  CHECK(Constitution::from_string(base).hash == Constitution::from_string(reformatted).hash);
  std::string changed = base;
  changed.replace(changed.find("Blood is visible."), 17, "Blood is flowing.");
  CHECK(Constitution::from_string(base).hash != Constitution::from_string(changed).hash);
}

TEST_CASE("syntax errors name file, line and column", "[unit][constitution]") {
  const std::string message = error_of("schema_version = 1\nname = \"x\"\nversion = = 2\n");
  CHECK_THAT(message, Contains("policy.toml:3:"));
  CHECK_THAT(message, Contains("TOML syntax error"));
}

TEST_CASE("validation errors name where and what", "[unit][constitution]") {
  SECTION("unknown top-level key") {
    CHECK_THAT(error_of(std::string(kMinimal) + "\nthreshold = 3\n"), Contains("unknown key 'threshold'"));
  }
  SECTION("unknown key in a rule, with its line") {
    const std::string message = error_of(with_rule_fields("colour = \"red\"\n"));
    CHECK_THAT(message, Contains("policy.toml:8:"));
    CHECK_THAT(message, Contains("unknown key 'colour' in rules[0]"));
  }
  SECTION("misspelt threshold") {
    CHECK_THAT(error_of(with_rule_fields("thresholds = { relevence = 0.2 }\n")),
               Contains("unknown key 'relevence'"));
  }
  SECTION("out-of-range threshold") {
    CHECK_THAT(error_of(with_rule_fields("thresholds = { accept_factor = 1.5 }\n")),
               Contains("out of range [0, 1]"));
  }
  SECTION("wrong type") {
    CHECK_THAT(error_of(with_rule_fields("thresholds = { relevance = \"high\" }\n")),
               Contains("must be a number, found a string"));
  }
  SECTION("duplicate ids") {
    const std::string text = with_rule_fields("") + "[[rules]]\nid = \"r\"\ncategory = \"c\"\ntext = \"y\"\n";
    const std::string message = error_of(text);
    CHECK_THAT(message, Contains("duplicate rule id 'r'"));
    CHECK_THAT(message, Contains("first defined at line 4"));
  }
  SECTION("empty chain") {
    CHECK_THAT(error_of(with_rule_fields("chain = []\n")), Contains("chain is empty"));
  }
  SECTION("chain item without statements") {
    CHECK_THAT(error_of(with_rule_fields("chain = [{ any_of = [] }]\n")), Contains("must not be empty"));
  }
  SECTION("empty statement") {
    CHECK_THAT(error_of(with_rule_fields("chain = [{ any_of = [\"  \"] }]\n")), Contains("must not be empty"));
  }
  SECTION("bad id characters") {
    CHECK_THAT(error_of("schema_version = 1\nname = \"t\"\nversion = \"1\"\n[[rules]]\nid = \"Bad Id\"\n"
                        "category = \"c\"\ntext = \"x\"\n"),
               Contains("ids use only"));
  }
  SECTION("unknown severity") {
    CHECK_THAT(error_of(with_rule_fields("severity = \"extreme\"\n")), Contains("not one of low, medium"));
  }
  SECTION("template without placeholder") {
    CHECK_THAT(error_of(with_rule_fields("questions = { score = \"Is it bad?\" }\n")),
               Contains("{statement}"));
  }
  SECTION("wrong schema version") {
    CHECK_THAT(error_of("schema_version = 2\nname = \"t\"\nversion = \"1\"\n"), Contains("schema_version must be"));
  }
  SECTION("missing rules") {
    CHECK_THAT(error_of("schema_version = 1\nname = \"t\"\nversion = \"1\"\n"), Contains("no rules"));
  }
  SECTION("missing required field") {
    CHECK_THAT(error_of("schema_version = 1\nname = \"t\"\nversion = \"1\"\n[[rules]]\nid = \"r\"\ntext = \"x\"\n"),
               Contains("has no 'category'"));
  }
  SECTION("invalid UTF-8") {
    CHECK_THAT(error_of("schema_version = 1\nname = \"\xff\xfe\"\n"), Contains("policy.toml:2:"));
  }
  SECTION("enormous statement") {
    const std::string huge(5000, 'a');
    CHECK_THAT(error_of(with_rule_fields("chain = [{ any_of = [\"" + huge + "\"] }]\n")), Contains("the limit is"));
  }
}

TEST_CASE("a missing file is an Io error naming the path", "[unit][constitution]") {
  try {
    Constitution::from_file("/nonexistent/policy.toml");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Io);
    CHECK_THAT(std::string(e.what()), Contains("/nonexistent/policy.toml"));
  }
}

TEST_CASE("the builtin default constitution is valid and covers the required areas", "[unit][constitution]") {
  const Constitution c = Constitution::builtin_default();
  CHECK(c.name == "imgjudge-default");
  std::set<std::string> categories;
  for (const auto& rule : c.rules) {
    categories.insert(rule.category);
    CHECK_FALSE(rule.chain.empty());
    CHECK(rule.objective_text != rule.text);
  }
  for (const char* needed : {"sexual", "sexual_minors", "violence", "self_harm", "weapons", "hate", "drugs",
                             "animal_cruelty", "disaster", "extremism"}) {
    INFO(needed);
    CHECK(categories.count(needed) == 1);
  }
  // Sexual content involving minors is critical, and an undecided case is never let through.
  for (const auto& rule : c.rules) {
    if (rule.category != "sexual_minors") continue;
    CHECK(rule.severity == imgjudge::Severity::Critical);
    CHECK(rule.thresholds.uncertain != imgjudge::UncertainPolicy::Safe);
  }
  CHECK(c.defaults.uncertain == imgjudge::UncertainPolicy::Review);
  // Reading the shipped file gives the same constitution as the embedded copy.
  CHECK(Constitution::from_file(IMGJUDGE_SOURCE_DIR "/src/core/default_constitution.toml").hash == c.hash);
  CHECK(imgjudge::lint_constitution(c).empty());
}

TEST_CASE("lint reports rules without chains and repeated statements", "[unit][constitution]") {
  const Constitution c = Constitution::from_string(with_rule_fields(""));
  const auto findings = imgjudge::lint_constitution(c);
  REQUIRE(findings.size() == 2);
  CHECK_THAT(findings[0], Contains("no precondition chain"));
  CHECK_THAT(findings[1], Contains("objective_text is the original text"));
}

TEST_CASE("render_question replaces every placeholder, and only placeholders", "[unit][constitution]") {
  using imgjudge::render_question;
  CHECK(render_question("Statement: {statement}", "a knife") == "Statement: a knife");
  CHECK(render_question("{statement} / {statement}", "x") == "x / x");
  CHECK(render_question("no placeholder", "x") == "no placeholder");
  // A statement that itself contains the placeholder is inserted verbatim, once.
  CHECK(render_question("[{statement}]", "{statement}") == "[{statement}]");
  CHECK(render_question("{statement}", "") == "");
  const imgjudge::QuestionTemplates templates;
  CHECK(render_question(templates.score, "smoke").find("Statement: smoke") != std::string::npos);
}
