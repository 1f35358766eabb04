// The offline constitution tools (src/tools): objectify and chain extraction loops
// against a test-double model, their tolerant parsers, number flagging, the prompt
// templates, the TOML writer's round trip, the lint heuristics, and the plumbing
// through the scripted backend.
#include <catch2/catch.hpp>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "backends/scripted/scripted_backend.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"

using Catch::Matchers::Contains;
using imgjudge::Constitution;
using imgjudge::Error;
using imgjudge::ErrorCode;
namespace tools = imgjudge::tools;

namespace {

// A text-only model whose answers are configured per prompt content: the answer list
// whose every needle occurs in the last user turn is used (the most needles win), one
// answer per call, the last one repeating. Every prompt is recorded.
class TextModelDouble : public imgjudge::VisionLanguageModel {
 public:
  void on(std::vector<std::string> needles, std::vector<std::string> answers) {
    entries_.push_back({std::move(needles), std::move(answers), 0});
  }
  std::vector<std::string> prompts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return prompts_;
  }
  std::size_t calls_containing(const std::string& needle) const {
    const auto all = prompts();
    return static_cast<std::size_t>(
        std::count_if(all.begin(), all.end(), [&](const std::string& p) { return p.find(needle) != std::string::npos; }));
  }

  std::string model_id() const override { return "test-double"; }
  imgjudge::Capabilities capabilities() const override { return {true, true}; }
  std::shared_ptr<const imgjudge::ImageContext> prepare(const imgjudge::Image&,
                                                        const imgjudge::CallContext&) const override {
    throw Error(ErrorCode::Unsupported, "the tools must not send images");
  }
  std::vector<double> score(const imgjudge::ImageContext*, const std::vector<imgjudge::Question>&,
                            const imgjudge::AnswerWords&, const imgjudge::CallContext&) const override {
    throw Error(ErrorCode::Unsupported, "the tools must not score");
  }
  std::string generate(const imgjudge::ImageContext* image, const std::vector<imgjudge::ChatTurn>& turns,
                       const imgjudge::GenerateLimits&, const imgjudge::CallContext&) const override {
    if (image) throw Error(ErrorCode::Unsupported, "the tools must generate without an image");
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string& prompt = turns.back().text;
    prompts_.push_back(prompt);
    Entry* best = nullptr;
    for (auto& entry : entries_) {
      const bool all = std::all_of(entry.needles.begin(), entry.needles.end(),
                                   [&](const std::string& n) { return prompt.find(n) != std::string::npos; });
      if (all && (!best || entry.needles.size() > best->needles.size())) best = &entry;
    }
    if (!best) throw Error(ErrorCode::Backend, "test double: no answer for this prompt");
    const std::string& answer = best->answers[std::min(best->next, best->answers.size() - 1)];
    ++best->next;
    return answer;
  }
  std::string describe_answer_tokens(const imgjudge::AnswerWords&) const override { return "test double"; }

 private:
  struct Entry {
    std::vector<std::string> needles;
    std::vector<std::string> answers;
    std::size_t next;
  };
  mutable std::mutex mutex_;
  mutable std::vector<Entry> entries_;
  mutable std::vector<std::string> prompts_;
};

const char* kRatePrompt = "Rate how objective";
const char* kRewritePrompt = "Rewrite the rule";
const char* kChainsPrompt = "precondition chain";

std::string rating(int score, const std::string& why) {
  return "{\"score\": " + std::to_string(score) + ", \"explanation\": \"" + why + "\"}";
}
std::string rewrite(const std::string& text) { return "{\"rewrite\": \"" + text + "\"}"; }

imgjudge::Rule rule_with(const std::string& id, const std::string& text) {
  imgjudge::Rule rule;
  rule.id = id;
  rule.category = "test";
  rule.text = text;
  rule.objective_text = text;
  rule.relevance_texts = {text};
  return rule;
}

const char* kTwoRules = R"(
schema_version = 1
name = "two rules"
version = "0.1"

[[rules]]
id = "pose"
category = "sexual"
text = "No suggestive poses."

[[rules]]
id = "gore"
category = "violence"
text = "No gore."
objective_text = "The image shows blood or open wounds."
relevance_texts = ["gore", "a bloody wound"]
)";

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

}  // namespace

// ------------------------------------------------------------------ objectify loop

TEST_CASE("objectify rates, rewrites and re-rates until the target", "[unit][constitution_tools]") {
  TextModelDouble model;
  const std::string better = "The image shows a person lying with the legs spread apart by more than 90 degrees.";
  model.on({kRatePrompt, "Rule: No suggestive poses."}, {rating(4, "suggestive is a matter of taste")});
  model.on({kRewritePrompt}, {rewrite(better)});
  model.on({kRatePrompt, "Rule: " + better}, {rating(9, "names visible positions and an angle")});

  const auto result = tools::objectify_rule(model, rule_with("pose", "No suggestive poses."), {});
  REQUIRE(result.processed);
  REQUIRE(result.attempts.size() == 2);
  CHECK(result.attempts[0].rating->score == 4);
  CHECK(result.attempts[1].rating->score == 9);
  CHECK(result.best == 1);
  CHECK(result.reached_target);
  CHECK(model.prompts().size() == 3);
  // The rewrite prompt carries the rating, the explanation, the target and both texts.
  const std::string rewrite_prompt = model.prompts()[1];
  CHECK_THAT(rewrite_prompt, Contains("rated the current wording 4/10"));
  CHECK_THAT(rewrite_prompt, Contains("suggestive is a matter of taste"));
  CHECK_THAT(rewrite_prompt, Contains("at least 9/10"));
  CHECK_THAT(rewrite_prompt, Contains("The policy team wrote: No suggestive poses."));
  // The angle came from the model: a person must set it.
  REQUIRE(result.flagged.size() == 1);
  CHECK(result.flagged[0].quantity == "90 degrees");
  CHECK(result.flagged[0].kind == "angle");
  CHECK_FALSE(result.flagged[0].in_original);
}

TEST_CASE("objectify stops at the round limit and keeps the best-rated wording", "[unit][constitution_tools]") {
  TextModelDouble model;
  model.on({kRatePrompt, "Rule: No gore."}, {rating(3, "gore is vague")});
  model.on({kRewritePrompt}, {rewrite("Blood is shown."), rewrite("Open wounds with blood are shown."),
                              rewrite("Some blood is shown.")});
  model.on({kRatePrompt, "Rule: Blood is shown."}, {rating(6, "better")});
  model.on({kRatePrompt, "Rule: Open wounds with blood are shown."}, {rating(7, "close")});
  model.on({kRatePrompt, "Rule: Some blood is shown."}, {rating(5, "some is vague")});

  tools::ObjectifyOptions options;
  options.rounds = 3;
  const auto result = tools::objectify_rule(model, rule_with("gore", "No gore."), options);
  REQUIRE(result.processed);
  CHECK(result.attempts.size() == 4);
  CHECK(result.best == 2);
  CHECK(result.attempts[result.best].text == "Open wounds with blood are shown.");
  CHECK_FALSE(result.reached_target);
  CHECK(model.prompts().size() == 7);  // 1 rating + 3 x (rewrite + rating)
  // Round 3 improves on the best wording so far, not on the latest.
  CHECK_THAT(model.prompts()[5], Contains("The current wording is: Open wounds with blood are shown."));

  options.rounds = 1;
  TextModelDouble one_round;
  one_round.on({kRatePrompt}, {rating(3, "vague")});
  one_round.on({kRewritePrompt}, {rewrite("Blood is shown.")});
  const auto limited = tools::objectify_rule(one_round, rule_with("gore", "No gore."), options);
  CHECK(limited.attempts.size() == 2);
  CHECK(one_round.calls_containing(kRewritePrompt) == 1);
}

TEST_CASE("objectify keeps a rule already at the target without asking for a rewrite", "[unit][constitution_tools]") {
  TextModelDouble model;
  model.on({kRatePrompt}, {rating(10, "fully visual")});
  const auto result = tools::objectify_rule(model, rule_with("r", "The image shows a knife."), {});
  CHECK(result.processed);
  CHECK(result.attempts.size() == 1);
  CHECK(result.reached_target);
  CHECK(result.flagged.empty());
  CHECK(model.calls_containing(kRewritePrompt) == 0);
}

TEST_CASE("objectify counts unusable rewrites as rounds and reports them", "[unit][constitution_tools]") {
  TextModelDouble model;
  model.on({kRatePrompt, "Rule: No gore."}, {rating(3, "vague")});
  model.on({kRewritePrompt}, {"Sure! Here are some ideas:\n- blood\n- wounds", "{\"rewrite\": \"No gore.\"}",
                              "The image shows open wounds."});
  model.on({kRatePrompt, "Rule: The image shows open wounds."}, {rating(9, "visual")});
  const auto result = tools::objectify_rule(model, rule_with("gore", "No gore."), {});
  REQUIRE(result.attempts.size() == 4);
  CHECK_FALSE(result.attempts[1].rating);
  CHECK_THAT(result.attempts[1].problem, Contains("3 lines of prose"));
  CHECK_THAT(result.attempts[2].problem, Contains("repeats the current wording"));
  CHECK(result.attempts[3].rating->score == 9);
  CHECK_THAT(result.attempts[3].problem, Contains("no JSON; the answer line was used"));
  CHECK(result.best == 3);
}

TEST_CASE("objectify_constitution writes a reviewable file that parses back", "[unit][constitution_tools]") {
  const Constitution input = Constitution::from_string(kTwoRules, "two.toml");
  TextModelDouble model;
  const std::string better = "The image shows a person lying on the back with the legs spread apart by more than 90 degrees.";
  model.on({kRatePrompt, "Rule: No suggestive poses."}, {rating(4, "suggestive is taste")});
  model.on({kRewritePrompt, "No suggestive poses."}, {rewrite(better)});
  model.on({kRatePrompt, "Rule: " + better}, {rating(9, R"(visual \"positions\"\nand an angle)")});
  model.on({kRatePrompt, "Rule: The image shows blood or open wounds."}, {"I cannot rate this."});

  std::vector<std::string> progress;
  const auto output = tools::objectify_constitution(
      model, input, {}, [&](std::size_t i, std::size_t n, const std::string& line) {
        progress.push_back(std::to_string(i + 1) + "/" + std::to_string(n) + " " + line);
      });
  REQUIRE(progress.size() == 2);
  CHECK(progress[0] == "1/2 pose: 4/10 -> 9/10");
  CHECK(output.rules_changed == 1);
  CHECK(output.rules_not_processed == 1);
  CHECK(output.rules_to_review == 2);

  const auto& pose = output.constitution.rules[0];
  CHECK(pose.text == "No suggestive poses.");  // the original is kept beside the rewrite
  CHECK(pose.objective_text == better);
  CHECK(pose.relevance_texts == std::vector<std::string>{better});  // the default follows the rewrite
  const auto& gore = output.constitution.rules[1];
  CHECK(gore.objective_text == input.rules[1].objective_text);  // unchanged
  CHECK(gore.relevance_texts == input.rules[1].relevance_texts);

  const std::string toml = tools::write_constitution_toml(output.constitution, output.comments, {"header line"});
  CHECK_THAT(toml, Contains("# objectify: rated 4/10 -> 9/10 (target 9) with rewrite 1 of 1"));
  CHECK_THAT(toml, Contains("# REVIEW: number \"90 degrees\" (angle) was introduced by the model"));
  CHECK_THAT(toml, Contains("# NOT PROCESSED: the rating of the current wording could not be read: no score found"));
  CHECK_THAT(toml, Contains("# rated 9/10: visual \"positions\" and an angle"));
  const Constitution reread = Constitution::from_string(toml, "objectified.toml");
  REQUIRE(reread.rules.size() == 2);
  CHECK(reread.rules[0].objective_text == better);
  CHECK(reread.rules[0].text == "No suggestive poses.");
  CHECK(reread.rules[1].relevance_texts == input.rules[1].relevance_texts);
}

TEST_CASE("a model error leaves one rule unprocessed; cancellation ends the run", "[unit][constitution_tools]") {
  const Constitution input = Constitution::from_string(kTwoRules);
  TextModelDouble model;  // answers nothing: every call throws Error(Backend)
  const auto output = tools::objectify_constitution(model, input, {});
  CHECK(output.rules_not_processed == 2);
  CHECK_THAT(output.comments.at("pose")[0], Contains("NOT PROCESSED: the model failed [backend]"));

  struct Cancelled : TextModelDouble {
    std::string generate(const imgjudge::ImageContext*, const std::vector<imgjudge::ChatTurn>&,
                         const imgjudge::GenerateLimits&, const imgjudge::CallContext&) const override {
      throw Error(ErrorCode::Cancelled, "cancelled");
    }
  } cancelled;
  CHECK_THROWS_AS(tools::objectify_constitution(cancelled, input, {}), Error);
  CHECK_THROWS_AS(tools::extract_chains(cancelled, input, {}), Error);

  tools::ObjectifyOptions bad;
  bad.target = 11;
  CHECK_THROWS_AS(tools::objectify_rule(model, input.rules[0], bad), Error);

  const auto chains = tools::extract_chains(model, input, {});
  CHECK(chains.rules_not_processed == 2);
  CHECK(chains.rules_to_review == 2);
  CHECK_THAT(chains.comments.at("gore")[0], Contains("NOT PROCESSED: the model failed [backend]"));

  // A model that cannot generate text is refused before any rule, naming the tool.
  struct ScoresOnly : TextModelDouble {
    imgjudge::Capabilities capabilities() const override { return {false, true}; }
  } scores_only;
  CHECK_THROWS_WITH(tools::objectify_constitution(scores_only, input, {}), Contains("objectify needs text generation"));
  CHECK_THROWS_WITH(tools::extract_chains(scores_only, input, {}), Contains("chains needs text generation"));
}

// ------------------------------------------------------------------ rating and rewrite parsers

TEST_CASE("parse_rating reads JSON, tolerates prose, and reports what it could not read",
          "[unit][constitution_tools]") {
  std::string problem;
  auto r = tools::parse_rating(R"({"score": 7, "explanation": "mostly visual"})", problem);
  REQUIRE(r);
  CHECK(r->score == 7);
  CHECK(r->explanation == "mostly visual");
  CHECK(problem.empty());

  r = tools::parse_rating("Sure.\n```json\n{\"Score\": \"6/10\", \"reason\": \"taste words\"}\n```\n", problem);
  REQUIRE(r);
  CHECK(r->score == 6);
  CHECK(r->explanation == "taste words");

  r = tools::parse_rating("{'score': 8, 'explanation': 'ok',}", problem);
  REQUIRE(r);
  CHECK(r->score == 8);
  CHECK_THAT(problem, Contains("repairs"));

  r = tools::parse_rating(R"({"score": 8.5, "explanation": "x"})", problem);
  REQUIRE(r);
  CHECK(r->score == 8);
  CHECK_THAT(problem, Contains("rounded down"));

  r = tools::parse_rating("I would give this rule a 7/10 because it is fairly concrete.", problem);
  REQUIRE(r);
  CHECK(r->score == 7);
  CHECK_THAT(problem, Contains("read from prose"));

  r = tools::parse_rating("Score: 5. It uses vague words.", problem);
  REQUIRE(r);
  CHECK(r->score == 5);

  CHECK_FALSE(tools::parse_rating("Between 4/10 and 6/10, I think.", problem));
  CHECK_THAT(problem, Contains("several scores (4, 6)"));
  CHECK_FALSE(tools::parse_rating(R"({"score": 12, "explanation": "x"})", problem));
  CHECK_THAT(problem, Contains("outside 1-10"));
  CHECK_FALSE(tools::parse_rating(R"({"score": "high"})", problem));
  CHECK_THAT(problem, Contains("not a number"));
  r = tools::parse_rating(R"({"score": 7, "explanation": "this is cut of)", problem);
  REQUIRE(r);
  CHECK(r->score == 7);
  CHECK_THAT(problem, Contains("ends inside unfinished JSON"));
  CHECK_FALSE(tools::parse_rating(R"({"explanation": "this is cut of)", problem));
  CHECK_THAT(problem, Contains("ends inside unfinished JSON"));
  CHECK_FALSE(tools::parse_rating("", problem));
  CHECK_THAT(problem, Contains("no score found"));
}

TEST_CASE("parse_rewrite reads JSON or one plain line, nothing else", "[unit][constitution_tools]") {
  std::string problem;
  auto r = tools::parse_rewrite("Here you go: {\"rewrite\": \"The image shows a knife.\"}", problem);
  REQUIRE(r);
  CHECK(*r == "The image shows a knife.");
  CHECK(problem.empty());

  r = tools::parse_rewrite("Rewritten rule: \"The image shows a gun.\"\n", problem);
  REQUIRE(r);
  CHECK(*r == "The image shows a gun.");
  CHECK_THAT(problem, Contains("no JSON"));

  CHECK_FALSE(tools::parse_rewrite("{\"answer\": \"The image shows a gun.\"}", problem));
  CHECK_THAT(problem, Contains("no 'rewrite' key"));
  CHECK_FALSE(tools::parse_rewrite("{\"rewrite\": 3}", problem));
  CHECK_THAT(problem, Contains("not a string"));
  CHECK_FALSE(tools::parse_rewrite("{\"rewrite\": \"The image sh", problem));
  CHECK_THAT(problem, Contains("ends inside unfinished JSON"));
  CHECK_FALSE(tools::parse_rewrite("Option A: a gun.\nOption B: a knife.", problem));
  CHECK_FALSE(tools::parse_rewrite("   \n", problem));
  CHECK_THAT(problem, Contains("empty"));
  CHECK_FALSE(tools::parse_rewrite("{\"rewrite\": \"  \"}", problem));
}

TEST_CASE("numbers in a rewrite are flagged with their kind", "[unit][constitution_tools]") {
  const auto flags = tools::find_policy_numbers(
      "The image shows two or more people under 18 years old, one of them an 18-year-old, with skin covering "
      "over 50% of the frame, legs apart by 90° and a blade longer than 10 cm, aged 16.",
      "No minors. Anyone under 18.");
  auto find = [&](const std::string& quantity) -> const tools::FlaggedNumber* {
    for (const auto& f : flags) {
      if (f.quantity == quantity) return &f;
    }
    return nullptr;
  };
  REQUIRE(find("two or more people"));
  CHECK(find("two or more people")->kind == "count");
  REQUIRE(find("18 years old"));
  CHECK(find("18 years old")->kind == "age");
  CHECK(find("18 years old")->in_original);
  REQUIRE(find("18 year old"));
  REQUIRE(find("50%"));
  CHECK(find("50%")->kind == "percentage");
  CHECK_FALSE(find("50%")->in_original);
  REQUIRE(find("90°"));
  CHECK(find("90°")->kind == "angle");
  REQUIRE(find("10 cm"));
  CHECK(find("10 cm")->kind == "size");
  REQUIRE(find("16"));
  CHECK(find("16")->kind == "age");
  CHECK(flags.size() == 7);  // "one" is an article, not a threshold
  CHECK(tools::find_policy_numbers("The image shows a knife.", "").empty());
}

// ------------------------------------------------------------------ chain parser

TEST_CASE("parse_chain reads the JSON the prompt asks for", "[unit][constitution_tools]") {
  const auto parse = tools::parse_chain(R"({"chain": [
    {"any_of": ["A person is visible in the image.", "An animal is visible in the image."], "objects": ["person", "animal"]},
    {"any_of": ["The body has visible bloody injuries."], "objects": ["blood"]},
    {"any_of": ["The injuries are severe enough to suggest imminent death."], "objects": []}
  ]})");
  CHECK(parse.errors.empty());
  CHECK(parse.skipped.empty());
  CHECK(parse.notes.empty());
  CHECK(parse.format == "json");
  REQUIRE(parse.chain.size() == 3);
  CHECK(parse.chain[0].any_of.size() == 2);
  CHECK(parse.chain[0].objects == std::vector<std::string>{"person", "animal"});
  CHECK(parse.chain[1].any_of == std::vector<std::string>{"The body has visible bloody injuries."});
  CHECK(parse.chain[2].objects.empty());
}

TEST_CASE("parse_chain tolerates variants and reports what it skipped", "[unit][constitution_tools]") {
  SECTION("prose around the JSON, a bare array, strings and arrays as items") {
    const auto parse = tools::parse_chain(
        "Here is the chain:\n```json\n[\"A knife is visible.\", [\"Blood is visible.\", \"A wound is visible.\"]]\n```\n"
        "Let me know if you need more.");
    CHECK(parse.errors.empty());
    REQUIRE(parse.chain.size() == 2);
    CHECK(parse.chain[1].any_of.size() == 2);
    CHECK(any_contains(parse.notes, "text before the chain ignored: \"Here is the chain:\""));
    CHECK(any_contains(parse.skipped, "text after the chain ignored: \"Let me know"));
  }
  SECTION("unknown keys, bad objects, repeated statements, OR inside a string") {
    const auto parse = tools::parse_chain(R"({"chain": [
      {"any_of": ["A gun is visible.", "A gun is visible."], "objects": [3, "gun"], "note": "x"},
      {"any_of": "A person is visible OR an animal is visible", "objects": "person"}
    ]})");
    CHECK(parse.errors.empty());
    REQUIRE(parse.chain.size() == 2);
    CHECK(parse.chain[0].any_of == std::vector<std::string>{"A gun is visible."});
    CHECK(parse.chain[0].objects == std::vector<std::string>{"gun"});
    CHECK(parse.chain[1].any_of == std::vector<std::string>{"A person is visible", "an animal is visible"});
    CHECK(parse.chain[1].objects == std::vector<std::string>{"person"});
    CHECK(any_contains(parse.skipped, "item 1: repeated statement"));
    CHECK(any_contains(parse.skipped, "item 1: 'objects' holds a non-string: 3"));
    CHECK(any_contains(parse.skipped, "item 1: unknown key 'note' ignored"));
    CHECK(any_contains(parse.skipped, "item 2: a statement joined alternatives with \"OR\"; split into 2"));
  }
  SECTION("items as separate JSON objects") {
    const auto parse = tools::parse_chain("{\"any_of\": [\"A flag is visible.\"]}\n{\"any_of\": [\"The flag shows a swastika.\"]}");
    CHECK(parse.errors.empty());
    CHECK(parse.chain.size() == 2);
    CHECK(any_contains(parse.notes, "separate JSON objects"));
  }
}

TEST_CASE("parse_chain reads numbered lists and the paper's one-line form", "[unit][constitution_tools]") {
  SECTION("numbered list with OR, objects, continuation lines") {
    const auto parse = tools::parse_chain(
        "Preconditions:\n"
        "1. A person is visible in the image. OR An animal is visible in the image. (objects: person, animal)\n"
        "2) The person is naked or partly naked. AND\n"
        "- The person's teeth are bared.\n"
        "   OR The person's fists are raised.\n"
        "   Objects: teeth, fist\n"
        "This chain covers the rule.\n");
    CHECK(parse.errors.empty());
    CHECK(parse.format == "list");
    REQUIRE(parse.chain.size() == 3);
    CHECK(parse.chain[0].any_of ==
          std::vector<std::string>{"A person is visible in the image.", "An animal is visible in the image."});
    CHECK(parse.chain[0].objects == std::vector<std::string>{"person", "animal"});
    // Lower-case "or" is part of the statement, not a split point.
    CHECK(parse.chain[1].any_of == std::vector<std::string>{"The person is naked or partly naked."});
    CHECK(parse.chain[2].any_of ==
          std::vector<std::string>{"The person's teeth are bared.", "The person's fists are raised."});
    CHECK(parse.chain[2].objects == std::vector<std::string>{"teeth", "fist"});
    CHECK(any_contains(parse.notes, "line 1 before the chain ignored: \"Preconditions:\""));
    CHECK(any_contains(parse.skipped, "line 7 is not an item and was not read: \"This chain covers the rule.\""));
  }
  SECTION("one line: [a OR b] AND [c] AND [d]") {
    const auto parse = tools::parse_chain(
        "[people visible OR animals visible] AND [body has visible bloody injuries] AND [the injuries indicate "
        "imminent death]");
    CHECK(parse.errors.empty());
    REQUIRE(parse.chain.size() == 3);
    CHECK(parse.chain[0].any_of == std::vector<std::string>{"people visible", "animals visible"});
    CHECK(parse.chain[2].any_of == std::vector<std::string>{"the injuries indicate imminent death"});
  }
}

TEST_CASE("parse_chain refuses damaged answers and says why", "[unit][constitution_tools]") {
  auto errors_of = [](const std::string& answer) {
    const auto parse = tools::parse_chain(answer);
    CHECK_FALSE(parse.errors.empty());
    std::string all;
    for (const auto& e : parse.errors) all += e + "\n";
    return all;
  };
  CHECK_THAT(errors_of(R"({"chain": [{"any_of": ["A person is visible."]}, {"any_of": ["Blood is vis)"),
             Contains("ends inside unfinished JSON"));
  CHECK_THAT(errors_of(R"({"chain": [{"any_of": ["A person is visible."]}, {"objects": ["blood"]}]})"),
             Contains("item 2 has no 'any_of' list"));
  CHECK_THAT(errors_of(R"({"chain": [{"any_of": ["A person is visible.", 7]}]})"),
             Contains("item 1: 'any_of' holds a non-string: 7"));
  CHECK_THAT(errors_of(R"({"chain": [{"any_of": []}]})"), Contains("item 1 has no statements"));
  CHECK_THAT(errors_of(R"({"chain": [{"any_of": ["  "]}]})"), Contains("item 1 has an empty statement"));
  CHECK_THAT(errors_of(R"({"chain": [42]})"), Contains("item 1 is number"));
  CHECK_THAT(errors_of("1. A person is visible. OR\n2. Blood is visible."), Contains("line 1 has an empty statement"));
  CHECK_THAT(errors_of("I am sorry, I cannot help with that."), Contains("no chain found"));
  CHECK_THAT(errors_of(""), Contains("no chain found"));
  std::string many = "{\"chain\": [";
  for (int i = 0; i < 25; ++i) many += std::string(i ? "," : "") + "[\"Statement number " + std::to_string(i) + " is visible.\"]";
  CHECK_THAT(errors_of(many + "]}"), Contains("25 items; at most 20"));
}

TEST_CASE("the parsers return on hostile answers", "[unit][constitution_tools]") {
  // Many unclosed or deeply nested brackets: the scan has a work budget, so these return
  // (with an error) instead of taking quadratic time.
  for (const std::string& answer : {std::string(200000, '['), std::string(200000, '{'),
                                    std::string(100000, '[') + std::string(100000, ']'),
                                    std::string(50000, '"') + "[\"x\"" + std::string(50000, '}')}) {
    const auto parse = tools::parse_chain(answer);
    CHECK_FALSE(parse.errors.empty());
    CHECK(parse.chain.empty());
    std::string problem;
    CHECK_FALSE(tools::parse_rating(answer, problem));
    CHECK_FALSE(tools::parse_rewrite(answer, problem));
  }
}

TEST_CASE("extract_chains writes good chains, keeps rules it could not read, and reviews them",
          "[unit][constitution_tools]") {
  const Constitution input = Constitution::from_string(kTwoRules);
  TextModelDouble model;
  model.on({kChainsPrompt, "Rule: No suggestive poses."},
           {R"({"chain": [{"any_of": ["A person is visible in the image."], "objects": ["person"]},
                          {"any_of": ["Should the pose be sexual?"]}]})"});
  model.on({kChainsPrompt, "Rule: The image shows blood or open wounds."}, {"{\"chain\": [{\"any_of\": [\"Blood is"});

  const auto output = tools::extract_chains(model, input, {});
  CHECK(output.rules_changed == 1);
  CHECK(output.rules_not_processed == 1);
  CHECK(output.rules_to_review == 2);
  REQUIRE(output.constitution.rules[0].chain.size() == 2);
  CHECK(output.constitution.rules[1].chain.empty());
  const auto& pose = output.comments.at("pose");
  CHECK(pose[0] == "chains: 2 items, 2 statements (read as json)");
  CHECK(any_contains(pose, "REVIEW: chain item 1: statement \"Should the pose be sexual?\" is a question"));
  const auto& gore = output.comments.at("gore");
  CHECK_THAT(gore[0], Contains("NOT PROCESSED: the chain could not be read: the answer ends inside unfinished JSON"));
  CHECK_THAT(gore[1], Contains("model answer: {\"chain\""));
  // The chains prompt has both texts; the objective one is the rule to decompose.
  CHECK(model.calls_containing("Rule: The image shows blood or open wounds.") == 1);

  const std::string toml = tools::write_constitution_toml(output.constitution, output.comments);
  const Constitution reread = Constitution::from_string(toml);
  CHECK(reread.rules[0].chain[0].objects == std::vector<std::string>{"person"});
  CHECK(reread.rules[1].chain.empty());

  tools::ChainsOptions only_missing;
  only_missing.only_missing = true;
  TextModelDouble quiet;
  quiet.on({kChainsPrompt}, {"[\"A person is visible in the image.\"]"});
  const auto second = tools::extract_chains(quiet, reread, only_missing);
  REQUIRE(second.constitution.rules[0].chain.size() == reread.rules[0].chain.size());
  CHECK(second.constitution.rules[0].chain[1].any_of == reread.rules[0].chain[1].any_of);
  CHECK(quiet.prompts().size() == 1);  // only the rule without a chain was asked
  CHECK(second.constitution.rules[1].chain.size() == 1);
  CHECK(any_contains(second.comments.at("pose"), "kept the existing chain"));
}

// ------------------------------------------------------------------ writer round trip

TEST_CASE("the TOML writer round-trips constitutions to the same hash", "[unit][constitution_tools]") {
  SECTION("the bundled default") {
    const Constitution original = Constitution::builtin_default();
    const Constitution reread = Constitution::from_string(tools::write_constitution_toml(original));
    CHECK(reread.hash == original.hash);
  }
  SECTION("overrides, odd characters, comments") {
    const char* text = R"(
schema_version = 1
name = "odd \"names\" \\ here"
version = "2.0-rc1"
description = "line one\nline two\ttabbed, unicode: é ✓"

[defaults]
relevance = 0.25
cascade = false

[questions]
score = "Statement: {statement}. Yes or No?"

[[rules]]
id = "a.b-c_1"
category = "violence"
severity = "critical"
text = "No \"gore\"."
objective_text = "The image shows blood: 'a lot'."
relevance_texts = ["gore", "blood"]
chain = [
  { any_of = ["A person is visible.", "An animal is visible."], objects = ["person"] },
  { any_of = ["Blood is visible on the body."] },
]
thresholds = { relevance = 1e-05, accept_factor = 0.9 }
questions = { reason = "Think: {statement}", reason_json = "JSON please" }

[[rules]]
id = "plain"
category = "c"
severity = "low"
text = "No x."
)";
    const Constitution original = Constitution::from_string(text);
    const std::string written = tools::write_constitution_toml(
        original, {{"a.b-c_1", {"a comment\nwith a newline and a \x01 control", std::string(300, 'w')}}},
        {"header", ""});
    const Constitution reread = Constitution::from_string(written, "written.toml");
    CHECK(reread.hash == original.hash);
    CHECK(reread.rules[0].thresholds.relevance == 1e-05);
    CHECK_THAT(written, Contains("# a comment with a newline and a control"));
    CHECK_THAT(written, Contains("thresholds = { relevance = 1e-05, accept_factor = 0.9 }"));
    CHECK(written.find("[rules.thresholds]") == std::string::npos);
    // Only what differs from the constitution's defaults is written per rule.
    CHECK(written.find("cascade = false\n", written.find("id = \"plain\"")) == std::string::npos);
  }
  SECTION("invalid UTF-8 from a model is replaced, never written") {
    Constitution c = Constitution::builtin_default();
    c.rules[0].objective_text = "The image shows \xC3\x28 bytes.";
    const Constitution reread = Constitution::from_string(tools::write_constitution_toml(c));
    CHECK(reread.rules[0].objective_text == "The image shows \xEF\xBF\xBD( bytes.");
  }
}

// ------------------------------------------------------------------ prompts

TEST_CASE("prompt templates: defaults, overrides, placeholders", "[unit][constitution_tools]") {
  const auto defaults = tools::ToolPrompts::defaults();
  CHECK_THAT(defaults.rate, Contains("{rule}"));
  CHECK_THAT(defaults.rewrite, Contains("{current}"));
  CHECK_THAT(defaults.chains, Contains("bloody injuries"));

  // to_toml() reads back to the same prompts.
  const auto reread = tools::ToolPrompts::from_toml(defaults.to_toml(), "prompts.toml");
  CHECK(reread.rate == defaults.rate);
  CHECK(reread.rewrite == defaults.rewrite);
  CHECK(reread.chains == defaults.chains);
  CHECK(reread.system.empty());
  // Written as editable multi-line literals; text a literal cannot hold is escaped instead.
  CHECK_THAT(defaults.to_toml(), Contains("rate = '''\nYou review content-moderation rules"));
  tools::ToolPrompts odd = defaults;
  odd.rate = "Rate '''{rule}''' now\r";
  odd.chains = "{rule}'";
  const auto odd_reread = tools::ToolPrompts::from_toml(odd.to_toml(), "odd.toml");
  CHECK(odd_reread.rate == odd.rate);
  CHECK(odd_reread.chains == odd.chains);

  const auto custom = tools::ToolPrompts::from_toml("system = \"Be terse.\"\nrate = \"Rate {rule} as {\\\"score\\\": n}\"\n", "p.toml");
  CHECK(custom.system == "Be terse.");
  CHECK(custom.chains == defaults.chains);
  CHECK(tools::render_prompt(custom.rate, {{"rule", "R"}}) == "Rate R as {\"score\": n}");
  CHECK(tools::render_prompt("{a}{b}{", {{"a", "{b}"}}) == "{b}{b}{");

  auto error_of = [](const std::string& toml) {
    try {
      tools::ToolPrompts::from_toml(toml, "p.toml");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidArgument);
      return std::string(e.what());
    }
    FAIL("expected an error");
    return std::string();
  };
  CHECK_THAT(error_of("rates = \"{rule}\""), Contains("p.toml:1:1: unknown prompt 'rates'"));
  CHECK_THAT(error_of("rate = \"{rul}\""), Contains("unknown placeholder {rul} (known here: {rule})"));
  CHECK_THAT(error_of("rewrite = \"no current\""), Contains("must contain the placeholder {current}"));
  CHECK_THAT(error_of("chains = 3"), Contains("must be a string"));
  CHECK_THAT(error_of("rate = "), Contains("TOML syntax error"));
}

// ------------------------------------------------------------------ lint

TEST_CASE("lint warns about chain statements that are not visual statements", "[unit][constitution_tools]") {
  const Constitution c = Constitution::from_string(R"(
schema_version = 1
name = "t"
version = "1"
[[rules]]
id = "r"
category = "c"
text = "No x."
objective_text = "The image shows x."
chain = [
  { any_of = ["Is a weapon visible?", "The weapon should not be shown.", "No weapons."] },
  { any_of = ["The person intends to harm someone.", "The pose is suggestive."] },
  { any_of = ["A gunshot sound is heard.", "bloody injuries"] },
  { any_of = ["A knife is visible.", "a knife is visible"] },
  { any_of = ["The injury looks fatal.", "The crotch fills most of the image.", "exposed female breasts"] },
]
)");
  const auto findings = imgjudge::lint_constitution(c);
  const std::vector<std::string> expected = {
      "\"Is a weapon visible?\" is a question",
      "\"The weapon should not be shown.\" uses the policy word 'should'",
      "\"No weapons.\" reads as a rule",
      "\"The person intends to harm someone.\" depends on intent or feelings ('intends')",
      "\"The pose is suggestive.\" depends on taste ('suggestive')",
      "\"A gunshot sound is heard.\" is about 'sound'",
      "\"bloody injuries\" has no verb",
      "\"exposed female breasts\" has no verb",
      "\"a knife is visible\" repeats \"A knife is visible.\" apart from case and punctuation",
  };
  for (const auto& needle : expected) {
    INFO(needle);
    CHECK(any_contains(findings, needle));
  }
  CHECK(findings.size() == expected.size());
}

// ------------------------------------------------------------------ through the scripted backend

TEST_CASE("the tools run through the scripted backend's text generation", "[unit][constitution_tools]") {
  // The scripted backend answers every single-turn generation with defaults.thinking.
  const auto rated = imgjudge::backends::scripted::load_models_from_string(
      "[defaults]\nthinking = '{\"score\": 9, \"explanation\": \"scripted\"}'\n", "rate.toml", ".");
  const Constitution input = Constitution::builtin_default();
  const auto objectified = tools::objectify_constitution(*rated.vlm, input, {});
  CHECK(objectified.rules_changed == 0);
  CHECK(objectified.rules_not_processed == 0);
  CHECK(objectified.constitution.rules.size() == input.rules.size());
  CHECK(Constitution::from_string(tools::write_constitution_toml(objectified.constitution, objectified.comments)).hash ==
        input.hash);

  const auto chained = imgjudge::backends::scripted::load_models_from_string(
      "[defaults]\nthinking = '{\"chain\": [{\"any_of\": [\"A person is visible in the image.\"], \"objects\": "
      "[\"person\"]}]}'\n",
      "chain.toml", ".");
  const auto output = tools::extract_chains(*chained.vlm, input, {});
  CHECK(output.rules_changed == input.rules.size());
  const Constitution reread =
      Constitution::from_string(tools::write_constitution_toml(output.constitution, output.comments));
  for (const auto& rule : reread.rules) {
    REQUIRE(rule.chain.size() == 1);
    CHECK(rule.chain[0].any_of == std::vector<std::string>{"A person is visible in the image."});
  }
}
