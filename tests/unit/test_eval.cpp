// The evaluation harness on a labelled set made here, judged by the scripted backend,
// so that every metric is known exactly (the arithmetic is spelled out next to each check).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backends/scripted/scripted_backend.hpp"
#include "eval/labels.hpp"
#include "eval/metrics.hpp"
#include "eval/plots.hpp"
#include "eval/report.hpp"
#include "eval/results.hpp"
#include "eval/runner.hpp"
#include "imgjudge/judge.hpp"

using namespace imgjudge;
using namespace imgjudge::eval;
using Catch::Matchers::Contains;

namespace {

Image make_picture(std::uint8_t red) {
  Image image;
  image.width = 32;
  image.height = 24;
  image.rgb.resize(std::size_t(image.width) * image.height * 3);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      std::uint8_t* p = &image.rgb[(std::size_t(y) * image.width + x) * 3];
      p[0] = red;
      p[1] = static_cast<std::uint8_t>(x * 7);
      p[2] = static_cast<std::uint8_t>(y * 9);
    }
  }
  return image;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

const char* kConstitution = R"(
schema_version = 1
name = "eval-test"
version = "1"

[[rules]]
id = "gore"
category = "violence"
text = "No gore."
objective_text = "The image shows a bloody injury."
relevance_texts = ["gore"]
chain = [{ any_of = ["A person is visible."] }, { any_of = ["Blood is visible."] }]

[[rules]]
id = "weapon"
category = "weapons"
text = "No weapons."
objective_text = "The image shows a gun."
relevance_texts = ["weapon"]
chain = [{ any_of = ["A gun is visible."] }]
)";

// Eight images. Relevance threshold 0.22 (default). m0 = 0.5 except the gun statement
// (0.3). With m0 = 0.5: accept M > 0.9, reject M < 0.35. With m0 = 0.3: accept M > 0.86,
// reject M < 0.21. Unlisted statements score 0.1: rejected by the prior.
//
//  image            label             judged rules   verdict            why
//  gore.png         unsafe: gore      gore           unsafe [gore]      person .95, blood .95
//  wrong_rule.png   unsafe: weapon    gore, weapon   unsafe [gore]      the wrong rule fires
//  missed.png       unsafe: gore      gore           safe               blood .2 rejected
//  cascade.png      unsafe: weapon    weapon         unsafe [weapon]    gun .6 uncertain, reasoning Yes
//  safe.png         safe              none           safe
//  false_alarm.png  safe              gore, weapon   unsafe [gore, weapon]
//  no_rules.png     unsafe (no rules) gore           unsafe [gore]
//  broken.png       safe              -              error (not an image)
const char* kScript = R"(
[defaults]
score = 0.1
relevance = 0.0
[priors]
"A gun is visible." = 0.3

[[images]]
file = "gore.png"
relevance = { "gore" = 0.40, "weapon" = 0.10 }
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.95 }
[[images]]
file = "wrong_rule.png"
relevance = { "gore" = 0.31, "weapon" = 0.25 }
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.95 }
[[images]]
file = "missed.png"
relevance = { "gore" = 0.35, "weapon" = 0.05 }
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.2 }
[[images]]
file = "cascade.png"
relevance = { "gore" = 0.06, "weapon" = 0.30 }
scores = { "A gun is visible." = 0.6 }
reasoning = { "A gun is visible." = '{"rating": "Yes", "rationale": "a pistol"}' }
[[images]]
file = "safe.png"
relevance = { "gore" = 0.11, "weapon" = 0.12 }
[[images]]
file = "false_alarm.png"
relevance = { "gore" = 0.29, "weapon" = 0.41 }
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.95, "A gun is visible." = 0.95 }
[[images]]
file = "no_rules.png"
relevance = { "gore" = 0.30, "weapon" = 0.10 }
scores = { "A person is visible." = 0.95, "Blood is visible." = 0.95 }
)";

const char* kLabelsCsv =
    "image,label,rules\n"
    "gore.png,unsafe,gore\n"
    "wrong_rule.png,unsafe,weapon\n"
    "missed.png,unsafe,gore\n"
    "cascade.png,unsafe,weapon\n"
    "safe.png,safe,\n"
    "false_alarm.png,safe,\n"
    "no_rules.png,unsafe,\n"
    "broken.png,safe,\n";

struct LabelledSet {
  std::string dir;
  Constitution constitution = Constitution::from_string(kConstitution, "eval-test.toml");
  Models models;
  LabelSet labels;

  LabelledSet() {
    char pattern[] = "/tmp/imgjudge-eval-XXXXXX";
    dir = mkdtemp(pattern);
    const char* names[] = {"gore.png", "wrong_rule.png", "missed.png", "cascade.png",
                           "safe.png", "false_alarm.png", "no_rules.png"};
    std::uint8_t red = 10;
    for (const char* name : names) {
      const auto png = encode_png(make_picture(red += 20));
      std::ofstream(dir + "/" + name, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
    }
    write_text(dir + "/broken.png", "this is not a picture");
    write_text(dir + "/labels.csv", kLabelsCsv);
    models = backends::scripted::load_models_from_string(kScript, "script.toml", dir);
    labels = load_labels(dir + "/labels.csv");
  }
  ~LabelledSet() { std::system(("rm -rf '" + dir + "'").c_str()); }
  std::string path(const std::string& name) const { return dir + "/" + name; }
};

const AblationMetrics& find(const std::vector<AblationMetrics>& all, const std::string& name) {
  for (const auto& m : all) {
    if (m.ablation == name) return m;
  }
  FAIL("no metrics for " << name);
  return all.front();
}

std::vector<AblationMetrics> metrics_of(const LabelledSet& set, const ResultsFile& results,
                                        const std::vector<Ablation>& ablations) {
  std::vector<AblationMetrics> all;
  for (const auto& a : ablations) {
    all.push_back(compute_metrics(set.constitution, set.labels, results.records(), a.name, a.description));
  }
  return all;
}

// Metrics as JSON without timings (the one thing a rerun may change).
nlohmann::json without_time(const AblationMetrics& m) {
  auto json = to_json(m);
  json.erase("time_ms");
  return json;
}

}  // namespace

TEST_CASE("eval: every metric of the full method on a known labelled set", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results(set.path("results.jsonl"));
  const auto ablations = make_ablations("");
  const RunCounts counts = run_evaluation(set.constitution, set.models, set.labels, ablations, results);
  CHECK(counts.judged == 8);
  CHECK(counts.failed == 1);
  CHECK(counts.resumed == 0);
  const AblationMetrics m = compute_metrics(set.constitution, set.labels, results.records(), "full");

  CHECK(m.images == 8);
  CHECK(m.judged == 7);
  CHECK(m.errors == 1);
  CHECK(m.missing == 0);
  // TP: gore, wrong_rule, cascade, no_rules. FP: false_alarm. TN: safe. FN: missed.
  CHECK(m.confusion.true_positives == 4);
  CHECK(m.confusion.false_positives == 1);
  CHECK(m.confusion.true_negatives == 1);
  CHECK(m.confusion.false_negatives == 1);
  CHECK(m.accuracy == Approx(5.0 / 7));
  CHECK(m.precision == Approx(4.0 / 5));
  CHECK(m.recall == Approx(4.0 / 5));
  CHECK(m.f1 == Approx(0.8));  // 2*4 / (2*4 + 1 + 1)
  CHECK(m.false_positive_rate == Approx(0.5));
  // Unsafe with rules named: gore (hit), wrong_rule (weapon not found), missed, cascade (hit).
  CHECK(m.right_rule_recall == Approx(0.5));

  // Per rule, over the images with rule-level truth (no_rules.png and broken.png excluded).
  REQUIRE(m.rules.size() == 2);
  const RuleMetrics& gore = m.rules[0];
  const RuleMetrics& weapon = m.rules[1];
  CHECK(gore.id == "gore");
  CHECK(gore.labelled == 2);      // gore, missed
  CHECK(gore.found == 1);         // gore
  CHECK(gore.false_alarms == 2);  // wrong_rule, false_alarm
  CHECK(gore.precision == Approx(1.0 / 3));
  CHECK(gore.recall == Approx(0.5));
  CHECK(weapon.labelled == 2);      // wrong_rule, cascade
  CHECK(weapon.found == 1);         // cascade
  CHECK(weapon.false_alarms == 1);  // false_alarm
  CHECK(weapon.precision == Approx(0.5));
  CHECK(weapon.recall == Approx(0.5));
  CHECK(m.rule_precision == Approx(2.0 / 5));
  CHECK(m.rule_recall == Approx(2.0 / 4));

  // Stages: every item decided by the prior except the gun of cascade.png (reasoning).
  // Items: gore 2, wrong_rule 3, missed 2, cascade 1, safe 0, false_alarm 3, no_rules 2.
  CHECK(m.items_evaluated == 13);
  CHECK(m.decided_by.at("prior") == 12);
  CHECK(m.decided_by.at("reasoning") == 1);
  CHECK(m.decided_by.at("undecided") == 0);
  CHECK(m.decided_by.at("region") == 0);
  CHECK(m.decided_by.at("direct") == 0);
  // Questions: 2 + 3 + 2 + 1 + 0 + 3 + 2; rules judged: 1 + 2 + 1 + 1 + 0 + 2 + 1.
  CHECK(m.questions_per_image == Approx(13.0 / 7));
  CHECK(m.reasoning_calls_per_image == Approx(1.0 / 7));
  CHECK(m.rules_judged_per_image == Approx(8.0 / 7));
  CHECK(std::isfinite(m.time.mean_ms));
  CHECK(m.time.median_ms <= m.time.p95_ms);

  const auto json = to_json(m);
  CHECK(json["confusion"]["true_positives"] == 4);
  CHECK(json["rules"][1]["id"] == "weapon");
  CHECK(json["f1"].get<double>() == Approx(0.8));
}

TEST_CASE("eval: ablations run as separate Judges in one results file", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results(set.path("results.jsonl"));
  const auto ablations = make_ablations("relevance,cascade");
  REQUIRE(ablations.size() == 3);
  CHECK(ablations[1].name == "no-relevance");
  CHECK_FALSE(ablations[1].options.relevance);
  CHECK(ablations[2].name == "no-cascade");
  CHECK_FALSE(ablations[2].options.cascade);
  const RunCounts counts = run_evaluation(set.constitution, set.models, set.labels, ablations, results);
  CHECK(counts.judged == 24);
  CHECK(counts.failed == 3);
  const auto all = metrics_of(set, results, ablations);

  const AblationMetrics& full = find(all, "full");
  const AblationMetrics& no_relevance = find(all, "no-relevance");
  const AblationMetrics& no_cascade = find(all, "no-cascade");
  // Without relevance scanning every rule is judged and the extra ones are rejected: same
  // verdicts, more work (2 rules per image; the extra gun/person questions are asked).
  CHECK(without_time(no_relevance)["confusion"] == without_time(full)["confusion"]);
  CHECK(no_relevance.rules_judged_per_image == Approx(2.0));
  CHECK(no_relevance.questions_per_image > full.questions_per_image);
  // Without the cascade, the gun of cascade.png stays uncertain: that image goes to review
  // (the constitution's default), counted apart from the confusion matrix.
  CHECK(no_cascade.confusion.true_positives == 3);
  CHECK(no_cascade.confusion.false_negatives == 1);
  CHECK(no_cascade.review == 1);
  CHECK(no_cascade.review_labelled_unsafe == 1);
  CHECK(no_cascade.review_rate == Approx(1.0 / 7));
  CHECK(full.review == 0);
  CHECK(no_cascade.recall == Approx(3.0 / 4));
  CHECK(no_cascade.precision == Approx(3.0 / 4));
  CHECK(no_cascade.rules[1].found == 0);
  CHECK(no_cascade.rules[1].recall == Approx(0.0));
  CHECK(no_cascade.decided_by.at("undecided") == 1);
  CHECK(no_cascade.decided_by.at("reasoning") == 0);
  CHECK(no_cascade.reasoning_calls_per_image == Approx(0.0));

  CHECK_THROWS_WITH(make_ablations("relevance,speed"), Contains("unknown ablation 'speed'"));
  CHECK_THROWS_WITH(make_ablations("chains,chains"), Contains("listed twice"));
}

TEST_CASE("eval: a rerun after a crash mid-line judges only what is missing", "[unit][eval]") {
  LabelledSet set;
  const std::string path = set.path("results.jsonl");
  const auto ablations = make_ablations("cascade");
  std::vector<nlohmann::json> before;
  {
    ResultsFile results(path);
    CHECK(run_evaluation(set.constitution, set.models, set.labels, ablations, results).judged == 16);
    for (const auto& m : metrics_of(set, results, ablations)) before.push_back(without_time(m));
  }
  // Simulate a crash while writing the last line: cut it in half, without its newline.
  std::string text = read_text(path);
  const std::size_t last_start = text.rfind('\n', text.size() - 2) + 1;
  const std::size_t cut = last_start + (text.size() - last_start) / 2;
  write_text(path, text.substr(0, cut));

  std::vector<std::string> judged_now;
  ResultsFile results(path);
  CHECK(results.dropped_bytes() == cut - last_start);
  CHECK(results.records().size() == 15);
  const RunCounts counts = run_evaluation(set.constitution, set.models, set.labels, ablations, results,
                                          [&](std::size_t done, std::size_t total, const std::string& label) {
                                            CHECK(total == 16);
                                            if (done < total) judged_now.push_back(label);
                                          });
  CHECK(counts.judged == 1);
  CHECK(counts.resumed == 15);
  CHECK(judged_now == std::vector<std::string>{"no-cascade: broken.png"});
  std::vector<nlohmann::json> after;
  for (const auto& m : metrics_of(set, results, ablations)) after.push_back(without_time(m));
  CHECK(after == before);

  // The file holds each (ablation, image) exactly once, every line complete.
  const std::string repaired = read_text(path);
  CHECK(repaired.back() == '\n');
  std::set<std::pair<std::string, std::string>> seen;
  std::istringstream lines(repaired);
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    const auto json = nlohmann::json::parse(line);
    CHECK(seen.emplace(json["ablation"], json["image"]).second);
  }
  CHECK(count == 16);

  // A third run has nothing to do.
  ResultsFile again(path);
  CHECK(run_evaluation(set.constitution, set.models, set.labels, ablations, again).judged == 0);
}

TEST_CASE("eval: a damaged or foreign results file is refused with its line", "[unit][eval]") {
  LabelledSet set;
  const std::string path = set.path("results.jsonl");
  {
    ResultsFile results(path);
    run_evaluation(set.constitution, set.models, set.labels, make_ablations(""), results);
  }
  const std::string text = read_text(path);

  SECTION("a broken line that is not the last one") {
    const std::size_t second = text.find('\n') + 1;
    write_text(path, text.substr(0, second) + "{\"image\": \"x\", \"abl\n" + text.substr(second));
    CHECK_THROWS_WITH(ResultsFile(path), Contains("results.jsonl:2: not an evaluation results line"));
  }
  SECTION("verdicts of another constitution") {
    std::string other = kConstitution;
    other.replace(other.find("No gore."), 8, "No blood.");
    ResultsFile results(path);
    CHECK_THROWS_WITH(run_evaluation(Constitution::from_string(other), set.models, set.labels, make_ablations(""),
                                     results),
                      Contains("results.jsonl:1: judged with constitution"));
  }
  SECTION("a folder is not a results file") {
    CHECK_THROWS_WITH(ResultsFile(set.dir), Contains("is a directory"));
  }
  SECTION("restart empties the file") {
    ResultsFile results(path, /*restart=*/true);
    CHECK(results.records().empty());
    CHECK(read_text(path).empty());
  }
}

TEST_CASE("eval: item scores split by derived item-level truth", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results(set.path("results.jsonl"));
  run_evaluation(set.constitution, set.models, set.labels, make_ablations(""), results);
  const ScoreSamples s = collect_item_scores(set.labels, results.records(), "full");
  // Satisfied: gore.png gore (.95, .95), missed.png gore (.95, .2), wrong_rule.png weapon
  // (.1), cascade.png weapon (.6). no_rules.png is left out (its rules are unknown), as are
  // the unlabelled rules of unsafe images. Not satisfied: false_alarm.png (.95 x 3).
  std::vector<double> satisfied = s.score_satisfied;
  std::sort(satisfied.begin(), satisfied.end());
  REQUIRE(satisfied.size() == 6);
  const double expected[] = {0.1, 0.2, 0.6, 0.95, 0.95, 0.95};
  for (int i = 0; i < 6; ++i) CHECK(satisfied[i] == Approx(expected[i]));
  CHECK(s.score_not_satisfied == std::vector<double>{0.95, 0.95, 0.95});
  std::vector<double> priors = s.prior_satisfied;
  std::sort(priors.begin(), priors.end());
  CHECK(priors == std::vector<double>{0.3, 0.3, 0.5, 0.5, 0.5, 0.5});
  std::vector<double> priors_not = s.prior_not_satisfied;
  std::sort(priors_not.begin(), priors_not.end());
  CHECK(priors_not == std::vector<double>{0.3, 0.5, 0.5});
}

TEST_CASE("eval: the relevance precision/recall curve", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results(set.path("results.jsonl"));
  run_evaluation(set.constitution, set.models, set.labels, make_ablations(""), results);
  const RelevanceCurve curve = relevance_curve(set.constitution, set.labels, results.records(), "full");
  // Pairs of the 6 images with rule-level truth, by relevance (+ = labelled violation):
  // .41 - .40 + .35 + .31 - .30 + .29 - .25 + .12 - .11 - .10 - .06 - .05 -
  CHECK(curve.pairs == 12);
  CHECK(curve.positives == 4);
  struct Expected {
    double threshold, precision, recall;
  };
  const Expected expected[] = {{.41, 0, 0},          {.40, .5, .25},       {.35, 2. / 3, .5},   {.31, .5, .5},
                               {.30, .6, .75},       {.29, .5, .75},       {.25, 4. / 7, 1},    {.12, .5, 1},
                               {.11, 4. / 9, 1},     {.10, .4, 1},         {.06, 4. / 11, 1},   {.05, 1. / 3, 1}};
  REQUIRE(curve.points.size() == 12);
  for (std::size_t i = 0; i < 12; ++i) {
    INFO("point " << i);
    CHECK(curve.points[i].threshold == Approx(expected[i].threshold).margin(1e-5));
    CHECK(curve.points[i].precision == Approx(expected[i].precision));
    CHECK(curve.points[i].recall == Approx(expected[i].recall));
  }
  // The configured threshold 0.22 keeps the 7 pairs at .25 and above: all 4 violations.
  CHECK(curve.recall_at_threshold == Approx(1.0));
  CHECK(curve.kept_at_threshold == Approx(7.0 / 12));
  CHECK(curve.precision_at_threshold == Approx(4.0 / 7));

  // Without relevance values (scanning off) there is no curve.
  ResultsFile off(set.path("off.jsonl"));
  run_evaluation(set.constitution, set.models, set.labels, make_ablations("relevance"), off);
  const RelevanceCurve none = relevance_curve(set.constitution, set.labels, off.records(), "no-relevance");
  CHECK(none.pairs == 0);
  CHECK(none.points.empty());
}

TEST_CASE("eval: time per image is the mean, median and nearest-rank p95", "[unit][eval]") {
  const Constitution constitution = Constitution::from_string(kConstitution);
  const LabelSet labels =
      parse_labels("image,label\na,safe\nb,safe\nc,unsafe\nd,unsafe\n", LabelFormat::Csv, "t.csv", "");
  std::vector<ImageRecord> records;
  const double times[] = {40, 10, 30, 20};
  const char* images[] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; ++i) {
    ImageRecord r;
    r.image = images[i];
    r.ablation = "full";
    r.total_ms = times[i];
    records.push_back(r);
  }
  AblationMetrics m = compute_metrics(constitution, labels, records, "full");
  CHECK(m.time.mean_ms == Approx(25));
  CHECK(m.time.median_ms == Approx(25));
  CHECK(m.time.p95_ms == Approx(40));
  records.pop_back();  // 40, 10, 30: median 30, p95 = the 3rd of 3.
  m = compute_metrics(constitution, labels, records, "full");
  CHECK(m.time.median_ms == Approx(30));
  CHECK(m.time.p95_ms == Approx(40));
  CHECK(m.missing == 1);
  // Every judged image is safe here: no positives, so precision is undefined (NaN -> null).
  CHECK(std::isnan(m.precision));
  CHECK(to_json(m)["precision"].is_null());
}

TEST_CASE("eval: labels in CSV and JSON lines", "[unit][eval]") {
  SECTION("CSV with quotes, CRLF, a BOM, spaces and extra columns") {
    const LabelSet set = parse_labels(
        "\xEF\xBB\xBFimage, label ,source,rules\r\n"
        "\"dir/a, b.png\",UNSAFE,web,\"gore; weapon\"\r\n"
        "\r\n"
        "/abs/c.png, safe ,web,\r\n",
        LabelFormat::Csv, "l.csv", "/data");
    REQUIRE(set.images.size() == 2);
    CHECK(set.images[0].image == "dir/a, b.png");
    CHECK(set.images[0].path == "/data/dir/a, b.png");
    CHECK(set.images[0].unsafe);
    CHECK(set.images[0].rules == std::vector<std::string>{"gore", "weapon"});
    CHECK(set.images[0].line == 2);
    CHECK(set.images[1].path == "/abs/c.png");
    CHECK_FALSE(set.images[1].unsafe);
    CHECK(set.images[1].line == 4);
  }
  SECTION("JSON lines") {
    const LabelSet set = parse_labels(
        "{\"image\": \"a.png\", \"label\": \"unsafe\", \"rules\": [\"weapon\", \"gore\"]}\n"
        "\n"
        "{\"image\": \"b.png\", \"label\": \"safe\", \"note\": \"extra keys are fine\"}\n",
        LabelFormat::JsonLines, "l.jsonl", "");
    REQUIRE(set.images.size() == 2);
    CHECK(set.images[0].rules == std::vector<std::string>{"gore", "weapon"});
    CHECK(set.images[0].labels_rule("weapon"));
    CHECK(set.images[1].path == "b.png");
    CHECK(set.images[1].line == 3);
  }
  SECTION("files: format from the extension, paths relative to the file") {
    LabelledSet set;
    write_text(set.path("l.jsonl"), "{\"image\": \"gore.png\", \"label\": \"unsafe\", \"rules\": [\"gore\"]}\n");
    CHECK(load_labels(set.path("l.jsonl")).images[0].path == set.path("gore.png"));
    CHECK(set.labels.images[3].path == set.path("cascade.png"));
    CHECK_THROWS_WITH(load_labels(set.path("labels.txt")), Contains("unknown labels format"));
    CHECK_THROWS_WITH(load_labels(set.path("none.csv")), Contains("none.csv: cannot open"));
  }
}

TEST_CASE("eval: malformed labels name the file and line", "[unit][eval]") {
  const auto csv_error = [](const std::string& text) {
    try {
      parse_labels(text, LabelFormat::Csv, "l.csv", "");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::InvalidArgument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto jsonl_error = [](const std::string& text) {
    try {
      parse_labels(text, LabelFormat::JsonLines, "l.jsonl", "");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(csv_error(""), Contains("l.csv:1: empty labels file"));
  CHECK_THAT(csv_error("path,safe\na.png,safe\n"), Contains("l.csv:1: the header must name the columns image,label"));
  CHECK_THAT(csv_error("image,label,label\n"), Contains("l.csv:1: column 'label' appears twice"));
  CHECK_THAT(csv_error("image,label\na.png,safe\nb.png,maybe\n"), Contains("l.csv:3: label must be \"safe\" or \"unsafe\", found \"maybe\""));
  CHECK_THAT(csv_error("image,label,rules\na.png,safe,gore\n"), Contains("l.csv:2: image 'a.png' is labelled safe but lists violated rules"));
  CHECK_THAT(csv_error("image,label\na.png,safe\n\na.png,unsafe\n"), Contains("l.csv:4: image 'a.png' is already listed on line 2"));
  CHECK_THAT(csv_error("image,label\na.png,safe,x\n"), Contains("l.csv:2: 3 columns, the header has 2"));
  CHECK_THAT(csv_error("image,label\n\"a.png,safe\n"), Contains("l.csv:2: unterminated quoted field"));
  CHECK_THAT(csv_error("image,label\n\"a\"b.png,safe\n"), Contains("l.csv:2: column 1: text after a closing quote"));
  CHECK_THAT(csv_error("image,label\n,safe\n"), Contains("l.csv:2: empty image path"));
  CHECK_THAT(csv_error("image,label,rules\na.png,unsafe,gore;gore\n"), Contains("l.csv:2: image 'a.png' lists a rule twice"));
  CHECK_THAT(csv_error("image,label\n"), Contains("l.csv: no labelled images"));

  CHECK_THAT(jsonl_error("{\"image\": \"a.png\", \"label\": \"safe\"}\n{\"image\": \"b.png\", \n"), Contains("l.jsonl:2: invalid JSON: parse error at line 1, column 20"));
  CHECK_THAT(jsonl_error("[1, 2]\n"), Contains("l.jsonl:1: expected a JSON object"));
  CHECK_THAT(jsonl_error("{\"label\": \"safe\"}\n"), Contains("l.jsonl:1: \"image\" must be a string"));
  CHECK_THAT(jsonl_error("{\"image\": \"a.png\", \"label\": true}\n"), Contains("l.jsonl:1: \"label\" must be the string"));
  CHECK_THAT(jsonl_error("{\"image\": \"a.png\", \"label\": \"unsafe\", \"rules\": \"gore\"}\n"), Contains("l.jsonl:1: \"rules\" must be an array"));

  const Constitution constitution = Constitution::from_string(kConstitution);
  const LabelSet labels = parse_labels("image,label,rules\na.png,unsafe,gore\nb.png,unsafe,nudity\n", LabelFormat::Csv, "l.csv", "");
  CHECK_THROWS_WITH(check_rules_exist(labels, constitution), Contains("l.csv:3: rule 'nudity' is not in constitution 'eval-test'"));
}

TEST_CASE("eval: results without a path stay in memory and name the models that judged", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results("");
  const auto ablations = make_ablations("");
  const RunCounts counts = run_evaluation(set.constitution, set.models, set.labels, ablations, results);
  CHECK(counts.judged == set.labels.images.size());
  CHECK(results.records().size() == set.labels.images.size());
  CHECK(results.path().empty());
  const auto judged = std::find_if(results.records().begin(), results.records().end(),
                                   [](const ImageRecord& r) { return !r.failed; });
  REQUIRE(judged != results.records().end());
  const ImageRecord& first = *judged;
  CHECK(first.vlm_model == set.models.vlm->model_id());
  CHECK(first.relevance_model == (set.models.relevance ? set.models.relevance->model_id() : std::string()));
}

TEST_CASE("eval: the report has its tables and PLplot draws the PNG plots", "[unit][eval]") {
  LabelledSet set;
  ResultsFile results(set.path("results.jsonl"));
  const auto ablations = make_ablations("cascade");
  run_evaluation(set.constitution, set.models, set.labels, ablations, results);
  ReportInput input;
  input.constitution = &set.constitution;
  input.labels = &set.labels;
  input.results_path = results.path();
  input.models = {"scripted", "auto", "scripted:vlm", "", "scripted:locator"};
  input.metrics = metrics_of(set, results, ablations);
  input.scores = collect_item_scores(set.labels, results.records(), "full");
  input.relevance = relevance_curve(set.constitution, set.labels, results.records(), "full");
  const std::string report_path = write_report(set.path("report"), input);
  const std::string report = read_text(report_path);

  CHECK_THAT(report, Contains("- models: vision-language `scripted:vlm`, relevance none, locator `scripted:locator` "
                              "(backend `scripted`, dtype `auto`)"));
  CHECK_THAT(report, Contains("| | full method | w/o cascaded reasoning |"));
  CHECK_THAT(report, Contains("| accuracy | 0.714 | 0.667 |"));
  CHECK_THAT(report, Contains("| F1 | 0.800 | 0.750 |"));
  CHECK_THAT(report, Contains("| review rate (of which labelled unsafe) | 0.000 (0) | 0.143 (1) |"));
  CHECK_THAT(report, Contains("| full method | 4 | 1 | 1 | 1 |"));
  CHECK_THAT(report, Contains("| w/o cascaded reasoning | 3 | 1 | 1 | 1 |"));
  CHECK_THAT(report, Contains("| `gore` | 2 | 0.333 / 0.500 | 0.333 / 0.500 |"));
  CHECK_THAT(report, Contains("| `weapon` | 2 | 0.500 / 0.500 | 0.000 / 0.000 |"));
  CHECK_THAT(report, Contains("| items decided by `reasoning` | 1 (8%) | 0 (0%) |"));
  CHECK_THAT(report, Contains("![relevance precision/recall](relevance_pr.png)"));
  CHECK_THAT(report, Contains("![M(x,c) distribution](scores_M.png)"));

  // Each plot is a real 800x500 PNG with both series in their colours.
  const auto count_pixels = [](const Image& image, bool blue) {
    int count = 0;
    for (std::size_t i = 0; i < image.rgb.size(); i += 3) {
      const int r = image.rgb[i], b = image.rgb[i + 2];
      count += blue ? (b > r + 40) : (r > b + 60);
    }
    return count;
  };
  for (const char* name : {"scores_M.png", "scores_m0.png", "relevance_pr.png"}) {
    INFO(name);
    const Image plot = load_image_file(set.path("report/") + name);
    CHECK(plot.width == 800);
    CHECK(plot.height == 500);
    CHECK(count_pixels(plot, true) > 100);   // satisfied bars / the curve
    CHECK(count_pixels(plot, false) > 20);   // not-satisfied bars / the threshold star
  }
  CHECK_THROWS_WITH(plot_score_histograms(set.path("x.png"), "t", "x", {0.5, 1.5}, {}), Contains("outside [0, 1]"));
  CHECK_THROWS_WITH(plot_score_histograms(set.path("no/such/dir/x.png"), "t", "x", {0.5}, {}),
                    Contains("cannot write the plot"));
}
