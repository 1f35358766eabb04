// Qwen2 decoder vs the transformers 4.50.3 golden fixture (tests/data/parity/qwen2):
// full forward, hidden states, greedy decoding with the KV cache, and the
// shared-prefix batched path against independent full forwards.
#include "torch_catch.hpp"
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/qwen2.hpp"
#include "qwen_fixture.hpp"
#include "util/files.hpp"

using imgjudge::models::DecoderInput;
using imgjudge::models::KvCache;
using imgjudge::models::Qwen2Config;
using imgjudge::models::Qwen2Decoder;

namespace {

constexpr double kTolerance = 1e-4;

Qwen2Decoder load_fixture_decoder(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  const auto config = Qwen2Config::from_json(
      nlohmann::json::parse(imgjudge::util::read_file_text(config_path)), config_path);
  const auto weights = qwen_test::fixture_weights(dir, at::kFloat);
  return Qwen2Decoder(config, weights.scope("model"), weights, "lm_head.weight");
}

// Text positions 0..T-1 (plus `start`) as the [3, B, T] M-RoPE layout.
at::Tensor text_positions(std::int64_t batch, std::int64_t steps, std::int64_t start = 0) {
  return at::arange(start, start + steps, at::kLong).view({1, 1, steps}).expand({3, batch, steps}).contiguous();
}

}  // namespace

TEST_CASE("qwen2 config reads flat and text_config-nested layouts", "[parity][qwen2]") {
  auto flat = nlohmann::json::parse(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 5.0})");
  auto c = Qwen2Config::from_json(flat, "flat");
  CHECK(c.head_dim == 4);
  CHECK(c.rope_theta == 5.0);
  CHECK_FALSE(c.tie_word_embeddings);
  auto nested = nlohmann::json::parse(R"({"tie_word_embeddings": true, "text_config": {"vocab_size": 10,
      "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
      "rope_scaling": {"type": "mrope", "mrope_section": [1, 0, 1]}}})");
  auto n = Qwen2Config::from_json(nested, "nested");
  CHECK(n.num_kv_heads == 2);
  CHECK(n.tie_word_embeddings);
  CHECK(n.mrope_section == std::vector<std::int64_t>{1, 0, 1});
  nested["text_config"]["rope_scaling"]["mrope_section"] = {1, 1, 1};
  CHECK_THROWS_AS(Qwen2Config::from_json(nested, "bad"), imgjudge::Error);
  flat.erase("hidden_size");
  CHECK_THROWS_AS(Qwen2Config::from_json(flat, "missing"), imgjudge::Error);
}

TEST_CASE("qwen2 matches the golden fixture", "[parity][qwen2]") {
  at::set_num_threads(1);
  const std::string dir = qwen_test::fixture_dir("qwen2");
  const Qwen2Decoder decoder = load_fixture_decoder(dir);
  const qwen_test::TensorFile inputs(dir + "/inputs.safetensors");
  const qwen_test::TensorFile expected(dir + "/outputs.safetensors");
  const at::Tensor ids = inputs["input_ids"];  // [1, T]
  const std::int64_t steps = ids.size(1);

  SECTION("full forward: logits and hidden states") {
    DecoderInput in;
    in.embeds = decoder.embed(ids);
    in.position_ids = text_positions(1, steps);
    in.collect_hidden_states = true;
    auto out = decoder.forward(in);
    const at::Tensor logits = decoder.logits(out.last_hidden[0]);
    QWEN_CHECK_CLOSE("logits", logits, expected["logits"], kTolerance);
    QWEN_CHECK_CLOSE("logits_last", logits[steps - 1], expected["logits_last"], kTolerance);
    QWEN_CHECK_CLOSE("logits_rows", logits.index_select(0, expected["logits_row_positions"]),
                     expected["logits_rows"], kTolerance);
    QWEN_CHECK_CLOSE("hidden_states", at::stack(out.hidden_states).squeeze(1), expected["hidden_states"],
                     kTolerance);
  }

  SECTION("greedy decoding with the KV cache") {
    KvCache cache;
    DecoderInput in;
    in.embeds = decoder.embed(ids);
    in.position_ids = text_positions(1, steps);
    in.cache = &cache;
    at::Tensor step_logits = decoder.logits(decoder.forward(in).last_hidden[0][steps - 1]);
    const at::Tensor expected_ids = expected["greedy_new_ids"];
    const at::Tensor expected_logits = expected["greedy_step_logits"];
    for (std::int64_t k = 0; k < expected_ids.size(0); ++k) {
      QWEN_CHECK_CLOSE("greedy_step_logits[" << k << "]", step_logits, expected_logits[k], kTolerance);
      const std::int64_t next = step_logits.argmax().item<std::int64_t>();
      CHECK(next == expected_ids[k].item<std::int64_t>());
      DecoderInput step;
      step.embeds = decoder.embed(at::full({1, 1}, next, at::kLong));
      step.position_ids = text_positions(1, 1, cache.length());
      step.cache = &cache;
      step_logits = decoder.logits(decoder.forward(step).last_hidden[0][0]);
    }
  }

  SECTION("prefix prefill then decode one token reproduces every logits row") {
    const at::Tensor positions = expected["logits_row_positions"];
    for (std::int64_t r = 0; r < positions.size(0); ++r) {
      const std::int64_t p = positions[r].item<std::int64_t>();
      if (p == 0) continue;
      KvCache prefix;
      DecoderInput pre;
      pre.embeds = decoder.embed(ids.narrow(1, 0, p));
      pre.position_ids = text_positions(1, p);
      pre.cache = &prefix;
      decoder.forward(pre);
      DecoderInput step;
      step.embeds = decoder.embed(ids.narrow(1, p, 1));
      step.position_ids = text_positions(1, 1, p);
      step.shared_prefix = &prefix;
      QWEN_CHECK_CLOSE("logits_rows[" << r << "] via shared prefix",
                       decoder.logits(decoder.forward(step).last_hidden[0][0]), expected["logits_rows"][r],
                       kTolerance);
    }
  }
}

TEST_CASE("qwen2 batched continuations over a shared prefix equal full forwards", "[parity][qwen2]") {
  at::set_num_threads(1);
  const Qwen2Decoder decoder = load_fixture_decoder(qwen_test::fixture_dir("qwen2"));
  const std::int64_t prefix_len = 9;
  const at::Tensor prefix_ids = at::arange(100, 100 + prefix_len, at::kLong).view({1, prefix_len});
  // Continuations of different lengths, right-padded with id 0.
  const std::vector<std::vector<std::int64_t>> continuations = {{5, 17, 300, 42}, {7}, {900, 1, 2, 3, 4, 5, 6}};
  std::int64_t longest = 0;
  for (const auto& c : continuations) longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(c.size()));
  const auto batch = static_cast<std::int64_t>(continuations.size());
  at::Tensor padded = at::zeros({batch, longest}, at::kLong);
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::size_t t = 0; t < continuations[static_cast<std::size_t>(b)].size(); ++t) {
      padded[b][static_cast<std::int64_t>(t)] = continuations[static_cast<std::size_t>(b)][t];
    }
  }
  KvCache prefix;
  DecoderInput pre;
  pre.embeds = decoder.embed(prefix_ids);
  pre.position_ids = text_positions(1, prefix_len);
  pre.cache = &prefix;
  decoder.forward(pre);
  DecoderInput batched;
  batched.embeds = decoder.embed(padded);
  batched.position_ids = text_positions(batch, longest, prefix_len);
  batched.shared_prefix = &prefix;
  const at::Tensor batched_hidden = decoder.forward(batched).last_hidden;
  CHECK(prefix.length() == prefix_len);  // the shared prefix is read, never extended

  for (std::int64_t b = 0; b < batch; ++b) {
    const auto& tokens = continuations[static_cast<std::size_t>(b)];
    const auto len = static_cast<std::int64_t>(tokens.size());
    at::Tensor full_ids = at::cat({prefix_ids, padded[b].narrow(0, 0, len).view({1, len})}, 1);
    DecoderInput full;
    full.embeds = decoder.embed(full_ids);
    full.position_ids = text_positions(1, prefix_len + len);
    const at::Tensor reference = decoder.logits(decoder.forward(full).last_hidden[0].narrow(0, prefix_len, len));
    QWEN_CHECK_CLOSE("continuation " << b, decoder.logits(batched_hidden[b].narrow(0, 0, len)), reference, kTolerance);
  }
}

TEST_CASE("qwen2 packed rows with read positions equal full forwards; cache_only fills the same cache",
          "[parity][qwen2]") {
  at::set_num_threads(1);
  const Qwen2Decoder decoder = load_fixture_decoder(qwen_test::fixture_dir("qwen2"));
  const std::int64_t prefix_len = 9;
  const at::Tensor prefix_ids = at::arange(100, 100 + prefix_len, at::kLong).view({1, prefix_len});

  // The prefix once with every output, once cache-only: equal keys and values, no outputs.
  KvCache prefix, prefix_only;
  DecoderInput pre;
  pre.embeds = decoder.embed(prefix_ids);
  pre.position_ids = text_positions(1, prefix_len);
  pre.cache = &prefix;
  decoder.forward(pre);
  pre.cache = &prefix_only;
  pre.cache_only = true;
  CHECK_FALSE(decoder.forward(pre).last_hidden.defined());
  REQUIRE(prefix_only.keys.size() == prefix.keys.size());
  for (std::size_t layer = 0; layer < prefix.keys.size(); ++layer) {
    CHECK(at::equal(prefix_only.keys[layer], prefix.keys[layer]));
    CHECK(at::equal(prefix_only.values[layer], prefix.values[layer]));
  }

  // Three rows packed into one sequence; each row restarts at position prefix_len.
  const std::vector<std::vector<std::int64_t>> rows = {{5, 17, 300, 42}, {7}, {900, 1, 2, 3, 4, 5, 6}};
  std::vector<std::int64_t> ids, segments, positions, last;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t j = 0; j < rows[r].size(); ++j) {
      ids.push_back(rows[r][j]);
      segments.push_back(static_cast<std::int64_t>(r));
      positions.push_back(prefix_len + static_cast<std::int64_t>(j));
    }
    last.push_back(static_cast<std::int64_t>(ids.size()) - 1);
  }
  const auto total = static_cast<std::int64_t>(ids.size());
  DecoderInput packed;
  packed.embeds = decoder.embed(at::tensor(ids, at::kLong).view({1, total}));
  packed.position_ids = at::tensor(positions, at::kLong).view({1, 1, total}).expand({3, 1, total}).contiguous();
  packed.shared_prefix = &prefix_only;
  packed.segments = at::tensor(segments, at::kLong);
  packed.read_positions = at::tensor(last, at::kLong);
  const at::Tensor hidden = decoder.forward(packed).last_hidden;  // [1, rows, H]
  REQUIRE(hidden.size(1) == static_cast<std::int64_t>(rows.size()));

  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto len = static_cast<std::int64_t>(rows[r].size());
    DecoderInput full;
    full.embeds = decoder.embed(at::cat({prefix_ids, at::tensor(rows[r], at::kLong).view({1, len})}, 1));
    full.position_ids = text_positions(1, prefix_len + len);
    const at::Tensor reference = decoder.logits(decoder.forward(full).last_hidden[0][prefix_len + len - 1]);
    QWEN_CHECK_CLOSE("row " << r, decoder.logits(hidden[0][static_cast<std::int64_t>(r)]), reference, kTolerance);
  }

  // Misuse is an error, not a wrong answer.
  packed.read_positions = at::tensor(std::vector<std::int64_t>{total}, at::kLong);
  CHECK_THROWS_AS(decoder.forward(packed), imgjudge::Error);
  packed.read_positions = at::Tensor();
  packed.segments = at::zeros({total + 1}, at::kLong);
  CHECK_THROWS_AS(decoder.forward(packed), imgjudge::Error);
}
