// HfConfig: typed getters, defaults for absent/null keys, errors naming file and key.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "imgjudge/error.hpp"
#include "runtime/config.hpp"

using imgjudge::Error;
using imgjudge::ErrorCode;
using imgjudge::runtime::HfConfig;

namespace {
std::string message_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidModel);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("HfConfig reads the CLIP fixture config with sections and defaults", "[unit][config]") {
  auto config = HfConfig::load(std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/clip/config.json");
  CHECK(config.get_string("model_type") == "clip");
  CHECK(config.get_int("projection_dim") == 24);
  CHECK(config.get_double("logit_scale_init_value") == Approx(2.6592));
  auto text = config.section("text_config");
  CHECK(text.get_int("hidden_size") == 32);
  CHECK(text.get_int("pad_token_id", 1) == 1);  // absent -> default
  CHECK(text.get_string("hidden_act", "gelu") == "quick_gelu");
  CHECK(config.section("no_such_section").get_int("hidden_size", 7) == 7);
}

TEST_CASE("HfConfig errors name the file and the qualified key", "[unit][config]") {
  HfConfig config(nlohmann::json::parse(R"({"a": "x", "n": null, "f": 2.0, "s": {"b": [1, "z"]}})"),
                  "dir/config.json");
  CHECK(config.get_int("n", 5) == 5);  // null counts as absent
  CHECK(config.get_int("f") == 2);
  CHECK(message_of([&] { config.get_int("a"); }) ==
        "dir/config.json: key 'a': expected an integer, found string \"x\"");
  CHECK(message_of([&] { config.get_int("missing"); }) == "dir/config.json: missing key 'missing'");
  CHECK(message_of([&] { config.section("s").get_doubles("b", {}); }).find("key 's.b'") != std::string::npos);
  CHECK(message_of([&] { config.section("a"); }).find("expected an object") != std::string::npos);
  CHECK(message_of([&] { HfConfig(nlohmann::json::array(), "x.json"); }).find("x.json") != std::string::npos);
}

TEST_CASE("a config.json nested a million levels deep is InvalidModel, not a stack overflow", "[unit][config]") {
  const std::string path = "/tmp/imgjudge_deep_config_" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream out(path);
    out << "{\"model_type\": \"qwen2\", \"x\": " << std::string(1u << 20, '[') << std::string(1u << 20, ']') << "}";
  }
  const std::string message = message_of([&] { HfConfig::load(path); });
  std::remove(path.c_str());
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("JSON nested deeper than 64 levels") != std::string::npos);
}
