// Tokenizer loading: the tokenizer.json path (a Qwen2 tokenizer.json written
// from the slow files must give the golden ids), malformed and missing files,
// added-token flags, and inputs that must not blow up.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using imgjudge::Error;
using imgjudge::ErrorCode;
using imgjudge::tokenizer::Tokenizer;
using imgjudge::tokenizer::TokenizerFormat;
using nlohmann::json;

const std::string kTokenizerData = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/";

// A fresh, empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() / ("imgjudge_tok_" + std::to_string(random()) + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(file(name), std::ios::binary);
    out << text;
  }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Expects `fn` to throw Error(code) whose message contains every fragment.
template <typename Fn>
void require_error(Fn&& fn, ErrorCode code, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL("no exception");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const std::string& fragment : fragments) CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  }
}

// A tokenizer.json as Qwen2's HF fast files are laid out, built from the
// slow files in tests/data (vocab.json, merges.txt, added_tokens_decoder).
void write_qwen2_tokenizer_json(const TempDir& dir) {
  const std::string source = kTokenizerData + "qwen2/";
  const json vocab = json::parse(read_text(source + "vocab.json"));
  const json config = json::parse(read_text(source + "tokenizer_config.json"));
  json merges = json::array();
  std::ifstream merges_in(source + "merges.txt");
  std::string line;
  std::getline(merges_in, line);  // #version
  while (std::getline(merges_in, line)) {
    if (line.empty()) continue;
    const auto space = line.find(' ');
    merges.push_back(json::array({line.substr(0, space), line.substr(space + 1)}));
  }
  json added = json::array();
  for (const auto& [id, token] : config.at("added_tokens_decoder").items()) {
    json entry = token;
    entry["id"] = std::stoi(id);
    added.push_back(entry);
  }
  const std::string qwen_regex =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  json root = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", qwen_regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}}};
  dir.write("tokenizer.json", root.dump());
  json fast_config = config;
  fast_config["tokenizer_class"] = "Qwen2TokenizerFast";
  dir.write("tokenizer_config.json", fast_config.dump(2));
}

// A tiny byte-level tokenizer.json: the 256 byte characters, merges for
// "ab", and added tokens with the given flags.
void write_tiny_tokenizer_json(const TempDir& dir, const json& added_tokens) {
  json vocab = json::object();
  const auto& bytes = imgjudge::tokenizer::byte_to_unicode();
  for (std::size_t b = 0; b < 256; ++b) vocab[bytes[b]] = static_cast<int>(b);
  vocab["ab"] = 256;
  json root = {{"added_tokens", added_tokens},
               {"normalizer", nullptr},
               {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
               {"post_processor", nullptr},
               {"decoder", {{"type", "ByteLevel"}}},
               {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})}}}};
  dir.write("tokenizer.json", root.dump());
}

}  // namespace

TEST_CASE("a Qwen2 tokenizer.json gives the golden ids of the slow files", "[unit][tokenizer]") {
  TempDir dir;
  write_qwen2_tokenizer_json(dir);
  const Tokenizer fast = Tokenizer::load(dir.path.string());
  CHECK(fast.flavour() == "tokenizer.json");
  CHECK(fast.eos_id() == 151645);
  CHECK(fast.pad_id() == 151643);
  std::ifstream in(kTokenizerData + "qwen2/cases.jsonl");
  std::size_t cases = 0, matched = 0;
  for (std::string line; std::getline(in, line);) {
    const json c = json::parse(line);
    const auto ids = c.at("ids").get<std::vector<std::int32_t>>();
    const bool ok = fast.encode(c.at("text").get<std::string>(), false) == ids &&
                    fast.encode(c.at("text").get<std::string>(), true) == c.at("input_ids").get<std::vector<std::int32_t>>() &&
                    fast.tokens(ids) == c.at("tokens").get<std::vector<std::string>>() &&
                    fast.decode(ids) == c.at("decoded").get<std::string>() &&
                    fast.decode(ids, true) == c.at("decoded_skip_special").get<std::string>();
    if (!ok) UNSCOPED_INFO("mismatch: " << c.at("id").get<std::string>());
    ++cases;
    matched += ok;
  }
  WARN("qwen2 via tokenizer.json: " << matched << "/" << cases << " cases match on every field");
  CHECK(cases == 170);
  CHECK(matched == cases);
}

TEST_CASE("missing tokenizer files are named", "[unit][tokenizer]") {
  TempDir dir;
  // An empty folder: every layout a tokenizer could have is named.
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel,
                {"no tokenizer", "tokenizer.json", "vocab.json + merges.txt", "tokenizer.model", "spiece.model"});
  dir.write("vocab.json", R"({"a": 0})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"merges.txt", "not found"});
  require_error([&] { Tokenizer::load(dir.path.string(), TokenizerFormat::Fast); }, ErrorCode::InvalidModel,
                {"tokenizer.json", "not found"});
}

TEST_CASE("malformed JSON and merges name the file and line", "[unit][tokenizer]") {
  TempDir dir;
  dir.write("vocab.json", "{\n  \"a\": 0,\n  \"b\": 1,\n  \"ab\" 2\n}\n");
  dir.write("merges.txt", "#version: 0.2\na b\n");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"vocab.json", "line 4"});

  dir.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  dir.write("merges.txt", "#version: 0.2\na b\nab\n");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"merges.txt", "line 3"});
  dir.write("merges.txt", "#version: 0.2\na b\na b c\n");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"merges.txt", "line 3"});

  dir.write("merges.txt", "#version: 0.2\na b\n");
  dir.write("vocab.json", R"({"a": 0, "b": "one"})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"vocab.json", "'b'"});
  dir.write("vocab.json", R"({"a": 0, "b": 0})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"vocab.json", "id 0"});

  dir.write("vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  dir.write("tokenizer_config.json", "{\"tokenizer_class\": \"GPT2Tokenizer\",\n \"eos_token\": [1, 2]}");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel,
                {"tokenizer_config.json", "eos_token"});
}

TEST_CASE("tokenizer.json errors: structure, unsupported parts, bad regex", "[unit][tokenizer]") {
  TempDir dir;
  dir.write("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::Unsupported, {"tokenizer.json", "Unigram"});
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"tokenizer.json", "merges[0]"});
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"tokenizer.json", "regex"});
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}}})");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel, {"tokenizer.json"});
}

TEST_CASE("added tokens: longest match, lstrip/rstrip, special skipping", "[unit][tokenizer]") {
  TempDir dir;
  const json added = json::array({
      {{"id", 300}, {"content", "<x>"}, {"special", true}, {"lstrip", false}, {"rstrip", false}},
      {{"id", 301}, {"content", "<x>y"}, {"special", false}, {"lstrip", false}, {"rstrip", false}},
      {{"id", 302}, {"content", "<m>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}},
  });
  write_tiny_tokenizer_json(dir, added);
  const Tokenizer tokenizer = Tokenizer::load(dir.path.string());
  const auto id = [&](const std::string& token) { return *tokenizer.token_to_id(token); };
  // "<x>y" is longer than "<x>" at the same position.
  CHECK(tokenizer.encode("<x>y<x>", false) == std::vector<std::int32_t>{301, 300});
  // lstrip/rstrip swallow the spaces around <m>.
  CHECK(tokenizer.encode("ab  <m>  ab", false) == std::vector<std::int32_t>{256, 302, 256});
  CHECK(tokenizer.encode("ab ab", false) == std::vector<std::int32_t>{256, id("Ġ"), 256});
  CHECK(tokenizer.decode({256, 300, 301, 302}, false) == "ab<x><x>y<m>");
  CHECK(tokenizer.decode({256, 300, 301, 302}, true) == "ab<x>y");
  require_error([&] { tokenizer.tokens({999}); }, ErrorCode::InvalidArgument, {"999"});
}

TEST_CASE("tokenizers reject invalid UTF-8 and survive long inputs", "[unit][tokenizer]") {
  const Tokenizer gpt2 = Tokenizer::load(kTokenizerData + "gpt2");
  require_error([&] { gpt2.encode(std::string("ab\xC3(", 4)); }, ErrorCode::InvalidArgument, {"UTF-8", "byte offset 2"});
  // Invalid bytes from ids decode to U+FFFD like Python's errors="replace".
  CHECK(gpt2.decode({*gpt2.token_to_id("Ã")}) == "\xEF\xBF\xBD");

  // 200k letters without a space are one pre-token: BPE must stay fast.
  const std::string letters(200000, 'a');
  const auto ids = gpt2.encode(letters, false);
  CHECK(gpt2.decode(ids) == letters);
  CHECK(ids.size() < letters.size() / 2);

  std::mt19937 random(7);
  std::string mixed;
  const char* pieces[] = {"x", "q", "z", "7", "\xE6\xBC\xA2", "\xF0\x9F\x98\x80", "!", "\n", " "};
  for (int i = 0; i < 100000; ++i) mixed += pieces[random() % 9];
  const Tokenizer qwen2 = Tokenizer::load(kTokenizerData + "qwen2");
  CHECK(qwen2.decode(qwen2.encode(mixed, false)) == mixed);
  const Tokenizer clip = Tokenizer::load(kTokenizerData + "clip");
  CHECK_FALSE(clip.encode(letters, true).empty());
  CHECK(clip.encode(letters, true, 77).size() == 77);
}

TEST_CASE("tokenizer files nested a million levels deep are InvalidModel, not a stack overflow", "[unit][tokenizer]") {
  TempDir dir;
  const std::string deep = std::string(1u << 20, '[') + std::string(1u << 20, ']');
  dir.write("tokenizer.json", "{\"model\": " + deep + "}");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel,
                {"tokenizer.json", "nested deeper than"});
  dir.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  dir.write("tokenizer_config.json", "{\"eos_token\": " + deep + "}");
  require_error([&] { Tokenizer::load(dir.path.string()); }, ErrorCode::InvalidModel,
                {"tokenizer_config.json", "nested deeper than"});
}
