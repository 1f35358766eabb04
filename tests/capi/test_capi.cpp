// The C API through the shared library, as an application links it: every
// error path returns its code and a message, NULL is never a crash, and a
// judge built on the scripted backend judges images end to end.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "imgjudge.h"

namespace {

std::string last_message() { return imgjudge_last_error_message(); }

/// A file in the system temp folder, removed at scope exit.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents) {
    const char* tmp = std::getenv("TMPDIR");
    path_ = std::string(tmp != nullptr ? tmp : "/tmp") + "/imgjudge_capi_" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "_" + name;
    std::ofstream out(path_, std::ios::binary);
    out << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A small, valid constitution: two rules with chains.
const char* const kConstitution = R"(schema_version = 1
name = "capi-test"
version = "1.0"

[[rules]]
id = "test.knife"
category = "weapons"
severity = "high"
text = "No knives pointed at people."
objective_text = "A knife is pointed at a person."
chain = [
  { any_of = ["A knife is visible in the image."] },
  { any_of = ["A person is visible in the image."] },
]

[[rules]]
id = "test.fire"
category = "danger"
severity = "medium"
text = "No burning buildings."
objective_text = "A building is on fire."
chain = [
  { any_of = ["A building is visible in the image."] },
  { any_of = ["Flames are visible on the building."] },
]
)";

/// Owns a constitution loaded from kConstitution.
struct LoadedConstitution {
  imgjudge_constitution* handle = nullptr;
  LoadedConstitution() {
    const std::string text = kConstitution;
    REQUIRE(imgjudge_constitution_load_string(&handle, text.data(), text.size(), "capi-test.toml") ==
            IMGJUDGE_OK);
  }
  ~LoadedConstitution() { imgjudge_constitution_free(handle); }
};

}  // namespace

TEST_CASE("status values are pinned and named", "[capi]") {
  CHECK(IMGJUDGE_OK == 0);
  const std::vector<std::pair<imgjudge_status, std::string>> expected = {
      {IMGJUDGE_INVALID_ARGUMENT, "invalid_argument"},
      {IMGJUDGE_INVALID_CONSTITUTION, "invalid_constitution"},
      {IMGJUDGE_INVALID_IMAGE, "invalid_image"},
      {IMGJUDGE_LIMIT_EXCEEDED, "limit_exceeded"},
      {IMGJUDGE_INVALID_MODEL, "invalid_model"},
      {IMGJUDGE_UNSUPPORTED, "unsupported"},
      {IMGJUDGE_IO, "io"},
      {IMGJUDGE_DEADLINE_EXCEEDED, "deadline_exceeded"},
      {IMGJUDGE_CANCELLED, "cancelled"},
      {IMGJUDGE_OUT_OF_MEMORY, "out_of_memory"},
      {IMGJUDGE_BACKEND, "backend"},
      {IMGJUDGE_INTERNAL, "internal"},
  };
  int value = 1;
  for (const auto& [status, name] : expected) {
    CHECK(static_cast<int>(status) == value++);
    CHECK(std::string(imgjudge_status_name(status)) == name);
  }
  CHECK(std::string(imgjudge_status_name(IMGJUDGE_OK)) == "ok");
  CHECK(std::string(imgjudge_status_name(13)) == "unknown");
  CHECK(std::string(imgjudge_status_name(-1)) == "unknown");
}

TEST_CASE("the runtime version matches the header", "[capi]") {
  CHECK(std::string(imgjudge_version()) == IMGJUDGE_VERSION_STRING);
  CHECK(imgjudge_version_number() == IMGJUDGE_VERSION_NUMBER);
  CHECK(IMGJUDGE_VERSION_NUMBER ==
        IMGJUDGE_VERSION_MAJOR * 10000 + IMGJUDGE_VERSION_MINOR * 100 + IMGJUDGE_VERSION_PATCH);
}

TEST_CASE("the last error is per thread and cleared on request", "[capi]") {
  imgjudge_last_error_clear();
  CHECK(imgjudge_last_error_code() == IMGJUDGE_OK);
  CHECK(last_message().empty());

  imgjudge_constitution* constitution = nullptr;
  REQUIRE(imgjudge_constitution_load_file(&constitution, nullptr) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(imgjudge_last_error_code() == IMGJUDGE_INVALID_ARGUMENT);
  const std::string message = last_message();
  CHECK_THAT(message, Catch::Contains("imgjudge_constitution_load_file") &&
                          Catch::Contains("`path` is NULL"));

  // Another thread has its own, empty, error state, and its failure is invisible here.
  std::string other_thread_message_before = "unset";
  imgjudge_status other_thread_code_before = IMGJUDGE_INTERNAL;
  std::thread other([&] {
    other_thread_code_before = imgjudge_last_error_code();
    other_thread_message_before = imgjudge_last_error_message();
    imgjudge_cancel_token_cancel(nullptr);
  });
  other.join();
  CHECK(other_thread_code_before == IMGJUDGE_OK);
  CHECK(other_thread_message_before.empty());
  CHECK(last_message() == message);

  // A successful call does not change it.
  imgjudge_cancel_token* token = nullptr;
  REQUIRE(imgjudge_cancel_token_create(&token) == IMGJUDGE_OK);
  CHECK(last_message() == message);
  imgjudge_cancel_token_free(token);

  imgjudge_last_error_clear();
  CHECK(imgjudge_last_error_code() == IMGJUDGE_OK);
  CHECK(last_message().empty());
}

TEST_CASE("NULL arguments are IMGJUDGE_INVALID_ARGUMENT, never a crash", "[capi]") {
  LoadedConstitution constitution;
  const unsigned char byte = 0;

  // Every fallible entry point, with each required pointer NULL in turn; the
  // message must name the argument.
  struct Case {
    const char* argument;
    imgjudge_status status;
  };
  std::vector<Case> cases;
  {
    imgjudge_constitution* out = reinterpret_cast<imgjudge_constitution*>(0x1);
    cases.push_back({"out", imgjudge_constitution_load_file(nullptr, "x.toml")});
    cases.push_back({"path", imgjudge_constitution_load_file(&out, nullptr)});
    CHECK(out == nullptr);
    out = reinterpret_cast<imgjudge_constitution*>(0x1);
    cases.push_back({"out", imgjudge_constitution_load_string(nullptr, "a", 1, nullptr)});
    cases.push_back({"toml", imgjudge_constitution_load_string(&out, nullptr, 0, nullptr)});
    CHECK(out == nullptr);
    cases.push_back({"out", imgjudge_constitution_load_default(nullptr)});
  }
  {
    size_t count = 99;
    const char* text = "x";
    cases.push_back({"out_count", imgjudge_constitution_rule_count(nullptr, constitution.handle)});
    cases.push_back({"constitution", imgjudge_constitution_rule_count(&count, nullptr)});
    CHECK(count == 0);
    cases.push_back({"out_id", imgjudge_constitution_rule_id(nullptr, constitution.handle, 0)});
    cases.push_back({"constitution", imgjudge_constitution_rule_id(&text, nullptr, 0)});
    CHECK(text == nullptr);
    cases.push_back({"out_hash", imgjudge_constitution_hash(nullptr, constitution.handle)});
    text = "x";
    cases.push_back({"constitution", imgjudge_constitution_hash(&text, nullptr)});
    CHECK(text == nullptr);
  }
  {
    imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);
    cases.push_back({"out", imgjudge_judge_create(nullptr, constitution.handle, nullptr)});
    cases.push_back({"constitution", imgjudge_judge_create(&judge, nullptr, nullptr)});
    CHECK(judge == nullptr);
    cases.push_back({"options", imgjudge_judge_options_init(nullptr, IMGJUDGE_JUDGE_OPTIONS_VERSION)});
    cases.push_back({"options", imgjudge_call_options_init(nullptr, IMGJUDGE_CALL_OPTIONS_VERSION)});
  }
  {
    imgjudge_verdict* verdict = reinterpret_cast<imgjudge_verdict*>(0x1);
    cases.push_back({"judge", imgjudge_judge_bytes(&verdict, nullptr, &byte, 1, nullptr)});
    CHECK(verdict == nullptr);
    cases.push_back({"out", imgjudge_judge_bytes(nullptr, nullptr, &byte, 1, nullptr)});
    cases.push_back({"judge", imgjudge_judge_file(&verdict, nullptr, "x.png", nullptr)});
    cases.push_back({"judge", imgjudge_judge_rgb(&verdict, nullptr, &byte, 1, 1, 3, nullptr)});
    cases.push_back({"out", imgjudge_judge_rgb(nullptr, nullptr, &byte, 1, 1, 3, nullptr)});
  }
  {
    imgjudge_decision decision = IMGJUDGE_DECISION_SAFE;
    int flag = 0;
    size_t count = 7;
    const char* text = "x";
    size_t length = 7;
    cases.push_back({"verdict", imgjudge_verdict_decision(&decision, nullptr)});
    CHECK(decision == IMGJUDGE_DECISION_UNSAFE);  // never "safe" by accident
    cases.push_back({"out_decision", imgjudge_verdict_decision(nullptr, nullptr)});
    cases.push_back({"verdict", imgjudge_verdict_unsafe(&flag, nullptr)});
    CHECK(flag == 1);
    cases.push_back({"out_unsafe", imgjudge_verdict_unsafe(nullptr, nullptr)});
    cases.push_back({"verdict", imgjudge_verdict_violated_rule_count(&count, nullptr)});
    CHECK(count == 0);
    cases.push_back({"out_count", imgjudge_verdict_violated_rule_count(nullptr, nullptr)});
    cases.push_back({"verdict", imgjudge_verdict_violated_rule_id(&text, nullptr, 0)});
    CHECK(text == nullptr);
    cases.push_back({"out_id", imgjudge_verdict_violated_rule_id(nullptr, nullptr, 0)});
    text = "x";
    cases.push_back({"verdict", imgjudge_verdict_json(&text, &length, nullptr)});
    CHECK(text == nullptr);
    CHECK(length == 0);
    cases.push_back({"out_json", imgjudge_verdict_json(nullptr, nullptr, nullptr)});
  }
  {
    int flag = 5;
    cases.push_back({"out", imgjudge_cancel_token_create(nullptr)});
    cases.push_back({"token", imgjudge_cancel_token_cancel(nullptr)});
    cases.push_back({"token", imgjudge_cancel_token_is_cancelled(&flag, nullptr)});
    CHECK(flag == 0);
    cases.push_back({"out_cancelled", imgjudge_cancel_token_is_cancelled(nullptr, nullptr)});
  }
  for (const Case& c : cases) {
    INFO("argument " << c.argument);
    CHECK(c.status == IMGJUDGE_INVALID_ARGUMENT);
  }

  // Messages: spot-check that each names the NULL argument and the function.
  imgjudge_verdict* verdict = nullptr;
  REQUIRE(imgjudge_judge_bytes(&verdict, nullptr, &byte, 1, nullptr) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::Contains("imgjudge_judge_bytes: `judge` is NULL"));
  REQUIRE(imgjudge_verdict_json(nullptr, nullptr, nullptr) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::Contains("imgjudge_verdict_json: `out_json` is NULL"));
  REQUIRE(imgjudge_constitution_rule_id(nullptr, constitution.handle, 0) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::Contains("imgjudge_constitution_rule_id: `out_id` is NULL"));

  // Freeing NULL is a no-op.
  imgjudge_constitution_free(nullptr);
  imgjudge_judge_free(nullptr);
  imgjudge_verdict_free(nullptr);
  imgjudge_cancel_token_free(nullptr);
}

TEST_CASE("a constitution loads from a string and a file and is readable", "[capi]") {
  LoadedConstitution constitution;
  size_t count = 0;
  REQUIRE(imgjudge_constitution_rule_count(&count, constitution.handle) == IMGJUDGE_OK);
  CHECK(count == 2);
  const char* id = nullptr;
  REQUIRE(imgjudge_constitution_rule_id(&id, constitution.handle, 0) == IMGJUDGE_OK);
  CHECK(std::string(id) == "test.knife");
  REQUIRE(imgjudge_constitution_rule_id(&id, constitution.handle, 1) == IMGJUDGE_OK);
  CHECK(std::string(id) == "test.fire");
  CHECK(imgjudge_constitution_rule_id(&id, constitution.handle, 2) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(id == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("index 2 is out of range") &&
                                 Catch::Contains("2 rules"));

  const char* hash = nullptr;
  REQUIRE(imgjudge_constitution_hash(&hash, constitution.handle) == IMGJUDGE_OK);
  CHECK(std::regex_match(std::string(hash), std::regex("sha256:[0-9a-f]{64}")));

  // The same rules from a file, with comments added: the hash is of the
  // normalized constitution, so it is the same.
  TempFile file("rules.toml", std::string("# a comment\n") + kConstitution);
  imgjudge_constitution* from_file = nullptr;
  REQUIRE(imgjudge_constitution_load_file(&from_file, file.path().c_str()) == IMGJUDGE_OK);
  const char* file_hash = nullptr;
  REQUIRE(imgjudge_constitution_hash(&file_hash, from_file) == IMGJUDGE_OK);
  CHECK(std::string(file_hash) == hash);
  imgjudge_constitution_free(from_file);

  // The bundled default constitution.
  imgjudge_constitution* builtin = nullptr;
  REQUIRE(imgjudge_constitution_load_default(&builtin) == IMGJUDGE_OK);
  REQUIRE(imgjudge_constitution_rule_count(&count, builtin) == IMGJUDGE_OK);
  CHECK(count >= 5);
  imgjudge_constitution_free(builtin);
}

TEST_CASE("a bad constitution names its source, line and column", "[capi]") {
  imgjudge_constitution* constitution = reinterpret_cast<imgjudge_constitution*>(0x1);

  SECTION("TOML syntax error") {
    const std::string text = "schema_version = 1\nname = \"x\"\nversion = = 2\n";
    CHECK(imgjudge_constitution_load_string(&constitution, text.data(), text.size(), "policy.toml") ==
          IMGJUDGE_INVALID_CONSTITUTION);
    CHECK(std::regex_search(last_message(), std::regex("^policy\\.toml:3:\\d+: ")));
  }
  SECTION("duplicate rule id, with the default source name") {
    std::string text = kConstitution;
    text.replace(text.find("test.fire"), 9, "test.knife");
    CHECK(imgjudge_constitution_load_string(&constitution, text.data(), text.size(), nullptr) ==
          IMGJUDGE_INVALID_CONSTITUTION);
    CHECK(std::regex_search(last_message(), std::regex("^<string>:\\d+:\\d+: .*duplicate rule id")));
  }
  SECTION("unknown key in a file") {
    TempFile file("bad.toml", std::string(kConstitution) + "colour = \"blue\"\n");
    CHECK(imgjudge_constitution_load_file(&constitution, file.path().c_str()) ==
          IMGJUDGE_INVALID_CONSTITUTION);
    CHECK_THAT(last_message(), Catch::StartsWith(file.path() + ":") && Catch::Contains("colour"));
  }
  SECTION("a length past the end of the text: a NUL inside is named, a huge length is refused unread") {
    const std::string text = std::string(kConstitution);
    CHECK(imgjudge_constitution_load_string(&constitution, text.c_str(), text.size() + 1, "policy.toml") ==
          IMGJUDGE_INVALID_CONSTITUTION);
    CHECK_THAT(last_message(), Catch::Contains("NUL byte at offset " + std::to_string(text.size())));
    CHECK(imgjudge_constitution_load_string(&constitution, text.c_str(), SIZE_MAX, "policy.toml") ==
          IMGJUDGE_LIMIT_EXCEEDED);
    CHECK_THAT(last_message(), Catch::Contains("a constitution is at most"));
  }
  SECTION("length is respected: the text need not be NUL-terminated") {
    const std::string text = std::string(kConstitution) + "garbage that is not TOML [[[";
    CHECK(imgjudge_constitution_load_string(&constitution, text.data(),
                                            std::string(kConstitution).size(),
                                            "prefix.toml") == IMGJUDGE_OK);
    imgjudge_constitution_free(constitution);
    constitution = nullptr;
  }
  CHECK(constitution == nullptr);
}

TEST_CASE("a missing constitution file is IMGJUDGE_IO naming the path", "[capi]") {
  imgjudge_constitution* constitution = nullptr;
  CHECK(imgjudge_constitution_load_file(&constitution, "/nonexistent/imgjudge/rules.toml") ==
        IMGJUDGE_IO);
  CHECK(constitution == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("/nonexistent/imgjudge/rules.toml"));
  CHECK(imgjudge_last_error_code() == IMGJUDGE_IO);
}

TEST_CASE("options structs are versioned", "[capi]") {
  LoadedConstitution constitution;
  imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);

  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  for (unsigned int version : {0u, IMGJUDGE_JUDGE_OPTIONS_VERSION + 1u, 0xFFFFFFFFu}) {
    options.version = version;
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK(judge == nullptr);
    CHECK_THAT(last_message(), Catch::Contains("options->version is " + std::to_string(version)) &&
                                   Catch::Contains("_INIT"));
  }

  imgjudge_judge_options initialised;
  CHECK(imgjudge_judge_options_init(&initialised, 0) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(imgjudge_judge_options_init(&initialised, 4) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::StartsWith("imgjudge_judge_options_init: version is 4"));
  REQUIRE(imgjudge_judge_options_init(&initialised, IMGJUDGE_JUDGE_OPTIONS_VERSION) == IMGJUDGE_OK);
  CHECK(initialised.version == IMGJUDGE_JUDGE_OPTIONS_VERSION);
  CHECK(initialised.relevance == 1);
  CHECK(initialised.cascade == 1);
  CHECK(initialised.backend == nullptr);
  CHECK(initialised.locator_model_dir == nullptr);
  CHECK(initialised.locator == 1);
  CHECK(initialised.reasoning_tokens == 0);
  CHECK(initialised.image_memory_mb == 0);

  // Layout 2 (before image_memory_mb): initialising writes only its fields.
  {
    unsigned char v2_buffer[sizeof(imgjudge_judge_options)];
    std::memset(v2_buffer, 0xAB, sizeof(v2_buffer));
    auto* v2 = reinterpret_cast<imgjudge_judge_options*>(v2_buffer);
    REQUIRE(imgjudge_judge_options_init(v2, 2) == IMGJUDGE_OK);
    CHECK(v2->locator == 1);
    for (std::size_t i = offsetof(imgjudge_judge_options, image_memory_mb); i < sizeof(v2_buffer); ++i) {
      CHECK(v2_buffer[i] == 0xAB);
    }
    v2->backend = "scripted";
    v2->script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
    imgjudge_judge* v2_judge = nullptr;
    CHECK(imgjudge_judge_create(&v2_judge, constitution.handle, v2) == IMGJUDGE_OK);
    imgjudge_judge_free(v2_judge);
  }

  // A program built against layout 1 has a smaller struct: initialising it
  // with version 1 writes only those fields (a guard after them stays intact),
  // and creating a judge from it reads only those.
  unsigned char buffer[sizeof(imgjudge_judge_options)];
  std::memset(buffer, 0xAB, sizeof(buffer));
  auto* v1 = reinterpret_cast<imgjudge_judge_options*>(buffer);
  REQUIRE(imgjudge_judge_options_init(v1, 1) == IMGJUDGE_OK);
  CHECK(v1->version == 1);
  CHECK(v1->cascade == 1);
  for (std::size_t i = offsetof(imgjudge_judge_options, locator_model_dir); i < sizeof(buffer); ++i) {
    CHECK(buffer[i] == 0xAB);
  }
  v1->backend = "scripted";
  v1->script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
  imgjudge_judge* old_judge = nullptr;
  CHECK(imgjudge_judge_create(&old_judge, constitution.handle, v1) == IMGJUDGE_OK);
  imgjudge_judge_free(old_judge);

  // Layout 2 fields are validated.
  imgjudge_judge_options bad = IMGJUDGE_JUDGE_OPTIONS_INIT;
  bad.backend = "scripted";
  bad.script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
  bad.reasoning_tokens = -3;
  CHECK(imgjudge_judge_create(&judge, constitution.handle, &bad) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::Contains("options->reasoning_tokens is -3"));
  // Layout 3 fields are validated.
  bad.reasoning_tokens = 0;
  bad.image_memory_mb = UINT64_MAX;
  CHECK(imgjudge_judge_create(&judge, constitution.handle, &bad) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK_THAT(last_message(), Catch::Contains("options->image_memory_mb is " + std::to_string(UINT64_MAX)));

  imgjudge_call_options call;
  CHECK(imgjudge_call_options_init(&call, 0) == IMGJUDGE_INVALID_ARGUMENT);
  REQUIRE(imgjudge_call_options_init(&call, IMGJUDGE_CALL_OPTIONS_VERSION) == IMGJUDGE_OK);
  CHECK(call.version == IMGJUDGE_CALL_OPTIONS_VERSION);
  CHECK(call.deadline_ms == 0);
  CHECK(call.cancel == nullptr);
}

TEST_CASE("bad judge options fail creation with a message", "[capi]") {
  LoadedConstitution constitution;
  imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;

  SECTION("unknown backend") {
    options.backend = "no-such-backend";
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("unknown backend") &&
                                   Catch::Contains("no-such-backend"));
  }
  SECTION("negative thread count") {
    options.threads = -2;
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("options->threads is -2"));
  }
  SECTION("a thread count no machine has (creating them would hang)") {
    options.threads = 100000;
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("options->threads is 100000") && Catch::Contains("1024"));
  }
  SECTION("the scripted backend checks device and dtype too") {
    options.backend = "scripted";
    options.script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
    options.dtype = "float33";
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("unknown dtype \"float33\""));
    options.dtype = "auto";
    options.device = "gpu0";
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("unknown device \"gpu0\""));
  }
  SECTION("torch backend without a model folder") {
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("model"));
  }
  SECTION("torch backend with a folder that is not a model") {
    options.model_dir = "/nonexistent/imgjudge/model";
    const imgjudge_status status = imgjudge_judge_create(&judge, constitution.handle, &options);
    CHECK((status == IMGJUDGE_INVALID_MODEL || status == IMGJUDGE_IO));
    CHECK_THAT(last_message(), Catch::Contains("/nonexistent/imgjudge/model"));
  }
  CHECK(judge == nullptr);

  // Calls with the handle a failed create left behind (NULL) fail cleanly.
  imgjudge_verdict* verdict = nullptr;
  const unsigned char png_magic[] = {0x89, 'P', 'N', 'G'};
  CHECK(imgjudge_judge_bytes(&verdict, judge, png_magic, sizeof png_magic, nullptr) ==
        IMGJUDGE_INVALID_ARGUMENT);
  CHECK(imgjudge_judge_file(&verdict, judge, "x.png", nullptr) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(verdict == nullptr);
  imgjudge_judge_free(judge);
}

TEST_CASE("cancel tokens", "[capi]") {
  imgjudge_cancel_token* token = nullptr;
  REQUIRE(imgjudge_cancel_token_create(&token) == IMGJUDGE_OK);
  int cancelled = -1;
  REQUIRE(imgjudge_cancel_token_is_cancelled(&cancelled, token) == IMGJUDGE_OK);
  CHECK(cancelled == 0);
  std::thread canceller([&] { CHECK(imgjudge_cancel_token_cancel(token) == IMGJUDGE_OK); });
  canceller.join();
  REQUIRE(imgjudge_cancel_token_is_cancelled(&cancelled, token) == IMGJUDGE_OK);
  CHECK(cancelled == 1);
  imgjudge_cancel_token_free(token);
}

// ---------------------------------------------------------------------------
// Judging end to end through the scripted backend (deterministic answers per
// statement and image; src/backends/scripted). With every prior at 0.2,
// strategy 1 accepts a score above 0.2 + 0.8 * 0.8 = 0.84 and rejects one
// below 0.2 - 0.3 * 0.2 = 0.14.

namespace {

const std::string kImages = std::string(IMGJUDGE_SOURCE_DIR) + "/examples/images/";

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// rocket.jpg shows a burning... rocket launch: scripted as a burning building,
/// so test.fire is violated; chelsea.png (a cat) is scripted as plainly safe.
/// Unknown images get `default_score`.
std::string script_text(double default_score) {
  return R"([defaults]
prior = 0.2
score = )" + std::to_string(default_score) +
         R"(

[[images]]
file = ")" + kImages + R"(rocket.jpg"
[images.scores]
"A building is visible in the image." = 0.95
"Flames are visible on the building." = 0.97
"A knife is visible in the image." = 0.01

[[images]]
file = ")" + kImages + R"(chelsea.png"
[images.scores]
"A building is visible in the image." = 0.02
"A knife is visible in the image." = 0.03
)";
}

/// A judge over kConstitution and a scripted backend; frees everything.
class ScriptedJudge {
 public:
  explicit ScriptedJudge(double default_score = 0.5,
                         imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT)
      : script_("script.toml", script_text(default_score)) {
    LoadedConstitution constitution;
    options.backend = "scripted";
    options.script_path = script_.path().c_str();
    const imgjudge_status status = imgjudge_judge_create(&judge_, constitution.handle, &options);
    INFO(last_message());
    REQUIRE(status == IMGJUDGE_OK);
    REQUIRE(judge_ != nullptr);
    // The constitution handle is freed here: the judge keeps its own copy.
  }
  ~ScriptedJudge() { imgjudge_judge_free(judge_); }
  ScriptedJudge(const ScriptedJudge&) = delete;
  ScriptedJudge& operator=(const ScriptedJudge&) = delete;
  const imgjudge_judge* get() const { return judge_; }

 private:
  TempFile script_;
  imgjudge_judge* judge_ = nullptr;
};

/// Owns a verdict.
struct VerdictHandle {
  imgjudge_verdict* handle = nullptr;
  ~VerdictHandle() { imgjudge_verdict_free(handle); }
};

std::vector<std::string> violated_rules(const imgjudge_verdict* verdict) {
  size_t count = 0;
  REQUIRE(imgjudge_verdict_violated_rule_count(&count, verdict) == IMGJUDGE_OK);
  std::vector<std::string> ids;
  for (size_t i = 0; i < count; ++i) {
    const char* id = nullptr;
    REQUIRE(imgjudge_verdict_violated_rule_id(&id, verdict, i) == IMGJUDGE_OK);
    ids.emplace_back(id);
  }
  return ids;
}

std::string verdict_json(const imgjudge_verdict* verdict) {
  const char* json = nullptr;
  size_t length = 0;
  REQUIRE(imgjudge_verdict_json(&json, &length, verdict) == IMGJUDGE_OK);
  REQUIRE(json != nullptr);
  CHECK(std::strlen(json) == length);
  return std::string(json, length);
}

std::string image_hash_in(const std::string& json) {
  std::smatch match;
  REQUIRE(std::regex_search(json, match, std::regex("\"image\":\\{\"hash\":\"([^\"]+)\"")));
  return match[1];
}

}  // namespace

TEST_CASE("scripted judging: an unsafe file and a safe encoded image", "[capi]") {
  ScriptedJudge judge;

  VerdictHandle rocket;
  INFO(last_message());
  REQUIRE(imgjudge_judge_file(&rocket.handle, judge.get(), (kImages + "rocket.jpg").c_str(),
                              nullptr) == IMGJUDGE_OK);
  imgjudge_decision decision = IMGJUDGE_DECISION_SAFE;
  REQUIRE(imgjudge_verdict_decision(&decision, rocket.handle) == IMGJUDGE_OK);
  CHECK(decision == IMGJUDGE_DECISION_UNSAFE);
  int unsafe = 0;
  REQUIRE(imgjudge_verdict_unsafe(&unsafe, rocket.handle) == IMGJUDGE_OK);
  CHECK(unsafe == 1);
  CHECK(violated_rules(rocket.handle) == std::vector<std::string>{"test.fire"});
  const char* id = reinterpret_cast<const char*>(0x1);
  CHECK(imgjudge_verdict_violated_rule_id(&id, rocket.handle, 1) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(id == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("index 1 is out of range"));

  const std::string json = verdict_json(rocket.handle);
  CHECK_THAT(json, Catch::Contains("\"schema\":\"imgjudge.verdict/2\"") &&
                       Catch::Contains("\"decision\":\"unsafe\"") &&
                       Catch::Contains("\"violated_rules\":[\"test.fire\"]") &&
                       Catch::Contains("\"name\":\"capi-test\""));
  // The JSON is built once and owned by the verdict: the same pointer each time.
  const char* first = nullptr;
  const char* second = nullptr;
  REQUIRE(imgjudge_verdict_json(&first, nullptr, rocket.handle) == IMGJUDGE_OK);
  REQUIRE(imgjudge_verdict_json(&second, nullptr, rocket.handle) == IMGJUDGE_OK);
  CHECK(first == second);

  const std::string cat = read_binary(kImages + "chelsea.png");
  VerdictHandle chelsea;
  REQUIRE(imgjudge_judge_bytes(&chelsea.handle, judge.get(), cat.data(), cat.size(), nullptr) ==
          IMGJUDGE_OK);
  REQUIRE(imgjudge_verdict_decision(&decision, chelsea.handle) == IMGJUDGE_OK);
  CHECK(decision == IMGJUDGE_DECISION_SAFE);
  REQUIRE(imgjudge_verdict_unsafe(&unsafe, chelsea.handle) == IMGJUDGE_OK);
  CHECK(unsafe == 0);
  CHECK(violated_rules(chelsea.handle).empty());
  CHECK_THAT(verdict_json(chelsea.handle), Catch::Contains("\"decision\":\"safe\""));
}

TEST_CASE("scripted judging: raw RGB pixels with a row stride", "[capi]") {
  // Unknown images score 0.99 against priors of 0.2: every rule is violated.
  ScriptedJudge judge(0.99);
  constexpr int kWidth = 5, kHeight = 3;
  std::vector<uint8_t> tight(kWidth * kHeight * 3);
  for (size_t i = 0; i < tight.size(); ++i) tight[i] = static_cast<uint8_t>(i * 7);
  // The same picture with 4 padding bytes (0xEE) after each row.
  const size_t stride = kWidth * 3 + 4;
  std::vector<uint8_t> padded(stride * kHeight, 0xEE);
  for (int y = 0; y < kHeight; ++y) {
    std::memcpy(&padded[y * stride], &tight[y * kWidth * 3], kWidth * 3);
  }

  VerdictHandle from_tight, from_padded;
  REQUIRE(imgjudge_judge_rgb(&from_tight.handle, judge.get(), tight.data(), kWidth, kHeight,
                             kWidth * 3, nullptr) == IMGJUDGE_OK);
  REQUIRE(imgjudge_judge_rgb(&from_padded.handle, judge.get(), padded.data(), kWidth, kHeight,
                             stride, nullptr) == IMGJUDGE_OK);
  CHECK(violated_rules(from_tight.handle) == std::vector<std::string>{"test.knife", "test.fire"});
  CHECK(violated_rules(from_padded.handle) == violated_rules(from_tight.handle));
  // The padding is not part of the image.
  const std::string tight_json = verdict_json(from_tight.handle);
  CHECK(image_hash_in(tight_json) == image_hash_in(verdict_json(from_padded.handle)));
  CHECK_THAT(tight_json, Catch::Contains("\"width\":5") && Catch::Contains("\"height\":3"));

  imgjudge_verdict* verdict = reinterpret_cast<imgjudge_verdict*>(0x1);
  SECTION("stride shorter than a row") {
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), tight.data(), kWidth, kHeight, kWidth * 3 - 1,
                             nullptr) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("stride"));
  }
  SECTION("zero or negative size") {
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), tight.data(), 0, kHeight, 0, nullptr) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), tight.data(), kWidth, -1, kWidth * 3,
                             nullptr) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("5x-1"));
  }
  SECTION("a stride whose last row lies past the end of memory (it would wrap around)") {
    const size_t huge = SIZE_MAX / 2;
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), tight.data(), kWidth, kHeight, huge, nullptr) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("overflows"));
  }
  SECTION("NULL pixels") {
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), nullptr, kWidth, kHeight, kWidth * 3,
                             nullptr) == IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("`pixels` is NULL"));
  }
  CHECK(verdict == nullptr);
}

TEST_CASE("scripted judging: bad images fail with their code and leave the judge usable",
          "[capi]") {
  ScriptedJudge judge;
  imgjudge_verdict* verdict = reinterpret_cast<imgjudge_verdict*>(0x1);

  SECTION("bytes that are no image") {
    const std::string junk = "this is not an image, just text";
    CHECK(imgjudge_judge_bytes(&verdict, judge.get(), junk.data(), junk.size(), nullptr) ==
          IMGJUDGE_INVALID_IMAGE);
    CHECK_FALSE(last_message().empty());
  }
  SECTION("a truncated PNG") {
    const std::string cat = read_binary(kImages + "chelsea.png");
    CHECK(imgjudge_judge_bytes(&verdict, judge.get(), cat.data(), cat.size() / 3, nullptr) ==
          IMGJUDGE_INVALID_IMAGE);
    CHECK_FALSE(last_message().empty());
  }
  SECTION("zero bytes") {
    const char byte = 0;
    CHECK(imgjudge_judge_bytes(&verdict, judge.get(), &byte, 0, nullptr) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("`size` is 0"));
  }
  SECTION("a missing file") {
    CHECK(imgjudge_judge_file(&verdict, judge.get(), "/nonexistent/imgjudge/cat.png", nullptr) ==
          IMGJUDGE_IO);
    CHECK_THAT(last_message(), Catch::Contains("/nonexistent/imgjudge/cat.png"));
  }
  CHECK(verdict == nullptr);

  // The judge still works.
  VerdictHandle after;
  REQUIRE(imgjudge_judge_file(&after.handle, judge.get(), (kImages + "rocket.jpg").c_str(),
                              nullptr) == IMGJUDGE_OK);
  CHECK(violated_rules(after.handle) == std::vector<std::string>{"test.fire"});
}

TEST_CASE("scripted judging: image limits from the judge options", "[capi]") {
  imgjudge_verdict* verdict = reinterpret_cast<imgjudge_verdict*>(0x1);
  const std::string cat = read_binary(kImages + "chelsea.png");
  REQUIRE(cat.size() > 1000);

  SECTION("encoded size") {
    imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
    options.max_image_bytes = 1000;
    ScriptedJudge judge(0.5, options);
    CHECK(imgjudge_judge_bytes(&verdict, judge.get(), cat.data(), cat.size(), nullptr) ==
          IMGJUDGE_LIMIT_EXCEEDED);
    CHECK(imgjudge_judge_file(&verdict, judge.get(), (kImages + "chelsea.png").c_str(), nullptr) ==
          IMGJUDGE_LIMIT_EXCEEDED);
  }
  SECTION("width, for encoded and raw images") {
    imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
    options.max_image_width = 4;
    ScriptedJudge judge(0.5, options);
    CHECK(imgjudge_judge_bytes(&verdict, judge.get(), cat.data(), cat.size(), nullptr) ==
          IMGJUDGE_LIMIT_EXCEEDED);
    const std::vector<uint8_t> pixels(5 * 2 * 3, 0);
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), pixels.data(), 5, 2, 15, nullptr) ==
          IMGJUDGE_LIMIT_EXCEEDED);
    CHECK_THAT(last_message(), Catch::Contains("5x2"));
  }
  SECTION("pixel count of raw images") {
    imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
    options.max_image_pixels = 9;
    ScriptedJudge judge(0.5, options);
    const std::vector<uint8_t> pixels(5 * 2 * 3, 0);
    CHECK(imgjudge_judge_rgb(&verdict, judge.get(), pixels.data(), 5, 2, 15, nullptr) ==
          IMGJUDGE_LIMIT_EXCEEDED);
    VerdictHandle small;
    const std::vector<uint8_t> square(3 * 15, 0);  // 3 rows, 15 bytes apart (ASan caught 30 here)
    CHECK(imgjudge_judge_rgb(&small.handle, judge.get(), square.data(), 3, 3, 15, nullptr) ==
          IMGJUDGE_OK);
  }
  SECTION("a dimension beyond INT_MAX") {
    imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
    options.max_image_height = 0x80000000u;
    options.backend = "scripted";
    LoadedConstitution constitution;
    imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("max_image_height"));
    CHECK(judge == nullptr);
    verdict = nullptr;
  }
  CHECK(verdict == nullptr);
}

TEST_CASE("scripted judging: call options", "[capi]") {
  ScriptedJudge judge;
  const std::string path = kImages + "rocket.jpg";
  imgjudge_verdict* verdict = reinterpret_cast<imgjudge_verdict*>(0x1);
  imgjudge_call_options call = IMGJUDGE_CALL_OPTIONS_INIT;

  SECTION("a cancelled token cancels the call") {
    imgjudge_cancel_token* token = nullptr;
    REQUIRE(imgjudge_cancel_token_create(&token) == IMGJUDGE_OK);
    REQUIRE(imgjudge_cancel_token_cancel(token) == IMGJUDGE_OK);
    call.cancel = token;
    CHECK(imgjudge_judge_file(&verdict, judge.get(), path.c_str(), &call) == IMGJUDGE_CANCELLED);
    CHECK_FALSE(last_message().empty());
    imgjudge_cancel_token_free(token);
  }
  SECTION("wrong call options version") {
    call.version = 0;
    CHECK(imgjudge_judge_file(&verdict, judge.get(), path.c_str(), &call) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("call->version is 0"));
  }
  SECTION("negative deadline") {
    call.deadline_ms = -5;
    CHECK(imgjudge_judge_file(&verdict, judge.get(), path.c_str(), &call) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK_THAT(last_message(), Catch::Contains("deadline_ms is -5"));
  }
  CHECK(verdict == nullptr);

  // A generous deadline and an uncancelled token change nothing.
  imgjudge_cancel_token* token = nullptr;
  REQUIRE(imgjudge_cancel_token_create(&token) == IMGJUDGE_OK);
  call = imgjudge_call_options IMGJUDGE_CALL_OPTIONS_INIT;
  call.deadline_ms = 600000;
  call.cancel = token;
  VerdictHandle ok;
  REQUIRE(imgjudge_judge_file(&ok.handle, judge.get(), path.c_str(), &call) == IMGJUDGE_OK);
  CHECK(violated_rules(ok.handle) == std::vector<std::string>{"test.fire"});
  imgjudge_cancel_token_free(token);
}

TEST_CASE("scripted judging: a bad script or backend setup fails creation", "[capi]") {
  LoadedConstitution constitution;
  imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.backend = "scripted";

  SECTION("missing script") {
    options.script_path = "/nonexistent/imgjudge/script.toml";
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) == IMGJUDGE_IO);
    CHECK_THAT(last_message(), Catch::Contains("/nonexistent/imgjudge/script.toml"));
  }
  SECTION("malformed script, with line and column") {
    TempFile script("bad_script.toml", "[defaults]\nscore = 2.5\n");
    options.script_path = script.path().c_str();
    CHECK(imgjudge_judge_create(&judge, constitution.handle, &options) ==
          IMGJUDGE_INVALID_ARGUMENT);
    CHECK(std::regex_search(last_message(), std::regex(":2:\\d+: .*score")));
  }
  CHECK(judge == nullptr);
}

TEST_CASE("scripted judging: one judge, many threads", "[capi]") {
  ScriptedJudge judge;
  const std::string path = kImages + "rocket.jpg";
  const std::string cat = read_binary(kImages + "chelsea.png");
  constexpr int kThreads = 4, kRounds = 5;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        imgjudge_verdict* rocket = nullptr;
        imgjudge_verdict* chelsea = nullptr;
        int rocket_unsafe = 0, chelsea_unsafe = 1;
        if (imgjudge_judge_file(&rocket, judge.get(), path.c_str(), nullptr) != IMGJUDGE_OK ||
            imgjudge_judge_bytes(&chelsea, judge.get(), cat.data(), cat.size(), nullptr) !=
                IMGJUDGE_OK ||
            imgjudge_verdict_unsafe(&rocket_unsafe, rocket) != IMGJUDGE_OK ||
            imgjudge_verdict_unsafe(&chelsea_unsafe, chelsea) != IMGJUDGE_OK ||
            rocket_unsafe != 1 || chelsea_unsafe != 0) {
          ++failures;
        }
        imgjudge_verdict_free(rocket);
        imgjudge_verdict_free(chelsea);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures == 0);

  // One verdict's JSON requested from several threads at once is built once.
  VerdictHandle verdict;
  REQUIRE(imgjudge_judge_file(&verdict.handle, judge.get(), path.c_str(), nullptr) == IMGJUDGE_OK);
  std::vector<const char*> pointers(kThreads, nullptr);
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { imgjudge_verdict_json(&pointers[t], nullptr, verdict.handle); });
  }
  for (auto& thread : threads) thread.join();
  for (const char* pointer : pointers) CHECK(pointer == pointers[0]);
  CHECK(pointers[0] != nullptr);
}

TEST_CASE("an uncertain rule under uncertain = \"review\" gives IMGJUDGE_DECISION_REVIEW", "[capi]") {
  imgjudge_constitution* constitution = nullptr;
  REQUIRE(imgjudge_constitution_load_file(&constitution, IMGJUDGE_SOURCE_DIR "/tests/data/eval/constitution.toml") ==
          IMGJUDGE_OK);
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.backend = "scripted";
  options.script_path = IMGJUDGE_SOURCE_DIR "/tests/data/eval/script.toml";
  options.cascade = 0;  // the rocket's gun stays uncertain
  imgjudge_judge* judge = nullptr;
  REQUIRE(imgjudge_judge_create(&judge, constitution, &options) == IMGJUDGE_OK);
  imgjudge_verdict* verdict = nullptr;
  REQUIRE(imgjudge_judge_file(&verdict, judge, IMGJUDGE_SOURCE_DIR "/examples/images/rocket.jpg", nullptr) ==
          IMGJUDGE_OK);
  imgjudge_decision decision = IMGJUDGE_DECISION_SAFE;
  CHECK(imgjudge_verdict_decision(&decision, verdict) == IMGJUDGE_OK);
  CHECK(decision == IMGJUDGE_DECISION_REVIEW);
  int unsafe = -1;
  CHECK(imgjudge_verdict_unsafe(&unsafe, verdict) == IMGJUDGE_OK);
  CHECK(unsafe == 0);
  size_t count = 0;
  CHECK(imgjudge_verdict_review_rule_count(&count, verdict) == IMGJUDGE_OK);
  REQUIRE(count == 1);
  const char* id = nullptr;
  CHECK(imgjudge_verdict_review_rule_id(&id, verdict, 0) == IMGJUDGE_OK);
  CHECK(std::string(id) == "weapon");
  CHECK(imgjudge_verdict_review_rule_id(&id, verdict, 1) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(id == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("1 rules that need review"));
  imgjudge_verdict_free(verdict);
  imgjudge_judge_free(judge);
  imgjudge_constitution_free(constitution);
}

TEST_CASE("models loaded once serve several judges, freed in any order", "[capi]") {
  imgjudge_models_options models_options = IMGJUDGE_MODELS_OPTIONS_INIT;
  models_options.backend = "scripted";
  models_options.script_path = IMGJUDGE_SOURCE_DIR "/tests/data/eval/script.toml";
  imgjudge_models* models = nullptr;
  REQUIRE(imgjudge_models_load(&models, &models_options) == IMGJUDGE_OK);

  imgjudge_constitution* strict = nullptr;
  imgjudge_constitution* lenient = nullptr;
  REQUIRE(imgjudge_constitution_load_file(&strict, IMGJUDGE_SOURCE_DIR "/tests/data/eval/constitution.toml") ==
          IMGJUDGE_OK);
  std::string lenient_text = "schema_version = 1\nname = \"lenient\"\nversion = \"1\"\n[defaults]\nuncertain = \"safe\"\n";
  {
    std::ifstream in(IMGJUDGE_SOURCE_DIR "/tests/data/eval/constitution.toml");
    std::string line;
    bool in_rules = false;
    while (std::getline(in, line)) {
      in_rules = in_rules || line.rfind("[[rules]]", 0) == 0;
      if (in_rules) lenient_text += line + "\n";
    }
  }
  REQUIRE(imgjudge_constitution_load_string(&lenient, lenient_text.data(), lenient_text.size(), "lenient.toml") ==
          IMGJUDGE_OK);

  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.cascade = 0;  // the rocket's gun stays uncertain: review under one policy, safe under the other
  imgjudge_judge* review_judge = nullptr;
  imgjudge_judge* safe_judge = nullptr;
  REQUIRE(imgjudge_judge_create_with_models(&review_judge, strict, models, &options) == IMGJUDGE_OK);
  REQUIRE(imgjudge_judge_create_with_models(&safe_judge, lenient, models, &options) == IMGJUDGE_OK);
  imgjudge_models_free(models);  // the judges keep the models alive
  imgjudge_constitution_free(strict);
  imgjudge_constitution_free(lenient);

  for (auto [judge, expected] : {std::pair{review_judge, IMGJUDGE_DECISION_REVIEW}, std::pair{safe_judge, IMGJUDGE_DECISION_SAFE}}) {
    imgjudge_verdict* verdict = nullptr;
    REQUIRE(imgjudge_judge_file(&verdict, judge, IMGJUDGE_SOURCE_DIR "/examples/images/rocket.jpg", nullptr) ==
            IMGJUDGE_OK);
    imgjudge_decision decision = IMGJUDGE_DECISION_UNSAFE;
    CHECK(imgjudge_verdict_decision(&decision, verdict) == IMGJUDGE_OK);
    CHECK(decision == expected);
    imgjudge_verdict_free(verdict);
  }
  imgjudge_judge_free(review_judge);
  imgjudge_judge_free(safe_judge);
}

TEST_CASE("a judge over loaded models refuses model options it would ignore", "[capi]") {
  imgjudge_models_options models_options = IMGJUDGE_MODELS_OPTIONS_INIT;
  models_options.backend = "scripted";
  models_options.script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
  imgjudge_models* models = nullptr;
  REQUIRE(imgjudge_models_load(&models, &models_options) == IMGJUDGE_OK);
  LoadedConstitution constitution;
  imgjudge_judge* judge = reinterpret_cast<imgjudge_judge*>(0x1);
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.model_dir = "/models/other";
  CHECK(imgjudge_judge_create_with_models(&judge, constitution.handle, models, &options) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(judge == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("options->model_dir is set") && Catch::Contains("imgjudge_models_load"));
  CHECK(imgjudge_judge_create_with_models(&judge, constitution.handle, nullptr, nullptr) == IMGJUDGE_INVALID_ARGUMENT);
  // Bad models options fail the load with a message.
  models_options.threads = 5000;
  imgjudge_models* bad = reinterpret_cast<imgjudge_models*>(0x1);
  CHECK(imgjudge_models_load(&bad, &models_options) == IMGJUDGE_INVALID_ARGUMENT);
  CHECK(bad == nullptr);
  CHECK_THAT(last_message(), Catch::Contains("options->threads is 5000"));
  imgjudge_models_free(models);
}
