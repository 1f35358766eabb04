#include <catch2/catch.hpp>

#include "core/reasoning.hpp"
#include "util/json.hpp"

using imgjudge::core::parse_reasoning_answer;

TEST_CASE("reasoning answers are read tolerantly", "[unit][reasoning]") {
  auto yes = parse_reasoning_answer(R"({"rating": "Yes", "rationale": "a knife at the throat"})");
  REQUIRE(yes);
  CHECK(yes->yes);
  CHECK(yes->rationale == "a knife at the throat");

  auto fenced = parse_reasoning_answer("Here you go:\n```json\n{\"rating\": \"no\", \"rationale\": \"toy\"}\n```");
  REQUIRE(fenced);
  CHECK_FALSE(fenced->yes);

  auto single_quotes = parse_reasoning_answer("{'rating': 'YES.', 'rationale': 'it is',}");
  REQUIRE(single_quotes);
  CHECK(single_quotes->yes);

  auto nested = parse_reasoning_answer(R"(Answer: {"result": {"x": 1}, "Rating": "No"})");
  REQUIRE(nested);
  CHECK_FALSE(nested->yes);

  auto truncated = parse_reasoning_answer(R"({"rating": "Yes", "rationale": "the blade)");  // budget ran out
  REQUIRE(truncated);
  CHECK(truncated->yes);

  auto bare = parse_reasoning_answer("rating: yes because the gun is aimed");
  REQUIRE(bare);
  CHECK(bare->yes);
}

TEST_CASE("answers without a usable rating are refused", "[unit][reasoning]") {
  CHECK_FALSE(parse_reasoning_answer(""));
  CHECK_FALSE(parse_reasoning_answer("I cannot tell from this image."));
  CHECK_FALSE(parse_reasoning_answer(R"({"rating": "maybe"})"));
  CHECK_FALSE(parse_reasoning_answer("{{{{{{"));
}

TEST_CASE("generation stops where the first top-level JSON object closes", "[unit][reasoning]") {
  using imgjudge::util::json_object_end;
  const std::string answer = R"({"rating": "No", "rationale": "a toy"})";
  CHECK(json_object_end(answer) == answer.size());
  CHECK(json_object_end(answer + "\n\nThe image shows") == answer.size());
  // Prose and a code fence before it; nested objects; braces and escaped quotes inside strings.
  const std::string fenced = "Sure:\n```json\n{\"a\": {\"b\": [1, {}]}, \"r\": \"} \\\" {\"}";
  REQUIRE(json_object_end(fenced).has_value());
  CHECK(fenced.substr(0, *json_object_end(fenced)) == fenced);
  CHECK(json_object_end(fenced + "\n```") == fenced.size());
  // Not closed yet, or not started: keep generating.
  CHECK_FALSE(json_object_end(R"({"rating": "No", "rationale": "a }")").has_value());
  CHECK_FALSE(json_object_end(R"({"rating": {"x": 1})").has_value());
  CHECK_FALSE(json_object_end("I think the answer is no } really").has_value());
  CHECK_FALSE(json_object_end("").has_value());
  // A quote in the prose before the object does not open a string.
  CHECK(json_object_end(R"(he said "hi {"a": 1} rest)") == std::string(R"(he said "hi {"a": 1})").size());
}
