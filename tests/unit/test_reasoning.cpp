#include <catch2/catch.hpp>

#include "core/reasoning.hpp"

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
