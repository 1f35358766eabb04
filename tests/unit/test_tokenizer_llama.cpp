// Llama-family tokenizer.json files (Llama-2, Vicuna, Mistral, Yi, llava-hf):
// byte fallback, unk / fuse_unk, the legacy normalizer, the Metaspace
// pre-tokenizer and decoder, the ByteFallback/Fuse/Strip decoders, the
// LlamaTokenizerFast post-processor and the tokenizer.model-only folder.
//
// There is no Llama tokenizer on disk and no Rust `tokenizers` package to
// make goldens with, so every vocabulary here is constructed
// (tests/data/tokenizers/llama2_tiny and variants of it written by the test)
// and the expected ids are derived by hand from the tokenizers v0.21.1
// source (see tests/data/tokenizers/llama2_tiny/README.txt for the vocab).
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
using Ids = std::vector<std::int32_t>;

const std::string kLlamaTiny = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/llama2_tiny/";

// Ids of the llama2_tiny vocab.
constexpr std::int32_t kUnk = 0, kBos = 1, kEos = 2, kSpace = 259, kH = 260, kI = 261, kSpaceHi = 263;
constexpr std::int32_t byte_id(unsigned char byte) { return 3 + byte; }

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() / ("imgjudge_llama_tok_" + std::to_string(random()) + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(path / name, std::ios::binary);
    out << text;
  }
  std::string str() const { return path.string(); }
};

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return json::parse(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

json tiny_tokenizer_json() { return read_json(kLlamaTiny + "tokenizer.json"); }
json tiny_config() { return read_json(kLlamaTiny + "tokenizer_config.json"); }

// Writes a variant of llama2_tiny and loads it.
Tokenizer load_variant(const TempDir& dir, const json& tokenizer_json, const json& config = tiny_config()) {
  dir.write("tokenizer.json", tokenizer_json.dump());
  if (!config.is_null()) dir.write("tokenizer_config.json", config.dump());
  return Tokenizer::load(dir.str());
}

// The non-legacy conversion: no normalizer, Metaspace pre-tokenizer.
json metaspace_variant(const std::string& prepend_scheme, bool split) {
  json root = tiny_tokenizer_json();
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", prepend_scheme},
                           {"split", split}};
  return root;
}

void add_token(json& root, std::int32_t id, const std::string& content, bool special, bool normalized) {
  root["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                  {"rstrip", false}, {"normalized", normalized}, {"special", special}});
}

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

}  // namespace

TEST_CASE("llama legacy tokenizer.json: Prepend + Replace normalizer, byte fallback", "[unit][tokenizer]") {
  const Tokenizer tok = Tokenizer::load(kLlamaTiny);
  CHECK(tok.flavour() == "tokenizer.json");
  CHECK(tok.encode("Hi", true) == Ids{kBos, kSpaceHi});
  // Empty splits are dropped and Prepend skips empty text: only the BOS.
  CHECK(tok.encode("", true) == Ids{kBos});
  CHECK(tok.encode("", false).empty());
  // "\n" is not in the vocab: its byte token <0x0A> (3 + 10 = 13).
  CHECK(tok.encode("Hi\n", false) == Ids{kSpaceHi, byte_id(0x0A)});
  CHECK(byte_id(0x0A) == 13);
  // One byte token per UTF-8 byte, upper-case hex: "ü" = C3 BC, emoji = F0 9F 98 80.
  CHECK(tok.encode("\xC3\xBC", false) == Ids{kSpace, byte_id(0xC3), byte_id(0xBC)});
  CHECK(tok.encode("\xF0\x9F\x98\x80", false) == Ids{kSpace, byte_id(0xF0), byte_id(0x9F), byte_id(0x98), byte_id(0x80)});
  CHECK(tok.tokens({byte_id(0xC3)}) == std::vector<std::string>{"<0xC3>"});
  // Legacy: every stretch of text between added tokens gets its own "▁".
  CHECK(tok.encode("Hi<s>Hi", false) == Ids{kSpaceHi, kBos, kSpaceHi});
  // One word "▁Hi▁Hi": both (▁,H) merge, then both (▁H,i).
  CHECK(tok.encode("Hi Hi", false) == Ids{kSpaceHi, kSpaceHi});
  // Letters outside the vocab fall back to bytes between merged pieces.
  CHECK(tok.encode("Hello", false) ==
        Ids{262, byte_id('e'), byte_id('l'), byte_id('l'), byte_id('o')});
}

TEST_CASE("llama legacy decoder: Replace, ByteFallback, Fuse, Strip", "[unit][tokenizer]") {
  const Tokenizer tok = Tokenizer::load(kLlamaTiny);
  CHECK(tok.decode({kBos, kSpaceHi, byte_id(0xC3), byte_id(0xBC)}) == "<s> Hi\xC3\xBC");
  CHECK(tok.decode({kBos, kSpaceHi, byte_id(0xC3), byte_id(0xBC)}, true) == "Hi\xC3\xBC");
  // Invalid UTF-8 from byte tokens: one U+FFFD per byte, not per sequence.
  CHECK(tok.decode({byte_id(0xC3)}) == "\xEF\xBF\xBD");
  CHECK(tok.decode({byte_id(0xC3), byte_id(0xC3)}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(tok.decode({byte_id(0xF0), byte_id(0x9F), byte_id(0x98)}) == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Strip(" ", 1, 0) after Fuse removes only the first space of the whole text.
  CHECK(tok.decode({kSpaceHi, kSpace, byte_id('\n')}, true) == "Hi \n");
  // Ids outside vocab and added tokens are left out, as the Rust decode does.
  CHECK(tok.decode({kSpaceHi, 5000, kSpaceHi}) == "Hi Hi");

  for (const std::string text : {"Hi", "Hello world", "  two leading spaces", "tabs\tand\nnewlines\r\n",
                                 "caf\xC3\xA9 \xE6\xBC\xA2\xE5\xAD\x97 \xF0\x9F\x98\x80!", "trailing ", "x"}) {
    INFO(text);
    CHECK(tok.decode(tok.encode(text, true), true) == text);
    CHECK(tok.decode(tok.encode(text, false)) == text);
  }
}

TEST_CASE("llama: normalized added tokens are matched as normalizer(content)", "[unit][tokenizer]") {
  TempDir dir;
  json root = tiny_tokenizer_json();
  // Under the legacy normalizer a normalized "</s>" is searched as "▁</s>".
  root["added_tokens"][2]["normalized"] = true;
  const Tokenizer normalized = load_variant(dir, root);
  CHECK(normalized.encode("Hi </s>", false) == Ids{kSpaceHi, kEos});
  CHECK(normalized.encode("Hi</s>", false) ==
        Ids{kSpaceHi, byte_id('<'), byte_id('/'), byte_id('s'), byte_id('>')});

  const Tokenizer raw = Tokenizer::load(kLlamaTiny);
  CHECK(raw.encode("Hi </s>", false) == Ids{kSpaceHi, kSpace, kEos});
  CHECK(raw.encode("Hi</s>", false) == Ids{kSpaceHi, kEos});
}

TEST_CASE("llama: an added token in the middle, legacy and Metaspace first", "[unit][tokenizer]") {
  TempDir legacy_dir, first_dir;
  json legacy = tiny_tokenizer_json();
  add_token(legacy, 264, "<image>", true, false);
  const Tokenizer legacy_tok = load_variant(legacy_dir, legacy);
  // "Hi " -> "▁Hi▁"; "\nHi" -> "▁\nHi" (no merge joins ▁ and \n, nor H and i alone).
  CHECK(legacy_tok.encode("Hi <image>\nHi", false) ==
        Ids{kSpaceHi, kSpace, 264, kSpace, byte_id('\n'), kH, kI});

  json first = metaspace_variant("first", false);
  add_token(first, 264, "<image>", true, false);
  const Tokenizer first_tok = load_variant(first_dir, first);
  // Only the stretch at byte 0 of the input gets the "▁".
  CHECK(first_tok.encode("Hi <image>\nHi", false) == Ids{kSpaceHi, kSpace, 264, byte_id('\n'), kH, kI});
  CHECK(first_tok.encode("<image><image>Hi", false) == Ids{264, 264, kH, kI});
}

TEST_CASE("llama Metaspace pre-tokenizer: prepend_scheme first / always / never, split", "[unit][tokenizer]") {
  TempDir first_dir, always_dir, never_dir, split_dir, split_first_dir;
  const Tokenizer first = load_variant(first_dir, metaspace_variant("first", false));
  CHECK(first.encode("Hi", true) == Ids{kBos, kSpaceHi});
  CHECK(first.encode("Hi", false) == Ids{kSpaceHi});
  // Text after an added token does not start the input: no "▁".
  CHECK(first.encode("Hi<s>Hi", false) == Ids{kSpaceHi, kBos, kH, kI});
  CHECK(first.encode("<s>Hi", false) == Ids{kBos, kH, kI});
  // " " -> "▁" first, and a piece starting with "▁" gets no second one.
  CHECK(first.encode(" Hi", false) == Ids{kSpaceHi});
  CHECK(first.encode("Hi<s> Hi", false) == Ids{kSpaceHi, kBos, kSpaceHi});
  // split=false: "▁Hi▁Hi" is one word.
  CHECK(first.encode("Hi Hi", false) == Ids{kSpaceHi, kSpaceHi});

  const Tokenizer always = load_variant(always_dir, metaspace_variant("always", false));
  CHECK(always.encode("Hi<s>Hi", false) == Ids{kSpaceHi, kBos, kSpaceHi});

  const Tokenizer never = load_variant(never_dir, metaspace_variant("never", false));
  CHECK(never.encode("Hi", false) == Ids{kH, kI});
  CHECK(never.encode(" Hi", false) == Ids{kSpaceHi});

  // split=true cuts before every "▁" (MergedWithNext, each "▁" its own
  // match): "▁Hi▁▁Hi" -> "▁Hi", "▁", "▁Hi".
  const Tokenizer split = load_variant(split_dir, metaspace_variant("always", true));
  CHECK(split.encode("Hi  Hi", false) == Ids{kSpaceHi, kSpace, kSpaceHi});
  const Tokenizer split_first = load_variant(split_first_dir, metaspace_variant("first", true));
  CHECK(split_first.encode("Hi<s>Hi Hi", false) == Ids{kSpaceHi, kBos, kH, kI, kSpaceHi});
}

TEST_CASE("llama Metaspace JSON: defaults and the legacy add_prefix_space key", "[unit][tokenizer]") {
  TempDir dir;
  json root = tiny_tokenizer_json();
  root["normalizer"] = nullptr;
  // Old files: add_prefix_space true, no prepend_scheme / split -> always, split.
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", true}};
  CHECK(load_variant(dir, root).encode("Hi<s>Hi  Hi", false) == Ids{kSpaceHi, kBos, kSpaceHi, kSpace, kSpaceHi});

  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false},
                           {"prepend_scheme", "never"}};
  CHECK(load_variant(dir, root).encode("Hi", false) == Ids{kH, kI});

  // add_prefix_space false contradicts the (default) scheme "always", as in Rust.
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false}};
  require_error([&] { load_variant(dir, root); }, ErrorCode::InvalidModel, {"tokenizer.json", "add_prefix_space"});
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "sometimes"}};
  require_error([&] { load_variant(dir, root); }, ErrorCode::InvalidModel, {"tokenizer.json", "prepend_scheme"});
  root["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}};
  require_error([&] { load_variant(dir, root); }, ErrorCode::InvalidModel, {"tokenizer.json", "replacement"});
}

TEST_CASE("llama Metaspace decoder and the no-decoder join", "[unit][tokenizer]") {
  TempDir dir;
  json root = metaspace_variant("always", true);
  root["model"]["vocab"]["\xE2\x96\x81\xE2\x96\x81Hi"] = 264;  // "▁▁Hi", only for decoding
  // ByteFallback first so that letters outside the tiny vocab round-trip.
  root["decoder"] = {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "ByteFallback"}},
                       {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"},
                        {"split", true}}}}};
  const Tokenizer always = load_variant(dir, root);
  CHECK(always.decode({kSpaceHi, kSpaceHi}) == "Hi Hi");
  // Every "▁" of the first token is removed, not only the first one.
  CHECK(always.decode({264}) == "Hi");
  CHECK(always.decode({264, 264}) == "Hi  Hi");
  for (const std::string text : {"Hi", "Hi Hi", "Hello world, again"}) {
    INFO(text);
    CHECK(always.decode(always.encode(text, true), true) == text);
  }

  root["decoder"]["decoders"][1]["prepend_scheme"] = "never";
  CHECK(load_variant(dir, root).decode({kSpaceHi}) == " Hi");

  // Without a decoder the Rust tokenizers join the token strings with spaces.
  root["decoder"] = nullptr;
  CHECK(load_variant(dir, root).decode({kSpaceHi, kH, byte_id('\n')}) == "\xE2\x96\x81Hi H <0x0A>");
}

TEST_CASE("ByteFallback decoder reads <0xNN> as Rust does", "[unit][tokenizer]") {
  TempDir dir;
  json root = tiny_tokenizer_json();
  root["model"]["vocab"]["<0x0a>"] = 264;  // lower-case hex is a byte token too
  root["model"]["vocab"]["<0x+A>"] = 265;  // u8::from_str_radix accepts a '+' sign
  root["model"]["vocab"]["<0xZZ>"] = 266;  // not hex: an ordinary token
  root["model"]["vocab"]["<0x0AA>"] = 267;  // not 6 bytes: an ordinary token
  const Tokenizer tok = load_variant(dir, root);
  CHECK(tok.decode({kSpaceHi, 264, 265}) == "Hi\n\n");
  CHECK(tok.decode({kSpaceHi, 266, 267}) == "Hi<0xZZ><0x0AA>");
  // A byte run split by another token is decoded run by run.
  CHECK(tok.decode({kSpaceHi, byte_id(0xC3), kH, byte_id(0xBC)}) == "Hi\xEF\xBF\xBDH\xEF\xBF\xBD");
}

TEST_CASE("llama BPE without byte fallback: unk, fuse_unk, dropped characters", "[unit][tokenizer]") {
  TempDir dir;
  json root = tiny_tokenizer_json();
  root["model"]["byte_fallback"] = false;
  const std::string u_umlaut = "\xC3\xBC";
  CHECK(load_variant(dir, root).encode(u_umlaut + u_umlaut, false) == Ids{kSpace, kUnk});
  CHECK(load_variant(dir, root).encode(u_umlaut + "H" + u_umlaut, false) == Ids{kSpace, kUnk, kH, kUnk});

  root["model"]["fuse_unk"] = false;
  CHECK(load_variant(dir, root).encode(u_umlaut + u_umlaut, false) == Ids{kSpace, kUnk, kUnk});

  // No unk token and no byte fallback: the Rust BPE drops the character, and
  // its neighbours merge across the gap ("▁H" + "i" -> "▁Hi").
  root["model"]["unk_token"] = nullptr;
  const Tokenizer dropping = load_variant(dir, root);
  CHECK(dropping.encode(u_umlaut + u_umlaut, false) == Ids{kSpace});
  CHECK(dropping.encode("H" + u_umlaut + "i", false) == Ids{kSpaceHi});
  CHECK(dropping.encode(u_umlaut, true) == Ids{kBos, kSpace});
}

TEST_CASE("tokenizer.json BPE: Rust merge order, merge and byte-table checks, dropout", "[unit][tokenizer]") {
  TempDir dir;
  // Rust merges one pair at a time in (rank, position) order: in "abab",
  // after (a,b) at 0 the new pair (ab,a) has rank 0 and goes first, giving
  // "aba" + "b" (the Python slow classes would give "ab" + "ab").
  const json merge_order = {
      {"model",
       {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"aba", 3}}}, {"merges", {"ab a", "a b"}}}}};
  dir.write("tokenizer.json", merge_order.dump());
  CHECK(Tokenizer::load(dir.str()).encode("abab", false) == Ids{3, 1});

  json root = tiny_tokenizer_json();
  root["model"]["merges"].push_back("H x");
  require_error([&] { load_variant(dir, root); }, ErrorCode::InvalidModel, {"tokenizer.json", "merges[2]", "'x'"});

  root = tiny_tokenizer_json();
  root["model"]["vocab"].erase("<0x41>");
  require_error([&] { load_variant(dir, root); }, ErrorCode::InvalidModel, {"tokenizer.json", "<0x41>", "byte_fallback"});

  root = tiny_tokenizer_json();
  root["model"]["dropout"] = 0.1;
  require_error([&] { load_variant(dir, root); }, ErrorCode::Unsupported, {"tokenizer.json", "dropout"});
  root["model"]["dropout"] = 0.0;
  CHECK(load_variant(dir, root).encode("Hi", false) == Ids{kSpaceHi});
}

TEST_CASE("Split pre-tokenizer: adjacent delimiters with MergedWithPrevious / MergedWithNext", "[unit][tokenizer]") {
  // The merge "- -" comes first, so "--" inside one piece becomes one token,
  // and the ids show where the pieces were cut.
  TempDir dir;
  const auto load_with = [&](const std::string& behavior) {
    const json root = {
        {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}}},
        {"model",
         {{"type", "BPE"},
          {"vocab", {{"a", 0}, {"-", 1}, {"a-", 2}, {"--", 3}, {"-a", 4}}},
          {"merges", {"- -", "a -", "- a"}}}}};
    dir.write("tokenizer.json", root.dump());
    return Tokenizer::load(dir.str());
  };
  // "a--a" -> "a-", "-", "a" (the second '-' has no non-match on its left).
  CHECK(load_with("MergedWithPrevious").encode("a--a", false) == Ids{2, 1, 0});
  // "a--a" -> "a", "-", "-a".
  CHECK(load_with("MergedWithNext").encode("a--a", false) == Ids{0, 1, 4});
  CHECK(load_with("Contiguous").encode("a--a", false) == Ids{0, 3, 0});
  CHECK(load_with("Isolated").encode("a--a", false) == Ids{0, 1, 1, 0});
  CHECK(load_with("Removed").encode("a--a", false) == Ids{0, 0});
}

TEST_CASE("llama post-processor and special ids come from tokenizer_config", "[unit][tokenizer]") {
  TempDir dir;
  const Tokenizer tiny = Tokenizer::load(kLlamaTiny);
  CHECK(tiny.bos_id() == kBos);
  CHECK(tiny.eos_id() == kEos);
  CHECK(tiny.unk_id() == kUnk);
  CHECK_FALSE(tiny.pad_id());
  CHECK(tiny.model_max_length() == std::size_t{4096});

  // LlamaTokenizerFast replaces the file's post-processor ("<s> $A </s>"
  // here) with one built from add_bos_token / add_eos_token.
  json root = tiny_tokenizer_json();
  root["post_processor"]["single"].push_back({{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}});
  root["post_processor"]["special_tokens"]["</s>"] = {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}};
  json config = tiny_config();
  CHECK(load_variant(dir, root, config).encode("Hi", true) == Ids{kBos, kSpaceHi});
  config["add_eos_token"] = true;
  CHECK(load_variant(dir, root, config).encode("Hi", true) == Ids{kBos, kSpaceHi, kEos});
  config["add_bos_token"] = false;
  CHECK(load_variant(dir, root, config).encode("Hi", true) == Ids{kSpaceHi, kEos});
  config.erase("add_bos_token");
  config.erase("add_eos_token");
  CHECK(load_variant(dir, root, config).encode("Hi", true) == Ids{kBos, kSpaceHi});
  CHECK(load_variant(dir, root, config).encode("Hi", true, 2) == Ids{kBos, kSpaceHi});

  // The class defaults name <s>, </s>, <unk> when the config does not.
  config = {{"tokenizer_class", "LlamaTokenizerFast"}};
  const Tokenizer defaults = load_variant(dir, root, config);
  CHECK(defaults.bos_id() == kBos);
  CHECK(defaults.eos_id() == kEos);
  CHECK(defaults.unk_id() == kUnk);
  CHECK(defaults.encode("Hi", true) == Ids{kBos, kSpaceHi});

  // Other classes keep the file's TemplateProcessing.
  config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  CHECK(load_variant(dir, root, config).encode("Hi", true) == Ids{kBos, kSpaceHi, kEos});

  config = tiny_config();
  config["bos_token"] = nullptr;
  require_error([&] { load_variant(dir, root, config); }, ErrorCode::InvalidModel,
                {"tokenizer_config.json", "add_bos_token"});
  // add_prefix_space makes transformers rebuild the tokenizer from tokenizer.model.
  config = tiny_config();
  config["add_prefix_space"] = true;
  require_error([&] { load_variant(dir, root, config); }, ErrorCode::Unsupported,
                {"tokenizer_config.json", "add_prefix_space", "tokenizer.model"});
}

TEST_CASE("a folder with only tokenizer.model is read as SentencePiece", "[unit][tokenizer]") {
  TempDir dir;
  dir.write("tokenizer.model", "not a SentencePiece model proto");
  dir.write("tokenizer_config.json", tiny_config().dump());
  // Auto reads the SentencePiece file (libsentencepiece refuses this one); the
  // other formats name the files they need.
  require_error([&] { Tokenizer::load(dir.str()); }, ErrorCode::InvalidModel,
                {(dir.path / "tokenizer.model").string(), "not a SentencePiece model"});
  require_error([&] { Tokenizer::load(dir.str(), TokenizerFormat::Fast); }, ErrorCode::InvalidModel, {"tokenizer.json"});
  require_error([&] { Tokenizer::load(dir.str(), TokenizerFormat::Slow); }, ErrorCode::InvalidModel, {"vocab.json"});
  // Next to a tokenizer.json a LlamaTokenizer's SentencePiece file is not read.
  dir.write("tokenizer.json", tiny_tokenizer_json().dump());
  CHECK(Tokenizer::load(dir.str()).encode("Hi", true) == Ids{kBos, kSpaceHi});
}

TEST_CASE("a Llama-3 style tokenizer.json: Split regex, ByteLevel, ignore_merges", "[unit][tokenizer]") {
  json vocab = json::object();
  const auto& bytes = imgjudge::tokenizer::byte_to_unicode();
  for (std::size_t b = 0; b < 256; ++b) vocab[bytes[b]] = static_cast<int>(b);
  vocab["\xC4\xA0hello"] = 256;  // "Ġhello", with no merges that build it
  vocab["123"] = 257;
  vocab["45"] = 258;
  const std::string llama3_regex =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  json root = {
      {"added_tokens", json::array({{{"id", 300}, {"content", "<|begin_of_text|>"}, {"special", true},
                                     {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", llama3_regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "Sequence"},
        {"processors",
         json::array({{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
                      {{"type", "TemplateProcessing"},
                       {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                               {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                       {"special_tokens",
                        {{"<|begin_of_text|>", {{"id", "<|begin_of_text|>"}, {"ids", {300}}, {"tokens", {"<|begin_of_text|>"}}}}}}}})}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", true}, {"vocab", vocab}, {"merges", json::array()}}}};
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<|begin_of_text|>"},
                       {"clean_up_tokenization_spaces", true}};
  TempDir dir;
  const Tokenizer tok = load_variant(dir, root, config);
  CHECK(tok.bos_id() == 300);
  CHECK(tok.encode(" hello", true) == Ids{300, 256});
  // \p{N}{1,3}: "12345" is cut into "123" and "45".
  CHECK(tok.encode("12345", false) == Ids{257, 258});
  CHECK(tok.decode({300, 256}, true) == " hello");

  root["model"]["ignore_merges"] = false;
  const Tokenizer merging = load_variant(dir, root, config);
  // The vocab gives byte b the id b: "Ġ" (the space byte) is 32.
  CHECK(merging.encode(" hello", false) == Ids{' ', 'h', 'e', 'l', 'l', 'o'});
}
