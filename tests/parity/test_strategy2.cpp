// Strategy 2 end to end on real locator code: a scripted VLM (so the decision
// can be asserted) with a random-weight OWLv2 / OWL-ViT folder as the locator.
// Whatever box the random detector finds, the VLM is asked about the image with
// that box erased (or about its crop); the script answers an image it does not
// know with its default score, which fixes the outcome.
#include "torch_catch.hpp"

#include <filesystem>
#include <unistd.h>

#include <fmt/format.h>

#include "backends/scripted/scripted_backend.hpp"
#include "devtools/random_models.hpp"
#include "imgjudge/judge.hpp"
#include "models/families.hpp"
#include "runtime/device.hpp"

using namespace imgjudge;

namespace {

std::string source(const std::string& relative) { return std::string(IMGJUDGE_SOURCE_DIR) + "/" + relative; }

// Two-item rule: the first item is accepted by strategy 1, the second names a
// central object and stays uncertain (M = 0.75 against m0 = 0.5).
std::string constitution(double small_region_fraction) {
  return fmt::format(R"(schema_version = 1
name = "strategy2"
version = "1"

[[rules]]
id = "fire"
category = "danger"
text = "No burning rockets."
objective_text = "A rocket is on fire."
thresholds = {{ locator_confidence = 0.0, small_region_fraction = {} }}
chain = [
  {{ any_of = ["A rocket is visible."] }},
  {{ any_of = ["Flames come out of the rocket."], objects = ["flames", "a rocket"] }},
]
)",
                     small_region_fraction);
}

// `unknown_score`: what the VLM answers for the erased image or the crop.
Models scripted_models(double unknown_score) {
  const std::string image = source("examples/images/rocket.jpg");
  const std::string script = fmt::format(R"([defaults]
prior = 0.5
score = {}

[[images]]
file = "{}"
scores = {{ "A rocket is visible." = 0.99, "Flames come out of the rocket." = 0.75 }}
)",
                                         unknown_score, image);
  return backends::scripted::load_models_from_string(script, "strategy2-script.toml", ".");
}

std::shared_ptr<const Locator> random_locator(const std::string& kind, const std::string& config_path) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("imgjudge_strategy2_" + kind + "_" + std::to_string(::getpid()))).string();
  devtools::RandomModelRequest request;
  request.config_path = config_path;
  request.tokenizer_dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/clip";
  request.out_dir = dir;
  request.seed = 5;
  devtools::make_random_model(request);
  models::LoadOptions options;
  options.target = runtime::resolve_device({"cpu", "float32", 1});
  auto locator = models::require_family(kind, models::FamilyRole::Locator, dir).load_locator(dir, options);
  std::filesystem::remove_all(dir);  // the weights are in memory now
  return locator;
}

const StatementScore& flames(const Verdict& verdict) {
  const RuleResult* rule = verdict.find_rule("fire");
  REQUIRE(rule != nullptr);
  REQUIRE(rule->items.size() == 2);
  REQUIRE(rule->items[1].statements.size() == 1);
  return rule->items[1].statements[0];
}

}  // namespace

TEST_CASE("strategy 2 end to end: a scripted VLM and a real random-weight locator", "[parity][owl][strategy2]") {
  const std::vector<std::pair<std::string, std::string>> locators = {
      {"owlv2", source("examples/demo/tiny-owlv2.json")},
      {"owlvit", std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity-locator/owlvit/config.json"}};
  const Image image = load_image_file(source("examples/images/rocket.jpg"));
  for (const auto& [kind, config] : locators) {
    INFO(kind);
    const auto locator = random_locator(kind, config);
    const auto with_locator = [&](Models models) {
      models.locator = locator;
      return models;
    };

    {  // The erased object carried the answer: accepted by strategy 2.
      // 0.75 - 0.1 > region_delta 0.6.
      const Judge judge(Constitution::from_string(constitution(0.0)), with_locator(scripted_models(0.1)));
      const Verdict verdict = judge.judge(image);
      const StatementScore& s = flames(verdict);
      CHECK(verdict.decision == Decision::Unsafe);
      CHECK(s.outcome == ItemOutcome::Accepted);
      CHECK(s.decided_by == Stage::Region);
      REQUIRE(s.region.has_value());
      CHECK((s.region->phrase == "flames" || s.region->phrase == "a rocket"));
      CHECK_FALSE(s.region->cropped);
      CHECK(s.region->score == Approx(0.1));
      CHECK(s.region_score.has_value());
      CHECK((s.region->confidence > 0 && s.region->confidence <= 1));
      const Box& box = s.region->box;
      CHECK((0 <= box.x0 && box.x0 < box.x1 && box.x1 <= image.width));
      CHECK((0 <= box.y0 && box.y0 < box.y1 && box.y1 <= image.height));
      CHECK(s.region->area_fraction == Approx(box.area() / (double(image.width) * image.height)));
      CHECK(verdict.locator_model_id.rfind(kind + ":", 0) == 0);
      CHECK(verdict.timings.locate_ms > 0);
    }
    {  // The answer did not depend on the object: strategy 2 declines, reasoning decides.
      // 0.75 - 0.5 <= 0.6; the script's default reasoning answers "No".
      const Judge judge(Constitution::from_string(constitution(0.0)), with_locator(scripted_models(0.5)));
      const Verdict verdict = judge.judge(image);
      const StatementScore& s = flames(verdict);
      CHECK(verdict.decision == Decision::Safe);
      REQUIRE(s.region.has_value());
      CHECK(s.region->score == Approx(0.5));
      CHECK(s.outcome == ItemOutcome::Rejected);
      CHECK(s.decided_by == Stage::Reasoning);
    }
    {  // Every box counts as small: the crop is judged against the prior.
      // M(crop) = 0.1 < m0 - 0.3 m0: rejected by strategy 2 on the crop.
      const Judge judge(Constitution::from_string(constitution(1.0)), with_locator(scripted_models(0.1)));
      const Verdict verdict = judge.judge(image);
      const StatementScore& s = flames(verdict);
      CHECK(verdict.decision == Decision::Safe);
      REQUIRE(s.region.has_value());
      CHECK(s.region->cropped);
      CHECK(s.crop_score.has_value());
      CHECK(s.outcome == ItemOutcome::Rejected);
      CHECK(s.decided_by == Stage::Region);
    }
  }
}
