// Inputs found by the fuzzers (tests/fuzz, scripts/fuzz.sh) that once broke
// the error contract, kept as regression tests. Each file under
// tests/data/hostile/fuzz/<target>/ is fed to the entry point of that target
// and must be rejected with imgjudge::Error of the category listed here.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "imgjudge/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using imgjudge::Error;
using imgjudge::ErrorCode;

namespace {

/// Loads one regression input the way its fuzz target does; must throw.
using Loader = std::function<void(const fs::path& input)>;

struct Expectation {
  Loader load;
  ErrorCode code;
  const char* message_fragment;  ///< What the message must name.
};

void load_tokenizer_json(const fs::path& input) {
  char pattern[] = "/tmp/imgjudge-fuzz-regression-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  fs::copy_file(input, dir + "/tokenizer.json");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { fs::remove_all(dir); }
  } cleanup{dir};
  (void)imgjudge::tokenizer::Tokenizer::load(dir, imgjudge::tokenizer::TokenizerFormat::Fast);
}

const std::map<std::string, Expectation>& expectations() {
  static const std::map<std::string, Expectation> table = {
      // tokenizer.json: padding.pad_id / truncation.max_length of the wrong type
      // escaped as nlohmann::json::type_error.
      {"tokenizer_json", {load_tokenizer_json, ErrorCode::InvalidModel, "tokenizer.json"}},
  };
  return table;
}

}  // namespace

TEST_CASE("inputs once found by the fuzzers are rejected with imgjudge::Error", "[unit][fuzz]") {
  const fs::path root = fs::path(IMGJUDGE_TEST_DATA_DIR) / "hostile" / "fuzz";
  int files = 0;
  for (const auto& target : fs::directory_iterator(root)) {
    const std::string name = target.path().filename().string();
    INFO("target " << name);
    const auto expected = expectations().find(name);
    REQUIRE(expected != expectations().end());  // every folder needs an entry above
    for (const auto& input : fs::directory_iterator(target.path())) {
      INFO("input " << input.path().filename().string());
      ++files;
      try {
        expected->second.load(input.path());
        FAIL("accepted");
      } catch (const Error& e) {
        INFO(e.what());
        CHECK(e.code() == expected->second.code);
        CHECK_THAT(e.what(), Catch::Contains(expected->second.message_fragment));
      }
    }
  }
  CHECK(files >= 2);
}
