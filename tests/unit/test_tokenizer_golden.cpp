// Golden parity of the tokenizers against transformers 4.50.3 (slow classes):
// every line of tests/data/tokenizers/<name>/cases.jsonl, every field.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.hpp"

namespace {

using imgjudge::tokenizer::Tokenizer;
using imgjudge::tokenizer::TokenizerFormat;
using nlohmann::json;

const std::string kTokenizerData = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/";

std::vector<json> read_cases(const std::string& name) {
  std::ifstream in(kTokenizerData + name + "/cases.jsonl");
  REQUIRE(in.good());
  std::vector<json> cases;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) cases.push_back(json::parse(line));
  }
  REQUIRE(!cases.empty());
  return cases;
}

struct FieldCounts {
  std::size_t cases = 0, ids = 0, tokens = 0, input_ids = 0, decoded = 0, decoded_skip_special = 0, all = 0;
};

// Checks one tokenizer against every case; `fields_checked` false for
// fields the comparison should skip (none for the slow files).
FieldCounts check_cases(const Tokenizer& tokenizer, const std::vector<json>& cases, bool check_input_ids) {
  FieldCounts counts;
  for (const json& c : cases) {
    const std::string text = c.at("text").get<std::string>();
    const auto expected_ids = c.at("ids").get<std::vector<std::int32_t>>();
    const auto ids = tokenizer.encode(text, false);
    const auto tokens = tokenizer.tokens(expected_ids);
    const auto input_ids = tokenizer.encode(text, true);
    const auto decoded = tokenizer.decode(expected_ids, false);
    const auto decoded_skip = tokenizer.decode(expected_ids, true);
    const bool ids_ok = ids == expected_ids;
    const bool tokens_ok = tokens == c.at("tokens").get<std::vector<std::string>>();
    const bool input_ok = !check_input_ids || input_ids == c.at("input_ids").get<std::vector<std::int32_t>>();
    const bool decoded_ok = decoded == c.at("decoded").get<std::string>();
    const bool skip_ok = decoded_skip == c.at("decoded_skip_special").get<std::string>();
    ++counts.cases;
    counts.ids += ids_ok;
    counts.tokens += tokens_ok;
    counts.input_ids += input_ok;
    counts.decoded += decoded_ok;
    counts.decoded_skip_special += skip_ok;
    counts.all += ids_ok && tokens_ok && input_ok && decoded_ok && skip_ok;
    if (!(ids_ok && tokens_ok && input_ok && decoded_ok && skip_ok)) {
      UNSCOPED_INFO("mismatch in " << c.at("id").get<std::string>() << " text=" << json(text).dump()
                                   << " ids_ok=" << ids_ok << " got=" << json(ids).dump() << " tokens_ok=" << tokens_ok
                                   << " input_ids_ok=" << input_ok << " decoded_ok=" << decoded_ok
                                   << " got=" << json(decoded).dump() << " skip_ok=" << skip_ok
                                   << " got=" << json(decoded_skip).dump());
    }
  }
  return counts;
}

void report(const std::string& name, const FieldCounts& counts) {
  WARN(name << ": " << counts.all << "/" << counts.cases << " cases match on every field (ids " << counts.ids
            << ", tokens " << counts.tokens << ", input_ids " << counts.input_ids << ", decoded " << counts.decoded
            << ", decoded_skip_special " << counts.decoded_skip_special << ")");
}

void run_golden(const std::string& name) {
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerData + name, TokenizerFormat::Slow);
  const auto cases = read_cases(name);
  const FieldCounts counts = check_cases(tokenizer, cases, true);
  report(name, counts);
  CHECK(counts.all == cases.size());
}

}  // namespace

TEST_CASE("qwen2 tokenizer matches every golden case", "[unit][tokenizer]") {
  run_golden("qwen2");
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerData + "qwen2");
  CHECK(tokenizer.flavour() == "qwen2");
  CHECK(tokenizer.vocab_size() == 151643);
  CHECK(tokenizer.id_end() == 151665);
  CHECK(tokenizer.token_to_id("<|image_pad|>") == 151655);
  CHECK(tokenizer.id_to_token(151652) == std::optional<std::string>("<|vision_start|>"));
  CHECK(tokenizer.eos_id() == 151645);
  CHECK(tokenizer.pad_id() == 151643);
  CHECK_FALSE(tokenizer.bos_id());
  CHECK_FALSE(tokenizer.unk_id());
  CHECK(tokenizer.is_special(151644));
  CHECK_FALSE(tokenizer.is_special(151657));  // <tool_call> is an added, not special, token.
}

TEST_CASE("gpt2 tokenizer matches every golden case", "[unit][tokenizer]") {
  run_golden("gpt2");
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerData + "gpt2");
  CHECK(tokenizer.flavour() == "gpt2");
  CHECK(tokenizer.vocab_size() == 50257);
  CHECK(tokenizer.eos_id() == 50256);
  CHECK(tokenizer.bos_id() == 50256);
  CHECK(tokenizer.model_max_length() == std::size_t{1024});
}

TEST_CASE("clip tokenizer matches every golden case", "[unit][tokenizer]") {
  run_golden("clip");
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerData + "clip");
  CHECK(tokenizer.flavour() == "clip");
  CHECK(tokenizer.vocab_size() == 49408);
  CHECK(tokenizer.bos_id() == 49406);
  CHECK(tokenizer.eos_id() == 49407);
  CHECK(tokenizer.pad_id() == 49407);
  CHECK(tokenizer.model_max_length() == std::size_t{77});
}

TEST_CASE("clip batch encoding pads to 77 with an attention mask", "[unit][tokenizer]") {
  using imgjudge::tokenizer::BatchOptions;
  using imgjudge::tokenizer::Padding;
  const Tokenizer tokenizer = Tokenizer::load(kTokenizerData + "clip");
  std::string long_text;
  for (int i = 0; i < 100; ++i) long_text += "dog ";
  BatchOptions options;
  options.padding = Padding::MaxLength;
  options.truncation = true;
  const auto batch = tokenizer.encode_batch({"a photo of a dog", long_text}, options);
  REQUIRE(batch.input_ids.size() == 2);
  for (std::size_t row = 0; row < 2; ++row) {
    CHECK(batch.input_ids[row].size() == 77);
    CHECK(batch.attention_mask[row].size() == 77);
    CHECK(batch.input_ids[row].front() == 49406);
  }
  const std::vector<std::int32_t> short_ids = {49406, 320, 1125, 539, 320, 1929, 49407};
  CHECK(std::vector<std::int32_t>(batch.input_ids[0].begin(), batch.input_ids[0].begin() + 7) == short_ids);
  CHECK(batch.input_ids[0][7] == 49407);  // Pad id.
  CHECK(batch.attention_mask[0][6] == 1);
  CHECK(batch.attention_mask[0][7] == 0);
  // Truncated: the end token is kept in the last position, no padding.
  CHECK(batch.input_ids[1].back() == 49407);
  CHECK(batch.input_ids[1][75] == tokenizer.token_to_id("dog</w>"));
  CHECK(std::count(batch.attention_mask[1].begin(), batch.attention_mask[1].end(), 1) == 77);

  options.padding = Padding::Longest;
  options.truncation = false;
  const auto longest = tokenizer.encode_batch({"a dog", "a photo of a dog"}, options);
  CHECK(longest.input_ids[0].size() == 7);
  CHECK(longest.attention_mask[0] == std::vector<std::int32_t>{1, 1, 1, 1, 0, 0, 0});
}
