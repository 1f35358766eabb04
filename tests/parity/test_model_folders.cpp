// Broken model folders fail at load with InvalidModel naming the file and
// what is wrong, through the C++ API and the CLI; a judge never answers "safe"
// because its model is broken, and a model file changing under a running judge
// does not crash it. Each folder is a random 2-layer Qwen2-VL with the real
// Qwen2 tokenizer, then one thing is broken.
#include "torch_catch.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "devtools/random_models.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/judge.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// ctest runs each test case as its own process, several at once: every process
// writes and breaks models in a folder of its own (a shared one was rewritten
// under a test reading it), removed when the process ends.
const fs::path& process_root() {
  struct Root {
    fs::path path = fs::temp_directory_path() / ("imgjudge_test_model_folders." + std::to_string(::getpid()));
    Root() { fs::create_directories(path); }
    ~Root() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  };
  static const Root root;
  return root.path;
}

std::string make_tiny_qwen2_vl() {
  const fs::path& root = process_root();
  const std::string config_path = (root / "source_config.json").string();
  std::ofstream(config_path) << R"({
    "model_type": "qwen2_vl", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "tie_word_embeddings": true, "vocab_size": 1000, "image_token_id": 151655, "video_token_id": 151656,
    "vision_start_token_id": 151652, "vision_end_token_id": 151653,
    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    "vision_config": {"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 4, "mlp_ratio": 2,
      "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3}
  })";
  imgjudge::devtools::RandomModelRequest request;
  request.config_path = config_path;
  request.tokenizer_dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/qwen2";
  request.out_dir = (root / "model").string();
  request.seed = 11;
  imgjudge::devtools::make_random_model(request);
  return request.out_dir;
}

const std::string& tiny_model() {
  static const std::string dir = make_tiny_qwen2_vl();
  return dir;
}

// A fresh copy of the tiny model to break.
std::string copy_model(const std::string& name) {
  const fs::path out = process_root() / ("broken_" + name);
  fs::remove_all(out);
  fs::copy(tiny_model(), out, fs::copy_options::recursive);
  return out.string();
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }
void write_json(const std::string& path, const nlohmann::json& json) { std::ofstream(path) << json.dump(2); }

// model.safetensors as (header, data); written back with the header re-serialized.
struct Safetensors {
  nlohmann::json header;
  std::string data;
  explicit Safetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::uint64_t length = 0;
    in.read(reinterpret_cast<char*>(&length), 8);
    std::string text(length, '\0');
    in.read(text.data(), static_cast<std::streamsize>(length));
    header = nlohmann::json::parse(text);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Every float32 value of the tensors `selected` names becomes NaN.
  void fill_nan(const std::function<bool(const std::string&)>& selected) {
    const float nan = std::nanf("");
    for (auto& [name, entry] : header.items()) {
      if (name == "__metadata__" || !selected(name)) continue;
      REQUIRE(entry["dtype"] == "F32");
      const auto begin = entry["data_offsets"][0].get<std::size_t>(), end = entry["data_offsets"][1].get<std::size_t>();
      for (std::size_t at = begin; at < end; at += 4) std::memcpy(&data[at], &nan, 4);
    }
  }
  void write(const std::string& path) const {
    const std::string text = header.dump();
    const std::uint64_t length = text.size();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
};

imgjudge::ModelConfig config_for(const std::string& dir) {
  imgjudge::ModelConfig config;
  config.model_dir = dir;
  config.dtype = "float32";
  config.threads = 1;
  return config;
}

// The error load_models raises for `dir` (fails the test if it loads).
imgjudge::Error load_error(const std::string& dir) {
  try {
    imgjudge::load_models(config_for(dir));
  } catch (const imgjudge::Error& e) {
    return e;
  }
  FAIL("the broken folder " << dir << " loaded");
  return imgjudge::Error(imgjudge::ErrorCode::Internal, "unreachable");
}

struct CliResult {
  int exit_code;
  std::string output;
};

CliResult run_cli(const std::string& arguments) {
  const std::string command = std::string(IMGJUDGE_CLI) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

std::string judge_command(const std::string& dir) {
  return fmt::format("judge --dtype float32 --threads 1 --no-cascade --model '{}' '{}/examples/images/coffee.png'", dir,
                     IMGJUDGE_SOURCE_DIR);
}

// Random weights leave most items uncertain; reasoning over them would only
// generate noise, so these tests judge without the cascade.
imgjudge::JudgeOptions no_cascade() {
  imgjudge::JudgeOptions options;
  options.cascade = false;
  return options;
}

}  // namespace

TEST_CASE("the tiny model itself loads and judges (the baseline of the broken copies)", "[parity][reliability]") {
  const imgjudge::Models models = imgjudge::load_models(config_for(tiny_model()));
  imgjudge::Judge judge(imgjudge::Constitution::builtin_default(), models, no_cascade());
  const imgjudge::Verdict verdict = judge.judge_file(std::string(IMGJUDGE_SOURCE_DIR) + "/examples/images/coffee.png");
  CHECK(verdict.questions_scored > 0);
}

TEST_CASE("NaN weights are rejected at load by the self-check, never judged safe", "[parity][reliability]") {
  const std::string dir = copy_model("nan_weights");
  Safetensors file(dir + "/model.safetensors");
  // Every float32 parameter of the language model NaN.
  file.fill_nan([](const std::string& name) { return name.rfind("visual.", 0) != 0; });
  file.write(dir + "/model.safetensors");
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains("self-check failed") && Contains("non-finite"));

  const CliResult cli = run_cli(judge_command(dir));
  CHECK(cli.exit_code == 2);
  CHECK_THAT(cli.output, Contains("error [invalid_model]") && Contains("self-check failed"));
}

TEST_CASE("NaN vision weights are rejected at load by the self-check, never judged safe", "[parity][reliability]") {
  const std::string dir = copy_model("nan_vision");
  Safetensors file(dir + "/model.safetensors");
  // Only the vision tower: the self-check runs it over a warm-up image.
  file.fill_nan([](const std::string& name) { return name.rfind("visual.", 0) == 0; });
  file.write(dir + "/model.safetensors");
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains("self-check failed") && Contains("non-finite"));
  // The CLI exits 2 (setup error) before judging anything, never 0 ("safe").
  const CliResult cli = run_cli(judge_command(dir) + " --no-relevance");
  CHECK(cli.exit_code == 2);
  CHECK_THAT(cli.output, Contains("error [invalid_model]") && Contains("self-check failed"));
}

TEST_CASE("an image token outside the vocabulary is InvalidModel at load, naming config.json", "[parity][reliability]") {
  const std::string dir = copy_model("image_token");
  nlohmann::json config = read_json(dir + "/config.json");
  config["image_token_id"] = 10000000;
  write_json(dir + "/config.json", config);
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains("config.json") && Contains("10000000"));
}

TEST_CASE("a tokenizer without the vision tokens is InvalidModel at load", "[parity][reliability]") {
  const std::string dir = copy_model("no_vision_tokens");
  // This folder's special tokens are tokenizer_config.json's added_tokens_decoder (id -> token).
  nlohmann::json tokenizer = read_json(dir + "/tokenizer_config.json");
  nlohmann::json kept = nlohmann::json::object();
  for (const auto& [id, token] : tokenizer["added_tokens_decoder"].items()) {
    const std::string content = token["content"];
    if (content.find("vision") == std::string::npos && content.find("image") == std::string::npos) kept[id] = token;
  }
  REQUIRE(kept.size() < tokenizer["added_tokens_decoder"].size());
  tokenizer["added_tokens_decoder"] = kept;
  write_json(dir + "/tokenizer_config.json", tokenizer);
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains(dir) && Contains("image"));
}

TEST_CASE("a parameter stored as an integer type is InvalidModel naming it", "[parity][reliability]") {
  const std::string dir = copy_model("int_weights");
  Safetensors file(dir + "/model.safetensors");
  file.header["model.embed_tokens.weight"]["dtype"] = "I32";  // same size as F32: only the type is wrong
  file.write(dir + "/model.safetensors");
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains("model.embed_tokens.weight") && Contains("I32"));
  const CliResult cli = run_cli(judge_command(dir));
  CHECK(cli.exit_code == 2);
  CHECK_THAT(cli.output, Contains("[invalid_model]") && Contains("model.embed_tokens.weight"));
}

TEST_CASE("rope_theta 0 is InvalidModel at load", "[parity][reliability]") {
  const std::string dir = copy_model("rope_theta");
  nlohmann::json config = read_json(dir + "/config.json");
  config["rope_theta"] = 0;
  write_json(dir + "/config.json", config);
  const imgjudge::Error error = load_error(dir);
  CHECK(error.code() == imgjudge::ErrorCode::InvalidModel);
  CHECK_THAT(error.what(), Contains("rope_theta"));
}

TEST_CASE("a model file truncated under a running judge does not crash it", "[parity][reliability]") {
  const std::string dir = copy_model("truncated_later");
  const imgjudge::Models models = imgjudge::load_models(config_for(dir));
  imgjudge::Judge judge(imgjudge::Constitution::builtin_default(), models, no_cascade());
  const std::string image = std::string(IMGJUDGE_SOURCE_DIR) + "/examples/images/coffee.png";
  const imgjudge::Verdict before = judge.judge_file(image);
  // What a host updating its model files does to a mapped file: SIGBUS on the next read of a lost page.
  fs::resize_file(dir + "/model.safetensors", 0);
  const imgjudge::Verdict after = judge.judge_file(image);
  CHECK(after.decision == before.decision);
  CHECK(after.questions_scored == before.questions_scored);
  REQUIRE(after.rules.size() == before.rules.size());
  for (std::size_t r = 0; r < after.rules.size(); ++r) CHECK(after.rules[r].violated == before.rules[r].violated);
}

TEST_CASE("an image over the memory budget fails alone with LimitExceeded, before anything is allocated",
          "[parity][reliability]") {
  imgjudge::ModelConfig config = config_for(tiny_model());
  config.image_memory_mb = 2;
  const imgjudge::Models models = imgjudge::load_models(config);
  imgjudge::Judge judge(imgjudge::Constitution::builtin_default(), models, no_cascade());
  imgjudge::Image small;
  small.width = small.height = 16;
  small.rgb.assign(16 * 16 * 3, 128);
  const imgjudge::Image large = imgjudge::load_image_file(std::string(IMGJUDGE_SOURCE_DIR) + "/examples/images/coffee.png");
  const auto results = judge.judge_batch({small, large, small});
  REQUIRE(results.size() == 3);
  CHECK(results[0].verdict.has_value());
  CHECK(results[2].verdict.has_value());
  REQUIRE(results[1].error_code.has_value());
  CHECK(*results[1].error_code == imgjudge::ErrorCode::LimitExceeded);
  CHECK_THAT(results[1].error_message,
             Contains(fmt::format("a {}x{} image would take about", large.width, large.height)) &&
                 Contains("the image memory budget is 2 MiB"));

  // The CLI: the image over the budget gets its error line, the others their verdicts.
  const std::string small_path = (process_root() / "small.png").string();
  const std::vector<std::uint8_t> png = imgjudge::encode_png(small);
  std::ofstream(small_path, std::ios::binary).write(reinterpret_cast<const char*>(png.data()),
                                                     static_cast<std::streamsize>(png.size()));
  const CliResult cli = run_cli(fmt::format("judge --quiet --dtype float32 --threads 1 --no-cascade --image-memory-mb 2 --model '{}' "
                                            "'{}' '{}/examples/images/coffee.png' '{}'",
                                            tiny_model(), small_path, IMGJUDGE_SOURCE_DIR, small_path));
  // 3: an image could not be judged; 1 if random weights call the small one unsafe.
  CHECK((cli.exit_code == 3 || cli.exit_code == 1));
  CHECK_THAT(cli.output, Contains("coffee.png: ERROR [limit_exceeded]"));
  CHECK_THAT(cli.output, Contains("small.png: safe") || Contains("small.png: UNSAFE") ||
                             Contains("small.png: REVIEW"));
}
