// Verdict names and the stable JSON form "imgjudge.verdict/2" (docs/verdict-json.md).
#include "imgjudge/verdict.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace imgjudge {
namespace {

using nlohmann::json;

json optional_number(const std::optional<double>& value) {
  if (!value || !std::isfinite(*value)) return nullptr;
  return *value;
}

json number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

json empty_as_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

}  // namespace

const char* decision_name(Decision decision) noexcept {
  switch (decision) {
    case Decision::Safe: return "safe";
    case Decision::Unsafe: return "unsafe";
    case Decision::Review: return "review";
  }
  return "unknown";
}

const char* item_outcome_name(ItemOutcome outcome) noexcept {
  switch (outcome) {
    case ItemOutcome::Accepted: return "accepted";
    case ItemOutcome::Rejected: return "rejected";
    case ItemOutcome::Uncertain: return "uncertain";
    case ItemOutcome::NotEvaluated: return "not_evaluated";
  }
  return "unknown";
}

const char* stage_name(Stage stage) noexcept {
  switch (stage) {
    case Stage::None: return "none";
    case Stage::Prior: return "prior";
    case Stage::Direct: return "direct";
    case Stage::Region: return "region";
    case Stage::Reasoning: return "reasoning";
    case Stage::Undecided: return "undecided";
  }
  return "unknown";
}

const RuleResult* Verdict::find_rule(const std::string& id) const noexcept {
  for (const auto& rule : rules) {
    if (rule.id == id) return &rule;
  }
  return nullptr;
}

namespace {
json region_json(const std::optional<RegionEvidence>& region) {
  if (!region) return nullptr;
  return {{"phrase", region->phrase},
          {"box", {region->box.x0, region->box.y0, region->box.x1, region->box.y1}},
          {"confidence", number(region->confidence)},
          {"area_fraction", number(region->area_fraction)},
          {"action", region->cropped ? "crop" : "erase"},
          {"score", number(region->score)}};
}
}  // namespace

std::string Verdict::to_json() const {
  json rules_json = json::array();
  for (const auto& rule : rules) {
    json items = json::array();
    for (const auto& item : rule.items) {
      json statements_json = json::array();
      for (const auto& s : item.statements) {
        statements_json.push_back({{"statement", s.statement},
                                   {"score", number(s.score)},
                                   {"prior", number(s.prior)},
                                   {"region_score", optional_number(s.region_score)},
                                   {"crop_score", optional_number(s.crop_score)},
                                   {"region", region_json(s.region)},
                                   {"outcome", item_outcome_name(s.outcome)},
                                   {"decided_by", stage_name(s.decided_by)},
                                   {"rationale", empty_as_null(s.rationale)}});
      }
      items.push_back({{"outcome", item_outcome_name(item.outcome)},
                       {"decided_by", stage_name(item.decided_by)},
                       {"deciding_statement", item.deciding_statement < 0 ? json(nullptr)
                                                                          : json(item.deciding_statement)},
                       {"statements", statements_json}});
    }
    rules_json.push_back({{"id", rule.id},
                          {"category", rule.category},
                          {"severity", severity_name(rule.severity)},
                          {"relevance", optional_number(rule.relevance)},
                          {"judged", rule.judged},
                          {"violated", rule.violated},
                          {"uncertain", rule.uncertain},
                          {"review", rule.review},
                          {"score", rule.score},
                          {"items", items}});
  }
  json categories = json::object();
  for (const auto& [category, score] : category_scores) categories[category] = score;
  json doc = {
      {"schema", "imgjudge.verdict/2"},
      {"decision", decision_name(decision)},
      {"violated_rules", violated_rules},
      {"review_rules", review_rules},
      {"category_scores", categories},
      {"image", {{"hash", image_hash}, {"width", image_width}, {"height", image_height}}},
      {"constitution",
       {{"name", constitution_name}, {"version", constitution_version}, {"hash", constitution_hash}}},
      {"models",
       {{"vlm", vlm_model_id},
        {"relevance", empty_as_null(relevance_model_id)},
        {"locator", empty_as_null(locator_model_id)},
        {"answer_tokens", answer_tokens},
        {"answer_spellings", answer_spellings}}},
      {"rules", rules_json},
      {"stats", {{"questions_scored", questions_scored}, {"reasoning_calls", reasoning_calls}}},
      {"timings_ms",
       {{"decode", timings.decode_ms},
        {"relevance", timings.relevance_ms},
        {"prepare", timings.prepare_ms},
        {"scoring", timings.scoring_ms},
        {"region", timings.region_ms},
        {"locate", timings.locate_ms},
        {"reasoning", timings.reasoning_ms},
        {"total", timings.total_ms}}},
      {"notes", notes},
      {"animation", animation ? json{{"frames", animation->frame_count},
                                     {"judged", animation->judged_frames},
                                     {"frame", animation->frame}}
                              : json(nullptr)},
  };
  // ensure_ascii=false keeps UTF-8 statements readable; invalid UTF-8 is replaced, never thrown.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace imgjudge
