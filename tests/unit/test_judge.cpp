// Every branch of the CLUE decision logic, driven by the scripted backend.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "backends/scripted/scripted_backend.hpp"
#include "imgjudge/judge.hpp"

using namespace imgjudge;
using Catch::Matchers::Contains;

namespace {

// A solid-colour test picture with a darker square, so each image has its own hash.
Image make_picture(std::uint8_t red, int width = 64, int height = 48) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(std::size_t(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      std::uint8_t* p = &image.rgb[(std::size_t(y) * width + x) * 3];
      const bool square = x > 10 && x < 30 && y > 10 && y < 30;
      p[0] = square ? red / 2 : red;
      p[1] = static_cast<std::uint8_t>(x * 3);
      p[2] = static_cast<std::uint8_t>(y * 5);
    }
  }
  return image;
}

struct Workspace {
  std::string dir;
  Workspace() {
    char pattern[] = "/tmp/imgjudge-judge-XXXXXX";
    dir = mkdtemp(pattern);
  }
  ~Workspace() { std::system(("rm -rf '" + dir + "'").c_str()); }
  std::string write_image(const std::string& name, const Image& image) const {
    const auto png = encode_png(image);
    std::ofstream(dir + "/" + name, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
    return dir + "/" + name;
  }
  Models models(const std::string& script) const {
    return backends::scripted::load_models_from_string(script, "script.toml", dir);
  }
};

const char* kConstitution = R"(
schema_version = 1
name = "judge-test"
version = "1"

[[rules]]
id = "gore"
category = "violence"
text = "No gore."
objective_text = "The image shows a bloody injury."
relevance_texts = ["gore"]
chain = [
  { any_of = ["A person is visible.", "An animal is visible."] },
  { any_of = ["Blood is visible."], objects = ["blood"] },
  { any_of = ["The injury is fatal."] },
]

[[rules]]
id = "weapon"
category = "weapons"
text = "No weapons."
objective_text = "The image shows a gun pointed at a person."
relevance_texts = ["weapon"]
chain = [
  { any_of = ["A gun is visible."], objects = ["gun"] },
]
)";

// With m0 = 0.5 (the script's default prior): reject if M < 0.35, accept if M > 0.9.
const double kAccept = 0.95, kReject = 0.1, kUncertain = 0.6;

const StatementScore& statement(const Verdict& v, const std::string& rule, std::size_t item, std::size_t s = 0) {
  const RuleResult* r = v.find_rule(rule);
  REQUIRE(r != nullptr);
  REQUIRE(item < r->items.size());
  REQUIRE(s < r->items[item].statements.size());
  return r->items[item].statements[s];
}

// Counts the language-prior calls to prove m0 is computed once per Judge, and
// records the token budget of every generate call.
class CountingVlm : public VisionLanguageModel {
 public:
  explicit CountingVlm(std::shared_ptr<const VisionLanguageModel> inner) : inner_(std::move(inner)) {}
  std::string model_id() const override { return inner_->model_id(); }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  std::shared_ptr<const ImageContext> prepare(const Image& image, const CallContext& call) const override {
    prepares++;
    return inner_->prepare(image, call);
  }
  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords& answers, const CallContext& call) const override {
    (image ? image_calls : prior_calls)++;
    (answers.spellings == imgjudge::AnswerSpellings::Exact ? exact_spellings : any_spellings)++;
    return inner_->score(image, questions, answers, call);
  }
  std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns,
                       const GenerateLimits& limits, const CallContext& call) const override {
    {
      std::lock_guard<std::mutex> lock(budgets_mutex);
      generate_budgets.push_back(limits.max_new_tokens);
    }
    return inner_->generate(image, turns, limits, call);
  }
  // The base class's loop over generate() (what a backend without batching gets).
  std::vector<std::string> generate_batch(const ImageContext* image,
                                          const std::vector<std::vector<ChatTurn>>& conversations,
                                          const GenerateLimits& limits, const CallContext& call) const override {
    {
      std::lock_guard<std::mutex> lock(budgets_mutex);
      std::vector<std::string> first_prompts;
      for (const auto& turns : conversations) first_prompts.push_back(turns.front().text);
      batches.push_back({first_prompts, conversations.front().size(), limits.stop_after_json_object});
    }
    return VisionLanguageModel::generate_batch(image, conversations, limits, call);
  }
  std::string describe_answer_tokens(const AnswerWords& answers) const override {
    return inner_->describe_answer_tokens(answers);
  }
  struct Batch {
    std::vector<std::string> first_prompts;  // each conversation's first user turn
    std::size_t turns = 0;                   // of the first conversation
    bool stop_after_json_object = false;
  };
  mutable std::atomic<int> prepares{0}, prior_calls{0}, image_calls{0}, exact_spellings{0}, any_spellings{0};
  mutable std::mutex budgets_mutex;
  mutable std::vector<int> generate_budgets;
  mutable std::vector<Batch> batches;

 private:
  std::shared_ptr<const VisionLanguageModel> inner_;
};

}  // namespace

TEST_CASE("a rule is violated when every chain item is accepted against the prior", "[unit][judge]") {
  Workspace ws;
  ws.write_image("bad.png", make_picture(200));
  auto models = ws.models(R"(
[[images]]
file = "bad.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.97, "The injury is fatal." = 0.99 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(200));
  CHECK(v.decision == Decision::Unsafe);
  CHECK(v.violated_rules == std::vector<std::string>{"gore"});
  const RuleResult* gore = v.find_rule("gore");
  REQUIRE(gore->items.size() == 3);
  for (const auto& item : gore->items) {
    CHECK(item.outcome == ItemOutcome::Accepted);
    CHECK(item.decided_by == Stage::Prior);
  }
  CHECK(statement(v, "gore", 0).prior == Approx(0.5));
  // The weapon rule's only item scored the default 0.5: uncertain, then reasoning said no.
  CHECK(v.find_rule("weapon")->items[0].outcome == ItemOutcome::Rejected);
  CHECK(v.find_rule("weapon")->items[0].decided_by == Stage::Reasoning);
}

TEST_CASE("early exit stops a rule at its first rejected item", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(10));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.1, "An animal is visible." = 0.05, "A gun is visible." = 0.02 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(10));
  CHECK(v.decision == Decision::Safe);
  const RuleResult* gore = v.find_rule("gore");
  CHECK(gore->items[0].outcome == ItemOutcome::Rejected);
  CHECK(gore->items[0].decided_by == Stage::Prior);
  CHECK(gore->items[1].outcome == ItemOutcome::NotEvaluated);
  CHECK(gore->items[2].outcome == ItemOutcome::NotEvaluated);
  // Round 1 asked 2 gore statements + 1 weapon statement, in one batch; nothing else.
  CHECK(v.questions_scored == 3);
  CHECK(v.reasoning_calls == 0);
}

TEST_CASE("an OR item is accepted by its best accepted alternative", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(30));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.1, "An animal is visible." = 0.96, "Blood is visible." = 0.1 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(30));
  const ItemResult& item = v.find_rule("gore")->items[0];
  CHECK(item.outcome == ItemOutcome::Accepted);
  CHECK(item.deciding_statement == 1);
  CHECK(item.statements[0].outcome == ItemOutcome::Rejected);
  CHECK(v.find_rule("gore")->items[1].outcome == ItemOutcome::Rejected);
}

TEST_CASE("strategy 2 accepts when removing the central object drops the score", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(40));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.8, "The injury is fatal." = 0.1, "A gun is visible." = 0.1 }
[[images.objects]]
phrase = "blood"
box = [0, 0, 40, 40]
confidence = 0.9
scores = { "Blood is visible." = 0.05 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(40));
  const StatementScore& blood = statement(v, "gore", 1);
  CHECK(blood.outcome == ItemOutcome::Accepted);
  CHECK(blood.decided_by == Stage::Region);
  REQUIRE(blood.region_score.has_value());
  CHECK(*blood.region_score == Approx(0.05));
  CHECK(v.reasoning_calls == 0);
}

TEST_CASE("strategy 2 falls through to reasoning when the object does not matter", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(41));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.8, "The injury is fatal." = 0.1, "A gun is visible." = 0.1 }
reasoning = { "Blood is visible." = 'Sure! {"rating": "Yes", "rationale": "red fluid on the arm"}' }
[[images.objects]]
phrase = "blood"
box = [0, 0, 40, 40]
confidence = 0.9
scores = { "Blood is visible." = 0.7 }
[[images.objects]]
phrase = "blood"
box = [0, 0, 50, 40]
confidence = 0.01
scores = { "Blood is visible." = 0.0 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(41));
  const StatementScore& blood = statement(v, "gore", 1);
  // The low-confidence box (under locator_confidence 0.05) was not used.
  CHECK(*blood.region_score == Approx(0.7));
  CHECK(blood.outcome == ItemOutcome::Accepted);
  CHECK(blood.decided_by == Stage::Reasoning);
  CHECK(blood.rationale == "red fluid on the arm");
  CHECK(v.reasoning_calls == 1);
}

TEST_CASE("a small central object is judged on its crop", "[unit][judge]") {
  Workspace ws;
  ws.write_image("big.png", make_picture(50, 400, 300));
  auto models = ws.models(R"(
[[images]]
file = "big.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.6, "The injury is fatal." = 0.1, "A gun is visible." = 0.1 }
[[images.objects]]
phrase = "blood"
box = [100, 100, 110, 110]
scores = { "Blood is visible." = 0.97 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(50, 400, 300));
  const StatementScore& blood = statement(v, "gore", 1);
  REQUIRE(blood.crop_score.has_value());
  CHECK(*blood.crop_score == Approx(0.97));
  REQUIRE(blood.region.has_value());
  CHECK(blood.region->cropped);
  CHECK(blood.region->area_fraction < 0.01);
  CHECK_FALSE(blood.region_score.has_value());
  CHECK(blood.outcome == ItemOutcome::Accepted);
  CHECK(blood.decided_by == Stage::Region);
}

TEST_CASE("cascaded reasoning decides uncertain items; unusable answers stay uncertain", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(60));
  auto models = ws.models(R"(
[defaults]
reasoning = "I cannot tell."
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.6, "An animal is visible." = 0.1, "Blood is visible." = 0.6, "The injury is fatal." = 0.95, "A gun is visible." = 0.6 }
reasoning = { "A person is visible." = '{"rating": "yes", "rationale": "a man"}', "Blood is visible." = "```json\n{'rating': 'No', 'rationale': 'paint',}\n```" }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(60));
  CHECK(statement(v, "gore", 0).outcome == ItemOutcome::Accepted);
  CHECK(statement(v, "gore", 0).decided_by == Stage::Reasoning);
  CHECK(statement(v, "gore", 1).outcome == ItemOutcome::Rejected);
  CHECK(statement(v, "gore", 1).rationale == "paint");
  CHECK(v.find_rule("gore")->items[1].decided_by == Stage::Reasoning);
  // "I cannot tell." has no rating: the item stays uncertain, and by default
  // (uncertain = "review") the image goes to a person rather than passing.
  const ItemResult& gun = v.find_rule("weapon")->items[0];
  CHECK(gun.outcome == ItemOutcome::Uncertain);
  CHECK(gun.decided_by == Stage::Undecided);
  CHECK_THAT(gun.statements[0].rationale, Contains("unusable reasoning answer"));
  CHECK(v.decision == Decision::Review);
  CHECK(v.review_rules == std::vector<std::string>{"weapon"});
  CHECK(v.violated_rules.empty());
  CHECK(v.reasoning_calls == 3);
}

TEST_CASE("an image's uncertain items are reasoned as one batch per turn, each conversation once", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(63));
  // "A person is visible." is uncertain in two rules: one conversation. Both
  // alternatives of gore's first item are uncertain: reasoned together, and
  // the more likely one ("An animal", 0.7) decides when reasoning accepts it.
  const std::string constitution = std::string(kConstitution) + R"(
[[rules]]
id = "crowd"
category = "violence"
text = "No crowds."
objective_text = "The image shows a crowd."
relevance_texts = ["crowd"]
chain = [ { any_of = ["A person is visible."] } ]
)";
  auto inner = ws.models(R"(
[defaults]
reasoning = '{"rating": "no", "rationale": "not there"}'
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.6, "An animal is visible." = 0.7, "Blood is visible." = 0.1, "A gun is visible." = 0.6 }
reasoning = { "An animal is visible." = '{"rating": "yes", "rationale": "a dog"}' }
)");
  JudgeOptions options;
  options.relevance = false;
  auto counting = std::make_shared<CountingVlm>(inner.vlm);
  Judge judge(Constitution::from_string(constitution), Models{inner.relevance, counting, inner.locator}, options);
  const Verdict v = judge.judge(make_picture(63));
  // Round 1 is the only round with uncertain items: one batch for the
  // thinking turn, one for the JSON answer (which stops at the object's end).
  REQUIRE(counting->batches.size() == 2);
  CHECK(counting->batches[0].first_prompts.size() == 3);  // animal, person (gore and crowd), gun
  CHECK(counting->batches[0].turns == 1);
  CHECK_FALSE(counting->batches[0].stop_after_json_object);
  CHECK(counting->batches[1].first_prompts == counting->batches[0].first_prompts);
  CHECK(counting->batches[1].turns == 3);
  CHECK(counting->batches[1].stop_after_json_object);
  CHECK(v.reasoning_calls == 3);
  const ItemResult& first = v.find_rule("gore")->items[0];
  CHECK(first.outcome == ItemOutcome::Accepted);
  CHECK(first.deciding_statement == 1);
  CHECK(first.statements[1].rationale == "a dog");
  CHECK(first.statements[0].outcome == ItemOutcome::Rejected);  // reasoned in the same batch
  CHECK(statement(v, "crowd", 0).outcome == ItemOutcome::Rejected);
  CHECK(statement(v, "crowd", 0).rationale == "not there");
  CHECK(statement(v, "weapon", 0).outcome == ItemOutcome::Rejected);
  CHECK(v.decision == Decision::Safe);
}

TEST_CASE("rounds: one score call per round with early exit, one call in all without", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(62));
  // Every item holds, so no rule leaves the rounds early. "A person is visible." is
  // also item 2 of a third rule: asked once per image, not once per round.
  const std::string constitution = std::string(kConstitution) + R"(
[[rules]]
id = "crowd"
category = "violence"
text = "No crowds."
objective_text = "The image shows a crowd."
relevance_texts = ["crowd"]
chain = [
  { any_of = ["Many people are visible."] },
  { any_of = ["A person is visible."] },
]
)";
  auto inner = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "An animal is visible." = 0.95, "Blood is visible." = 0.95, "The injury is fatal." = 0.95, "A gun is visible." = 0.95, "Many people are visible." = 0.95 }
)");
  JudgeOptions options;
  options.relevance = false;
  for (const bool early_exit : {true, false}) {
    INFO("early exit " << early_exit);
    options.early_exit = early_exit;
    auto counting = std::make_shared<CountingVlm>(inner.vlm);
    Judge judge(Constitution::from_string(constitution), Models{inner.relevance, counting, inner.locator}, options);
    const Verdict v = judge.judge(make_picture(62));
    CHECK(counting->image_calls == (early_exit ? 3 : 1));  // the longest chain has 3 items
    CHECK(v.questions_scored == 6);                        // 6 distinct statements
    CHECK(v.find_rule("crowd")->items.size() == 2);
    CHECK(statement(v, "crowd", 1).score == Approx(0.95));
    CHECK(v.violated_rules.size() == 3);
  }
}

TEST_CASE("the reasoning token budget reaches every generate call", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(61));
  auto inner = ws.models(R"(
[defaults]
reasoning = '{"rating": "no", "rationale": "not there"}'
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.6, "A gun is visible." = 0.6 }
)");
  auto counting = std::make_shared<CountingVlm>(inner.vlm);
  JudgeOptions options;
  options.reasoning_limits.max_new_tokens = 77;
  Judge judge(Constitution::from_string(kConstitution), Models{inner.relevance, counting, inner.locator}, options);
  const Verdict v = judge.judge(make_picture(61));
  REQUIRE(v.reasoning_calls > 0);
  // Two turns per reasoning call (think, then answer as JSON), each with the budget.
  CHECK(counting->generate_budgets == std::vector<int>(2 * static_cast<std::size_t>(v.reasoning_calls), 77));
}

TEST_CASE("relevance scanning skips rules below the threshold without asking the model", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(70));
  auto models = ws.models(R"(
[defaults]
relevance = 0.1
[[images]]
file = "a.png"
relevance = { "gore" = 0.3 }
scores = { "A person is visible." = 0.1, "An animal is visible." = 0.1 }
)");
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(70));
  const RuleResult* gore = v.find_rule("gore");
  const RuleResult* weapon = v.find_rule("weapon");
  CHECK(gore->judged);
  CHECK(*gore->relevance == Approx(0.3).margin(1e-6));
  CHECK_FALSE(weapon->judged);
  CHECK(*weapon->relevance == Approx(0.1).margin(1e-6));
  CHECK(weapon->items.empty());
  CHECK(v.questions_scored == 2);

  SECTION("with relevance switched off every rule is judged") {
    JudgeOptions options;
    options.relevance = false;
    Judge all(Constitution::from_string(kConstitution), models, options);
    const Verdict w = all.judge(make_picture(70));
    CHECK(w.find_rule("weapon")->judged);
    CHECK_FALSE(w.find_rule("weapon")->relevance.has_value());
  }
}

TEST_CASE("an image unknown to every rule is judged safe without encoding it", "[unit][judge]") {
  Workspace ws;
  auto inner = ws.models("[defaults]\nrelevance = 0.0\n");
  auto counting = std::make_shared<CountingVlm>(inner.vlm);
  Models models{inner.relevance, counting, inner.locator};
  Judge judge(Constitution::from_string(kConstitution), models);
  const Verdict v = judge.judge(make_picture(1));
  CHECK(v.decision == Decision::Safe);
  CHECK(counting->prepares == 0);
  CHECK(v.questions_scored == 0);
}

TEST_CASE("m0 is computed once per Judge, never per image", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(80));
  auto inner = ws.models(R"(
[priors]
"A gun is visible." = 0.2
[[images]]
file = "a.png"
scores = { "A gun is visible." = 0.85 }
)");
  auto counting = std::make_shared<CountingVlm>(inner.vlm);
  Judge judge(Constitution::from_string(kConstitution), Models{inner.relevance, counting, inner.locator});
  CHECK(counting->prior_calls == 1);
  CHECK(judge.prior("A gun is visible.") == Approx(0.2));
  CHECK(std::isnan(judge.prior("never asked")));
  for (int i = 0; i < 3; ++i) judge.judge(make_picture(80));
  CHECK(counting->prior_calls == 1);
  CHECK(counting->prepares == 3);
  // m0 = 0.2: accept needs M > 0.84, so 0.85 is accepted (it would be uncertain with m0 = 0.5).
  const Verdict v = judge.judge(make_picture(80));
  CHECK(statement(v, "weapon", 0).outcome == ItemOutcome::Accepted);
  CHECK(v.violated_rules == std::vector<std::string>{"weapon"});
}

TEST_CASE("ablation switches change the method as documented", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(90));
  auto models = ws.models(R"(
[priors]
"A person is visible." = 0.7
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.6, "Blood is visible." = 0.7, "The injury is fatal." = 0.2, "A gun is visible." = 0.6, "The image shows a bloody injury." = 0.8 }
)");
  const Constitution constitution = Constitution::from_string(kConstitution);

  SECTION("debias off: accept iff M > 0.5, no reasoning") {
    JudgeOptions options;
    options.debias = false;
    const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
    CHECK(statement(v, "gore", 0).decided_by == Stage::Direct);
    CHECK(statement(v, "gore", 0).outcome == ItemOutcome::Accepted);
    CHECK(statement(v, "gore", 2).outcome == ItemOutcome::Rejected);
    CHECK(v.reasoning_calls == 0);
    CHECK(v.violated_rules == std::vector<std::string>{"weapon"});
  }
  SECTION("chains off: the objective text is the only question") {
    JudgeOptions options;
    options.chains = false;
    options.cascade = false;
    const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
    const RuleResult* gore = v.find_rule("gore");
    REQUIRE(gore->items.size() == 1);
    CHECK(gore->items[0].statements[0].statement == "The image shows a bloody injury.");
  }
  SECTION("cascade off: uncertain items stay uncertain, and the verdict says so") {
    JudgeOptions options;
    options.cascade = false;
    const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
    CHECK(v.reasoning_calls == 0);
    CHECK(v.find_rule("weapon")->items[0].outcome == ItemOutcome::Uncertain);
    CHECK_THAT(v.to_json(), Contains("cascaded reasoning off"));
  }
  SECTION("early exit off: every item is asked") {
    JudgeOptions options;
    options.early_exit = false;
    options.cascade = false;
    const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
    for (const auto& item : v.find_rule("gore")->items) CHECK(item.outcome != ItemOutcome::NotEvaluated);
  }
}

TEST_CASE("a missing locator is reported, not silently ignored", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(95));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.6, "A gun is visible." = 0.05 }
)");
  models.locator = nullptr;
  models.relevance = nullptr;
  const Verdict v = Judge(Constitution::from_string(kConstitution), models).judge(make_picture(95));
  const std::string json = v.to_json();
  CHECK_THAT(json, Contains("strategy 2 off: the constitution names central objects but no locator is configured"));
  CHECK_THAT(json, Contains("relevance scanning off"));
}

TEST_CASE("verdict notes name every stage switched off or skipped", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(90));
  const auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.6, "Blood is visible." = 0.7, "A gun is visible." = 0.6 }
)");
  const Constitution constitution = Constitution::from_string(kConstitution);
  auto has_note = [](const Verdict& v, const std::string& prefix) {
    return std::any_of(v.notes.begin(), v.notes.end(), [&](const std::string& n) { return n.rfind(prefix, 0) == 0; });
  };

  SECTION("every stage on: no switched-off note") {
    const Verdict v = Judge(constitution, models).judge(make_picture(90));
    for (const auto& note : v.notes) CHECK(note.find("switched off") == std::string::npos);
    CHECK_FALSE(has_note(v, "strategy 2 off (ablation)"));
  }
  SECTION("each switch leaves its own note") {
    const std::vector<std::pair<bool JudgeOptions::*, std::string>> switches = {
        {&JudgeOptions::relevance, "relevance scanning off (switched off)"},
        {&JudgeOptions::debias, "debiasing off (switched off)"},
        {&JudgeOptions::chains, "precondition chains off (switched off)"},
        {&JudgeOptions::cascade, "cascaded reasoning off (switched off)"},
        {&JudgeOptions::early_exit, "early exit off (switched off)"},
        {&JudgeOptions::locator, "strategy 2 off (ablation)"},
    };
    for (const auto& [member, note] : switches) {
      INFO(note);
      JudgeOptions options;
      options.*member = false;
      const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
      CHECK(has_note(v, note));
      CHECK_THAT(v.to_json(), Contains(note));
    }
  }
  SECTION("all switched off at once: one note each") {
    JudgeOptions options;
    options.relevance = options.debias = options.chains = options.cascade = options.early_exit = options.locator =
        false;
    const Verdict v = Judge(constitution, models, options).judge(make_picture(90));
    CHECK(std::count_if(v.notes.begin(), v.notes.end(), [](const std::string& n) {
            return n.find("(switched off)") != std::string::npos || n == "strategy 2 off (ablation)";
          }) == 6);
  }
  SECTION("relevance scanning that skips every rule says so") {
    auto none = ws.models("[defaults]\nrelevance = 0.0\n");
    const Verdict v = Judge(constitution, none).judge(make_picture(1));
    CHECK(v.decision == Decision::Safe);
    CHECK(has_note(v, "relevance scanning skipped every rule"));
    // An image with a judged rule has no such note.
    const Verdict judged = Judge(constitution, models).judge(make_picture(90));
    CHECK_FALSE(has_note(judged, "relevance scanning skipped every rule"));
  }
}

namespace {
// Counts the locator's expensive calls, to prove the cost model: phrases
// embedded once per Judge, an image encoded once and only when needed.
class CountingLocator : public imgjudge::Locator {
 public:
  explicit CountingLocator(std::shared_ptr<const imgjudge::Locator> inner) : inner_(std::move(inner)) {}
  std::string model_id() const override { return inner_->model_id(); }
  std::shared_ptr<const imgjudge::LocatorQueries> embed_queries(const std::vector<std::string>& phrases,
                                                                const imgjudge::CallContext& call) const override {
    ++embeds;
    embedded = phrases;
    return inner_->embed_queries(phrases, call);
  }
  std::shared_ptr<const imgjudge::LocatorImage> prepare(const imgjudge::Image& image,
                                                        const imgjudge::CallContext& call) const override {
    ++prepares;
    return inner_->prepare(image, call);
  }
  std::vector<std::vector<imgjudge::Detection>> locate(const imgjudge::LocatorImage& image,
                                                       const imgjudge::LocatorQueries& queries,
                                                       const std::vector<std::size_t>& which, double min_confidence,
                                                       const imgjudge::CallContext& call) const override {
    ++locates;
    return inner_->locate(image, queries, which, min_confidence, call);
  }
  mutable std::atomic<int> embeds{0}, prepares{0}, locates{0};
  mutable std::vector<std::string> embedded;

 private:
  std::shared_ptr<const imgjudge::Locator> inner_;
};
}  // namespace

TEST_CASE("strategy 2 reports its evidence; the locator embeds phrases once and encodes only images that need it",
          "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(42));
  ws.write_image("b.png", make_picture(43));
  auto inner = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.8, "The injury is fatal." = 0.1, "A gun is visible." = 0.6 }
[[images.objects]]
phrase = "blood"
box = [0, 0, 20, 10]
confidence = 0.9
scores = { "Blood is visible." = 0.05 }
[[images.objects]]
phrase = "gun"
box = [10, 10, 30, 30]
confidence = 0.4
scores = { "A gun is visible." = 0.5 }
[[images]]
file = "b.png"
scores = { "A person is visible." = 0.01, "A gun is visible." = 0.02 }
)");
  auto locator = std::make_shared<CountingLocator>(inner.locator);
  const Judge judge(Constitution::from_string(kConstitution), Models{inner.relevance, inner.vlm, locator});
  CHECK(locator->embeds == 1);
  CHECK(locator->embedded == std::vector<std::string>{"blood", "gun"});  // every object phrase, once
  const Verdict a = judge.judge(make_picture(42));
  CHECK(locator->prepares == 1);  // two items needed strategy 2; the image was encoded once
  CHECK(locator->locates == 2);
  const StatementScore& blood = statement(a, "gore", 1);
  REQUIRE(blood.region.has_value());
  CHECK(blood.region->phrase == "blood");
  CHECK(blood.region->box.x1 == 20.f);
  CHECK(blood.region->confidence == Approx(0.9));
  CHECK(blood.region->area_fraction == Approx(200.0 / (64.0 * 48.0)).epsilon(1e-3));
  CHECK_FALSE(blood.region->cropped);
  CHECK(blood.region->score == Approx(0.05));
  const auto json = nlohmann::json::parse(a.to_json());
  const auto& region = json["rules"][0]["items"][1]["statements"][0]["region"];
  CHECK(region["phrase"] == "blood");
  CHECK(region["action"] == "erase");
  CHECK(region["box"] == nlohmann::json::array({0, 0, 20, 10}));
  CHECK(json["timings_ms"].contains("locate"));
  CHECK(statement(a, "weapon", 0).region->phrase == "gun");
  // An image whose items are all decided by strategy 1 is never encoded for the locator.
  judge.judge(make_picture(43));
  CHECK(locator->prepares == 1);
  // The ablation switch turns strategy 2 off, and says so.
  JudgeOptions off;
  off.locator = false;
  const Verdict ablated = Judge(Constitution::from_string(kConstitution), Models{inner.relevance, inner.vlm, locator}, off)
                              .judge(make_picture(42));
  CHECK_FALSE(statement(ablated, "gore", 1).region.has_value());
  CHECK(std::find(ablated.notes.begin(), ablated.notes.end(), "strategy 2 off (ablation)") != ablated.notes.end());
}

TEST_CASE("deadlines and cancellation stop a call and leave the Judge usable", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(100));
  Judge judge(Constitution::from_string(kConstitution), ws.models("[[images]]\nfile = \"a.png\"\n"));
  CallOptions late;
  late.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  try {
    judge.judge(make_picture(100), late);
    FAIL("expected DeadlineExceeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::DeadlineExceeded);
  }
  CallOptions cancelled;
  cancelled.cancel = CancellationToken();
  cancelled.cancel->cancel();
  try {
    judge.judge(make_picture(100), cancelled);
    FAIL("expected Cancelled");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::Cancelled);
  }
  CHECK_NOTHROW(judge.judge(make_picture(100), CallOptions::with_timeout(std::chrono::seconds(60))));
}

TEST_CASE("the scripted encode delay takes its time and honours deadlines and cancellation", "[unit][judge]") {
  using Clock = std::chrono::steady_clock;
  Workspace ws;
  ws.write_image("a.png", make_picture(100));
  // Relevance off: one encode per image (prepare), so a call takes at least one delay.
  JudgeOptions options;
  options.relevance = false;
  const Judge judge(Constitution::from_string(kConstitution),
                    ws.models("[defaults]\nencode_delay_ms = 150\n[[images]]\nfile = \"a.png\"\n"), options);
  auto started = Clock::now();
  CHECK_NOTHROW(judge.judge(make_picture(100)));
  CHECK(Clock::now() - started >= std::chrono::milliseconds(150));

  started = Clock::now();
  CHECK_THROWS_MATCHES(judge.judge(make_picture(100), CallOptions::with_timeout(std::chrono::milliseconds(30))), Error,
                       Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::DeadlineExceeded; }));
  CHECK(Clock::now() - started < std::chrono::milliseconds(140));  // stopped inside the delay, not after it

  CallOptions cancellable;
  cancellable.cancel = CancellationToken();
  std::thread canceller([token = *cancellable.cancel]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    token.cancel();
  });
  started = Clock::now();
  CHECK_THROWS_MATCHES(judge.judge(make_picture(100), cancellable), Error,
                       Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::Cancelled; }));
  CHECK(Clock::now() - started < std::chrono::milliseconds(140));
  canceller.join();

  CHECK_THROWS_WITH(ws.models("[defaults]\nencode_delay_ms = -1\n"),
                    Contains("script.toml:2:") && Contains("encode_delay_ms must be an integer in [0, 600000]"));
  CHECK_THROWS_WITH(ws.models("[defaults]\nencode_delay_ms = 1.5\n"), Contains("encode_delay_ms must be an integer"));
}

TEST_CASE("the scripted backend's latency_ms takes time and yields to deadlines and cancellation", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(100));
  Judge judge(Constitution::from_string(kConstitution),
              ws.models("[defaults]\nlatency_ms = 100\n[[images]]\nfile = \"a.png\"\n"));
  // Every model call sleeps 100 ms: one judged image takes at least prepare + one score call.
  const auto start = std::chrono::steady_clock::now();
  CHECK_NOTHROW(judge.judge(make_picture(100)));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(200));
  // A deadline inside the first simulated call ends the call there, not after it.
  const auto late_start = std::chrono::steady_clock::now();
  try {
    judge.judge(make_picture(100), CallOptions::with_timeout(std::chrono::milliseconds(10)));
    FAIL("expected DeadlineExceeded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::DeadlineExceeded);
  }
  CHECK(std::chrono::steady_clock::now() - late_start < std::chrono::milliseconds(90));
  CHECK_THROWS_WITH(ws.models("[defaults]\nlatency_ms = -1\n"), Contains("defaults.latency_ms must be an integer"));
  CHECK_THROWS_WITH(ws.models("[defaults]\nlatency_ms = 0.5\n"), Contains("script.toml:2:"));
}

TEST_CASE("judge_batch reports each image's error in its own slot", "[unit][judge]") {
  Workspace ws;
  Judge judge(Constitution::from_string(kConstitution), ws.models(""));
  const auto results = judge.judge_batch({make_picture(1), Image{}, make_picture(2)});
  REQUIRE(results.size() == 3);
  CHECK(results[0].verdict.has_value());
  CHECK_FALSE(results[1].verdict.has_value());
  CHECK(results[1].error_code == ErrorCode::InvalidArgument);
  CHECK(results[2].verdict.has_value());
}

TEST_CASE("judge_bytes rejects undecodable bytes with InvalidImage", "[unit][judge]") {
  Workspace ws;
  Judge judge(Constitution::from_string(kConstitution), ws.models(""));
  const std::string garbage = "definitely not an image";
  try {
    judge.judge_bytes(garbage.data(), garbage.size());
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidImage);
  }
  const auto png = encode_png(make_picture(3));
  const Verdict v = judge.judge_bytes(png.data(), png.size());
  CHECK(v.image_width == 64);
  CHECK(v.timings.decode_ms >= 0);
}

TEST_CASE("the constitution's answer_spellings reaches every score call and the verdict", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(71));
  auto inner = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.97, "The injury is fatal." = 0.99 }
)");
  for (const bool any : {false, true}) {
    std::string text = kConstitution;
    if (any) text.replace(text.find("[[rules]]"), 9, "[defaults]\nanswer_spellings = \"any\"\n[[rules]]");
    auto counting = std::make_shared<CountingVlm>(inner.vlm);
    JudgeOptions options;
    options.answers.spellings = any ? imgjudge::AnswerSpellings::Exact : imgjudge::AnswerSpellings::Any;  // overridden
    const Judge judge(Constitution::from_string(text), Models{inner.relevance, counting, inner.locator}, options);
    const Verdict v = judge.judge(make_picture(71));
    CHECK((any ? counting->any_spellings : counting->exact_spellings) > 0);
    CHECK((any ? counting->exact_spellings : counting->any_spellings) == 0);
    CHECK(v.answer_spellings == (any ? "any" : "exact"));
    CHECK(nlohmann::json::parse(v.to_json())["models"]["answer_spellings"] == (any ? "any" : "exact"));
  }
}

TEST_CASE("the verdict JSON is stable and complete", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(110));
  auto models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.97, "The injury is fatal." = 0.99 }
)");
  const Constitution constitution = Constitution::from_string(kConstitution);
  const Verdict v = Judge(constitution, models).judge(make_picture(110));
  const auto json = nlohmann::json::parse(v.to_json());
  CHECK(json["schema"] == "imgjudge.verdict/2");
  CHECK(json["decision"] == "unsafe");
  CHECK(json["violated_rules"] == nlohmann::json::array({"gore"}));
  CHECK(json["constitution"]["hash"] == constitution.hash);
  CHECK(json["image"]["hash"] == "sha256:" + make_picture(110).content_hash());
  CHECK(json["rules"][0]["items"][0]["statements"][0]["statement"] == "A person is visible.");
  CHECK(json["rules"][0]["items"][0]["decided_by"] == "prior");
  CHECK(json["rules"][0]["items"][0]["statements"][0]["region_score"].is_null());
  CHECK(json["models"]["vlm"] == "scripted:script.toml");
  for (const char* stage : {"decode", "relevance", "prepare", "scoring", "region", "reasoning", "total"}) {
    CHECK(json["timings_ms"].contains(stage));
  }
}

TEST_CASE("one Judge gives the same verdicts from many threads", "[unit][judge]") {
  Workspace ws;
  for (int i = 0; i < 4; ++i) ws.write_image("img" + std::to_string(i) + ".png", make_picture(std::uint8_t(120 + i)));
  auto models = ws.models(R"(
[[images]]
file = "img0.png"
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.97, "The injury is fatal." = 0.99 }
[[images]]
file = "img1.png"
scores = { "A gun is visible." = 0.99 }
[[images]]
file = "img2.png"
scores = { "A person is visible." = 0.6 }
reasoning = { "A person is visible." = '{"rating": "Yes"}' }
)");
  const Judge judge(Constitution::from_string(kConstitution), models);
  std::vector<std::string> expected;
  for (int i = 0; i < 4; ++i) {
    Verdict v = judge.judge(make_picture(std::uint8_t(120 + i)));
    v.timings = {};
    expected.push_back(v.to_json());
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        const int i = (t + round) % 4;
        Verdict v = judge.judge(make_picture(std::uint8_t(120 + i)));
        v.timings = {};
        if (v.to_json() != expected[i]) mismatches++;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}

TEST_CASE("the scripted backend rejects malformed scripts with a location", "[unit][judge]") {
  Workspace ws;
  try {
    ws.models("[defaults]\nscore = 2.0\n");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidArgument);
    CHECK_THAT(std::string(e.what()), Contains("script.toml:2:"));
  }
  CHECK_THROWS_WITH(ws.models("[[images]]\nfile = \"missing.png\"\n"), Contains("missing.png"));
}

namespace {

// A broken model (NaN weights, a config that makes RoPE non-finite): every
// image score it gives is NaN, and with nan_priors every prior too.
class NanVlm : public CountingVlm {
 public:
  using CountingVlm::CountingVlm;
  bool nan_priors = false;
  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords& answers, const CallContext& call) const override {
    std::vector<double> scores = CountingVlm::score(image, questions, answers, call);
    if (image != nullptr || nan_priors) scores.assign(scores.size(), std::nan(""));
    return scores;
  }
};

class NanRelevance : public RelevanceModel {
 public:
  explicit NanRelevance(std::shared_ptr<const RelevanceModel> inner) : inner_(std::move(inner)) {}
  std::string model_id() const override { return "nan-relevance"; }
  std::vector<Embedding> embed_texts(const std::vector<std::string>& texts, const CallContext& call) const override {
    return inner_->embed_texts(texts, call);
  }
  Embedding embed_image(const Image& image, const CallContext& call) const override {
    Embedding e = inner_->embed_image(image, call);
    e.assign(e.size(), std::nanf(""));
    return e;
  }

 private:
  std::shared_ptr<const RelevanceModel> inner_;
};

}  // namespace

TEST_CASE("a model that gives NaN fails the call; it never lets an image pass", "[unit][judge]") {
  Workspace ws;
  auto inner = ws.models("[defaults]\nrelevance = 0.9\n");
  SECTION("NaN scores for an image") {
    auto nan = std::make_shared<NanVlm>(inner.vlm);
    Judge judge(Constitution::from_string(kConstitution), Models{inner.relevance, nan, inner.locator});
    try {
      judge.judge(make_picture(9));
      FAIL("a NaN score was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::Backend);
      CHECK_THAT(e.what(), Contains("non-finite score for \"A person is visible.\""));
    }
    // judge_batch: the error is that image's, in its slot.
    const auto results = judge.judge_batch({make_picture(9)});
    REQUIRE(results.size() == 1);
    CHECK_FALSE(results[0].verdict.has_value());
    CHECK(results[0].error_code == ErrorCode::Backend);
  }
  SECTION("NaN priors fail the Judge's creation") {
    auto nan = std::make_shared<NanVlm>(inner.vlm);
    nan->nan_priors = true;
    try {
      Judge judge(Constitution::from_string(kConstitution), Models{inner.relevance, nan, inner.locator});
      FAIL("a NaN prior was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::Backend);
      CHECK_THAT(e.what(), Contains("non-finite prior m0"));
    }
  }
  SECTION("NaN relevance does not skip a rule") {
    auto relevance = std::make_shared<NanRelevance>(inner.relevance);
    Judge judge(Constitution::from_string(kConstitution), Models{relevance, inner.vlm, inner.locator});
    try {
      judge.judge(make_picture(9));
      FAIL("a NaN relevance was accepted");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::Backend);
      CHECK_THAT(e.what(), Contains("nan-relevance gave a non-finite relevance for rule"));
    }
  }
}

namespace {

// One rule per category; with the scripted prior 0.5, a score of 0.7 is
// uncertain (accepted above 0.9, rejected below 0.35) with evidence
// (0.7 - 0.5) / (1 - 0.5) = 0.4.
std::string policy_constitution(const std::string& extra, const std::string& weapon_thresholds = "") {
  return R"(
schema_version = 1
name = "policy-test"
version = "1"
)" + extra + R"(
[[rules]]
id = "gore"
category = "violence"
text = "No gore."
chain = [ { any_of = ["A person is visible."] }, { any_of = ["Blood is visible."] } ]

[[rules]]
id = "weapon"
category = "weapons"
text = "No weapons."
chain = [ { any_of = ["A gun is visible."] } ]
)" + weapon_thresholds;
}

Verdict judge_policy(const Workspace& ws, const std::string& constitution, const std::string& scores) {
  const Models models = ws.models("[[images]]\nfile = \"a.png\"\nscores = " + scores + "\n");
  JudgeOptions options;
  options.relevance = false;
  options.cascade = false;  // what stays uncertain stays uncertain
  Judge judge(Constitution::from_string(constitution), models, options);
  return judge.judge(make_picture(77));
}

}  // namespace

TEST_CASE("uncertain rules follow the constitution: review by default, safe or unsafe when it says so",
          "[unit][judge][policy]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(77));
  const std::string scores =
      R"({ "A person is visible." = 0.95, "Blood is visible." = 0.7, "A gun is visible." = 0.1 })";

  SECTION("default: review") {
    const Verdict v = judge_policy(ws, policy_constitution(""), scores);
    CHECK(v.decision == Decision::Review);
    CHECK(v.needs_review());
    CHECK_FALSE(v.unsafe());
    CHECK(v.review_rules == std::vector<std::string>{"gore"});
    const RuleResult& gore = *v.find_rule("gore");
    CHECK(gore.uncertain);
    CHECK(gore.review);
    CHECK_FALSE(gore.violated);
    CHECK(gore.score == Approx(0.4));  // min(accepted 1, uncertain 0.4)
    CHECK(v.find_rule("weapon")->score == 0.0);  // rejected
    const auto json = nlohmann::json::parse(v.to_json());
    CHECK(json["decision"] == "review");
    CHECK(json["review_rules"] == nlohmann::json::array({"gore"}));
    CHECK(json["category_scores"]["violence"].get<double>() == Approx(0.4));
    CHECK(json["category_scores"]["weapons"].get<double>() == 0.0);
    CHECK(json["rules"][0]["uncertain"] == true);
    CHECK(json["rules"][0]["review"] == true);
  }
  SECTION("[defaults] uncertain = \"safe\": the paper's reading") {
    const Verdict v = judge_policy(ws, policy_constitution("[defaults]\nuncertain = \"safe\"\n"), scores);
    CHECK(v.decision == Decision::Safe);
    CHECK(v.review_rules.empty());
    CHECK(v.find_rule("gore")->uncertain);
    CHECK_FALSE(v.find_rule("gore")->review);
  }
  SECTION("a category says unsafe") {
    const Verdict v =
        judge_policy(ws, policy_constitution("[categories.violence]\nuncertain = \"unsafe\"\n"), scores);
    CHECK(v.decision == Decision::Unsafe);
    CHECK(v.violated_rules == std::vector<std::string>{"gore"});
    CHECK(v.find_rule("gore")->uncertain);
  }
  SECTION("a score threshold makes enough evidence a violation") {
    const Verdict low = judge_policy(ws, policy_constitution("[categories.violence]\nscore_threshold = 0.35\n"), scores);
    CHECK(low.decision == Decision::Unsafe);
    CHECK_FALSE(low.find_rule("gore")->uncertain);  // decided by the threshold
    const Verdict high = judge_policy(ws, policy_constitution("[categories.violence]\nscore_threshold = 0.5\n"), scores);
    CHECK(high.decision == Decision::Review);
  }
  SECTION("a rule's own thresholds override its category's") {
    const Verdict v = judge_policy(
        ws,
        policy_constitution("[categories.violence]\nuncertain = \"unsafe\"\n") + "thresholds = { uncertain = \"safe\" }\n",
        R"({ "A person is visible." = 0.95, "Blood is visible." = 0.95, "A gun is visible." = 0.7 })");
    CHECK(v.violated_rules == std::vector<std::string>{"gore"});
    CHECK(v.find_rule("weapon")->uncertain);
    CHECK_FALSE(v.find_rule("weapon")->review);
    CHECK(v.find_rule("gore")->score == 1.0);
  }
  SECTION("a later rejection settles a rule an earlier uncertain item left open") {
    const Verdict v = judge_policy(
        ws, policy_constitution(""),
        R"({ "A person is visible." = 0.7, "Blood is visible." = 0.1, "A gun is visible." = 0.1 })");
    CHECK(v.decision == Decision::Safe);
    CHECK(v.find_rule("gore")->items[1].outcome == ItemOutcome::Rejected);
    CHECK_FALSE(v.find_rule("gore")->uncertain);
  }
}

TEST_CASE("policy keys are validated", "[unit][judge][policy]") {
  auto error_of = [](const std::string& text) {
    try {
      Constitution::from_string(text, "policy.toml");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidConstitution);
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(error_of(policy_constitution("[defaults]\nuncertain = \"maybe\"\n")),
             Contains("defaults.uncertain must be \"safe\", \"review\" or \"unsafe\", not \"maybe\""));
  CHECK_THAT(error_of(policy_constitution("[defaults]\nscore_threshold = 0\n")), Contains("must be above 0"));
  CHECK_THAT(error_of(policy_constitution("[categories.violense]\nuncertain = \"review\"\n")),
             Contains("categories.violense: no rule has category \"violense\""));
  CHECK_THAT(error_of(policy_constitution("[categories.violence]\ncolour = 1\n")), Contains("colour"));
  // The default policy keeps the hashes of constitutions that do not set it.
  CHECK(Constitution::from_string(policy_constitution("")).hash ==
        Constitution::from_string(policy_constitution("[defaults]\nuncertain = \"review\"\n")).hash);
  CHECK(Constitution::from_string(policy_constitution("")).hash !=
        Constitution::from_string(policy_constitution("[defaults]\nuncertain = \"safe\"\n")).hash);
}

TEST_CASE("a statement several rules share is reasoned once per image", "[unit][judge]") {
  Workspace ws;
  ws.write_image("a.png", make_picture(88));
  const Models models = ws.models(R"(
[[images]]
file = "a.png"
scores = { "A gun is visible." = 0.7, "A person is visible." = 0.95 }
reasoning = { "A gun is visible." = '{"rating": "Yes", "rationale": "a pistol"}' }
)");
  const char* constitution = R"(
schema_version = 1
name = "shared-statement"
version = "1"
[[rules]]
id = "gun"
category = "weapons"
text = "No guns."
chain = [ { any_of = ["A gun is visible."] } ]
[[rules]]
id = "gun_and_person"
category = "weapons"
text = "No guns near people."
chain = [ { any_of = ["A person is visible."] }, { any_of = ["A gun is visible."] } ]
)";
  JudgeOptions options;
  options.relevance = false;
  Judge judge(Constitution::from_string(constitution), models, options);
  const Verdict v = judge.judge(make_picture(88));
  CHECK(v.reasoning_calls == 1);
  CHECK(v.violated_rules == std::vector<std::string>{"gun", "gun_and_person"});
  CHECK(statement(v, "gun_and_person", 1).decided_by == Stage::Reasoning);
  CHECK(statement(v, "gun_and_person", 1).rationale == "a pistol");
}
