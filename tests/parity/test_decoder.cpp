// The shared decoder (models/decoder.hpp): every forward mode the code has
// against the plain no-cache forward, on the 4-layer Qwen2 fixture with 4
// query heads per KV head (tests/data/parity-deep/qwen2) and on the 2-layer
// one; the golden logits of both; and grouped_attention against a naive
// masked softmax for every mask option.
#include "torch_catch.hpp"

#include <limits>

#include "imgjudge/error.hpp"
#include "models/attention.hpp"
#include "models/llama.hpp"
#include "models/qwen2.hpp"
#include "qwen_fixture.hpp"
#include "runtime/config.hpp"

using imgjudge::models::Decoder;
using imgjudge::models::DecoderInput;
using imgjudge::models::KvCache;

namespace {

constexpr double kTolerance = 1e-4;

std::unique_ptr<const Decoder> load_fixture_decoder(const std::string& dir) {
  const auto config = imgjudge::runtime::HfConfig::load(dir + "/config.json");
  const auto weights = qwen_test::fixture_weights(dir, at::kFloat);
  return imgjudge::models::load_qwen2_decoder(imgjudge::models::qwen2_decoder_config(config), weights.scope("model"),
                                              weights, "lm_head.weight");
}

std::string deep_dir() { return std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity-deep/qwen2"; }

// Text positions start..start+T-1 as [1, B, T].
at::Tensor text_positions(std::int64_t batch, std::int64_t steps, std::int64_t start = 0) {
  return at::arange(start, start + steps, at::kLong).view({1, 1, steps}).expand({1, batch, steps}).contiguous();
}

// Plain forward of `ids` [1, T], no cache: float32 logits [T, V].
at::Tensor plain_logits(const Decoder& decoder, const at::Tensor& ids) {
  DecoderInput in;
  in.embeds = decoder.embed(ids);
  in.position_ids = text_positions(1, ids.size(1));
  return decoder.logits(decoder.forward(in).last_hidden[0]);
}

// Fills `cache` with ids[0, from:to) after what it holds (positions continue).
at::Tensor prefill(const Decoder& decoder, const at::Tensor& ids, std::int64_t from, std::int64_t to, KvCache& cache,
                   const KvCache* prefix = nullptr, bool cache_only = false) {
  DecoderInput in;
  in.embeds = decoder.embed(ids.narrow(1, from, to - from));
  in.position_ids = text_positions(1, to - from, from);
  in.cache = &cache;
  in.shared_prefix = prefix;
  in.cache_only = cache_only;
  const auto out = decoder.forward(in);
  return cache_only ? at::Tensor() : decoder.logits(out.last_hidden[0]);
}

at::Tensor fixture_ids(const std::string& dir) { return qwen_test::TensorFile(dir + "/inputs.safetensors")["input_ids"]; }

}  // namespace

TEST_CASE("decoder config reads flat and text_config-nested layouts", "[parity][decoder]") {
  using imgjudge::runtime::HfConfig;
  HfConfig flat(nlohmann::json::parse(R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
      "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 5.0})"),
                "flat.json");
  auto c = imgjudge::models::qwen2_decoder_config(flat);
  CHECK(c.head_dim == 4);
  CHECK(c.rope.theta == 5.0);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(c.sliding_window.empty());
  HfConfig nested(nlohmann::json::parse(R"({"tie_word_embeddings": true, "text_config": {"vocab_size": 10,
      "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
      "rope_scaling": {"type": "mrope", "mrope_section": [1, 0, 1]}}})"),
                  "nested.json");
  auto n = imgjudge::models::qwen2_decoder_config(nested.section_with_fallback("text_config"));
  CHECK(n.num_kv_heads == 2);
  CHECK(n.tie_word_embeddings);  // from the top level
  CHECK(n.rope.mrope_section == std::vector<std::int64_t>{1, 0, 1});

  auto bad = nested.json();
  bad["text_config"]["rope_scaling"]["mrope_section"] = {1, 1, 1};
  CHECK_THROWS_AS(imgjudge::models::qwen2_decoder_config(HfConfig(bad, "bad.json").section_with_fallback("text_config")),
                  imgjudge::Error);
  auto yarn = flat.json();
  yarn["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK_THROWS_WITH(imgjudge::models::qwen2_decoder_config(HfConfig(yarn, "yarn.json")),
                    Catch::Contains("rope_scaling type \"yarn\" is not supported"));
  // save_pretrained leaves out values equal to the class defaults: absent keys
  // take the family's defaults (Qwen2Config: 4096 wide), wrong types are errors.
  auto sparse = flat.json();
  sparse.erase("hidden_size");
  sparse.erase("num_attention_heads");
  CHECK(imgjudge::models::qwen2_decoder_config(HfConfig(sparse, "sparse.json")).hidden_size == 4096);
  CHECK(imgjudge::models::qwen2_decoder_config(HfConfig(sparse, "sparse.json")).head_dim == 128);
  sparse["hidden_size"] = "wide";
  CHECK_THROWS_WITH(imgjudge::models::qwen2_decoder_config(HfConfig(sparse, "sparse.json")),
                    Catch::Contains("sparse.json: key 'hidden_size': expected an integer"));
  // A llava-1.5 text_config as published: Llama's defaults for the rest.
  const auto vicuna = imgjudge::models::llama_decoder_config(HfConfig(
      nlohmann::json::parse(R"({"model_type": "llama", "vocab_size": 32064, "max_position_embeddings": 4096,
                                "rms_norm_eps": 1e-05})"),
      "llava-1.5-7b/config.json"));
  CHECK(vicuna.hidden_size == 4096);
  CHECK(vicuna.intermediate_size == 11008);
  CHECK(vicuna.num_layers == 32);
  CHECK(vicuna.num_kv_heads == 32);
  CHECK(vicuna.vocab_size == 32064);
  CHECK_FALSE(vicuna.tie_word_embeddings);
  // Mistral: a 4096-token window unless the config says null.
  const auto mistral = imgjudge::models::mistral_decoder_config(
      HfConfig(nlohmann::json::parse(R"({"num_hidden_layers": 2})"), "m.json"));
  CHECK(mistral.sliding_window == std::vector<std::int64_t>{4096, 4096});
  CHECK(mistral.num_kv_heads == 8);
  CHECK(imgjudge::models::mistral_decoder_config(
            HfConfig(nlohmann::json::parse(R"({"num_hidden_layers": 2, "sliding_window": null})"), "m.json"))
            .sliding_window.empty());
  // Qwen2: a window only where use_sliding_window says so, from max_window_layers on.
  auto windowed = flat.json();
  windowed["num_hidden_layers"] = 3;
  windowed["sliding_window"] = 4;
  windowed["max_window_layers"] = 1;
  windowed["use_sliding_window"] = false;
  CHECK(imgjudge::models::qwen2_decoder_config(HfConfig(windowed, "w.json")).sliding_window.empty());
  windowed["use_sliding_window"] = true;
  CHECK(imgjudge::models::qwen2_decoder_config(HfConfig(windowed, "w.json")).sliding_window ==
        std::vector<std::int64_t>{0, 4, 4});
}

TEST_CASE("decoder matches the golden Qwen2 fixtures (2 and 4 layers)", "[parity][decoder]") {
  at::set_num_threads(1);
  for (const std::string& dir : {qwen_test::fixture_dir("qwen2"), deep_dir()}) {
    INFO(dir);
    const auto decoder = load_fixture_decoder(dir);
    const qwen_test::TensorFile expected(dir + "/outputs.safetensors");
    const at::Tensor ids = fixture_ids(dir);
    DecoderInput in;
    in.embeds = decoder->embed(ids);
    in.position_ids = text_positions(1, ids.size(1));
    in.collect_hidden_states = true;
    const auto out = decoder->forward(in);
    const at::Tensor logits = decoder->logits(out.last_hidden[0]);
    if (expected.contains("logits")) QWEN_CHECK_CLOSE("logits", logits, expected["logits"], kTolerance);
    QWEN_CHECK_CLOSE("logits_last", logits[ids.size(1) - 1], expected["logits_last"], kTolerance);
    QWEN_CHECK_CLOSE("logits_rows", logits.index_select(0, expected["logits_row_positions"]), expected["logits_rows"],
                     kTolerance);
    QWEN_CHECK_CLOSE("hidden_states", at::stack(out.hidden_states).squeeze(1), expected["hidden_states"], kTolerance);

    // Greedy decoding with a growing own cache, as many steps as the reference took.
    KvCache cache;
    at::Tensor step_logits = prefill(*decoder, ids, 0, ids.size(1), cache)[ids.size(1) - 1];
    const at::Tensor expected_ids = expected["greedy_new_ids"];
    for (std::int64_t k = 0; k < expected_ids.size(0); ++k) {
      QWEN_CHECK_CLOSE("greedy_step_logits[" << k << "]", step_logits, expected["greedy_step_logits"][k], kTolerance);
      const std::int64_t next = step_logits.argmax().item<std::int64_t>();
      CHECK(next == expected_ids[k].item<std::int64_t>());
      DecoderInput step;
      step.embeds = decoder->embed(at::full({1, 1}, next, at::kLong));
      step.position_ids = text_positions(1, 1, cache.length());
      step.cache = &cache;
      step_logits = decoder->logits(decoder->forward(step).last_hidden[0][0]);
    }
  }
}

TEST_CASE("every decoder forward mode equals the plain forward on a 4-layer GQA model", "[parity][decoder]") {
  at::set_num_threads(1);
  const auto decoder_ptr = load_fixture_decoder(deep_dir());
  const Decoder& decoder = *decoder_ptr;
  REQUIRE(decoder.config().num_layers >= 4);
  REQUIRE(decoder.config().num_heads / decoder.config().num_kv_heads >= 2);
  // A prompt longer than the fixture's, so every split point below is inside it.
  const at::Tensor ids = at::cat({fixture_ids(deep_dir()), at::arange(100, 112, at::kLong).view({1, 12})}, 1);
  const std::int64_t length = ids.size(1);
  const at::Tensor reference = plain_logits(decoder, ids);  // [T, V]

  SECTION("a fresh cache gives the plain logits and the plain keys") {
    KvCache cache;
    QWEN_CHECK_CLOSE("fresh cache", prefill(decoder, ids, 0, length, cache), reference, kTolerance);
    CHECK(cache.length() == length);
    KvCache keys_only;
    prefill(decoder, ids, 0, length, keys_only, nullptr, /*cache_only=*/true);
    for (std::size_t layer = 0; layer < cache.keys.size(); ++layer) {
      CHECK(at::equal(keys_only.keys[layer], cache.keys[layer]));
      CHECK(at::equal(keys_only.values[layer], cache.values[layer]));
    }
  }

  SECTION("chunked prefill and one-token decode over a growing own cache") {
    for (const std::int64_t split : {std::int64_t{1}, std::int64_t{5}, length / 2, length - 3}) {
      KvCache cache;
      prefill(decoder, ids, 0, split, cache);
      const at::Tensor second = prefill(decoder, ids, split, split + 2, cache);  // a 2-token chunk
      QWEN_CHECK_CLOSE("chunk after " << split, second, reference.narrow(0, split, 2), kTolerance);
      for (std::int64_t p = split + 2; p < length; ++p) {
        const at::Tensor one = prefill(decoder, ids, p, p + 1, cache);
        QWEN_CHECK_CLOSE("decode step at " << p << " after " << split, one[0], reference[p], kTolerance);
      }
    }
  }

  SECTION("shared prefix with a growing own cache (generation over an image prefix)") {
    const std::int64_t plen = 7;
    KvCache prefix;
    prefill(decoder, ids, 0, plen, prefix, nullptr, /*cache_only=*/true);
    KvCache own;
    const at::Tensor head = prefill(decoder, ids, plen, plen + 4, own, &prefix);
    QWEN_CHECK_CLOSE("first continuation chunk", head, reference.narrow(0, plen, 4), kTolerance);
    for (std::int64_t p = plen + 4; p < length; ++p) {
      const at::Tensor step = prefill(decoder, ids, p, p + 1, own, &prefix);
      QWEN_CHECK_CLOSE("decode over prefix at " << p, step[0], reference[p], kTolerance);
    }
    CHECK(prefix.length() == plen);  // the shared prefix is read, never extended
  }

  SECTION("extend: a cache-only chunk over a prefix, joined to it, serves as a longer prefix") {
    const std::int64_t plen = 6, head = 5;
    KvCache prefix, added;
    prefill(decoder, ids, 0, plen, prefix, nullptr, true);
    prefill(decoder, ids, plen, plen + head, added, &prefix, true);
    KvCache joined;
    for (std::size_t layer = 0; layer < prefix.keys.size(); ++layer) {
      joined.keys.push_back(at::cat({prefix.keys[layer], added.keys[layer]}, 2));
      joined.values.push_back(at::cat({prefix.values[layer], added.values[layer]}, 2));
    }
    KvCache own;
    const at::Tensor rest = prefill(decoder, ids, plen + head, length, own, &joined);
    QWEN_CHECK_CLOSE("after the extended prefix", rest, reference.narrow(0, plen + head, length - plen - head), kTolerance);
  }

  SECTION("packed rows with read positions over a shared prefix equal each row's full forward") {
    const std::int64_t plen = 9;
    const at::Tensor prefix_ids = ids.narrow(1, 0, plen);
    KvCache prefix;
    prefill(decoder, ids, 0, plen, prefix, nullptr, true);
    const std::vector<std::vector<std::int64_t>> rows = {{5, 17, 300, 42}, {7}, {900, 1, 2, 3, 4, 5, 6}, {11, 12}};
    std::vector<std::int64_t> packed_ids, segments, positions, last, every;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      for (std::size_t j = 0; j < rows[r].size(); ++j) {
        packed_ids.push_back(rows[r][j]);
        segments.push_back(static_cast<std::int64_t>(r));
        positions.push_back(plen + static_cast<std::int64_t>(j));
        every.push_back(static_cast<std::int64_t>(every.size()));
      }
      last.push_back(static_cast<std::int64_t>(packed_ids.size()) - 1);
    }
    const auto total = static_cast<std::int64_t>(packed_ids.size());
    DecoderInput packed;
    packed.embeds = decoder.embed(at::tensor(packed_ids, at::kLong).view({1, total}));
    packed.position_ids = at::tensor(positions, at::kLong).view({1, 1, total});
    packed.shared_prefix = &prefix;
    packed.segments = at::tensor(segments, at::kLong);
    packed.read_positions = at::tensor(last, at::kLong);
    const at::Tensor hidden = decoder.forward(packed).last_hidden;  // [1, rows, H]
    REQUIRE(hidden.size(1) == static_cast<std::int64_t>(rows.size()));
    packed.read_positions = at::tensor(every, at::kLong);  // read positions covering every token
    const at::Tensor all_hidden = decoder.forward(packed).last_hidden;
    packed.read_positions = at::Tensor();  // and none: every token
    const at::Tensor unread = decoder.forward(packed).last_hidden;
    QWEN_CHECK_CLOSE("all read positions vs none", all_hidden, unread, kTolerance);

    std::int64_t offset = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const auto len = static_cast<std::int64_t>(rows[r].size());
      const at::Tensor full = plain_logits(decoder, at::cat({prefix_ids, at::tensor(rows[r], at::kLong).view({1, len})}, 1));
      QWEN_CHECK_CLOSE("packed row " << r, decoder.logits(hidden[0][static_cast<std::int64_t>(r)]), full[plen + len - 1],
                       kTolerance);
      QWEN_CHECK_CLOSE("packed row " << r << " every token", decoder.logits(unread[0].narrow(0, offset, len)),
                       full.narrow(0, plen, len), kTolerance);
      offset += len;
    }

    // Packed rows without a prefix: each row alone from position 0.
    DecoderInput bare = packed;
    bare.shared_prefix = nullptr;
    bare.position_ids = at::tensor(positions, at::kLong).sub(plen).view({1, 1, total});
    bare.read_positions = at::tensor(last, at::kLong);
    const at::Tensor bare_hidden = decoder.forward(bare).last_hidden;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const auto len = static_cast<std::int64_t>(rows[r].size());
      const at::Tensor full = plain_logits(decoder, at::tensor(rows[r], at::kLong).view({1, len}));
      QWEN_CHECK_CLOSE("packed row without prefix " << r, decoder.logits(bare_hidden[0][static_cast<std::int64_t>(r)]),
                       full[len - 1], kTolerance);
    }
  }

  SECTION("right-padded batch rows over a shared prefix equal full forwards") {
    const std::int64_t plen = 8;
    KvCache prefix;
    prefill(decoder, ids, 0, plen, prefix, nullptr, true);
    const std::vector<std::vector<std::int64_t>> rows = {{5, 17, 300, 42}, {7}, {900, 1, 2, 3, 4, 5, 6}};
    const std::int64_t longest = 7, batch = 3;
    at::Tensor padded = at::zeros({batch, longest}, at::kLong);
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto& row = rows[static_cast<std::size_t>(b)];
      padded[b].narrow(0, 0, static_cast<std::int64_t>(row.size())).copy_(at::tensor(row, at::kLong));
    }
    DecoderInput batched;
    batched.embeds = decoder.embed(padded);
    batched.position_ids = text_positions(batch, longest, plen);
    batched.shared_prefix = &prefix;
    const at::Tensor hidden = decoder.forward(batched).last_hidden;
    for (std::int64_t b = 0; b < batch; ++b) {
      const auto len = static_cast<std::int64_t>(rows[static_cast<std::size_t>(b)].size());
      const at::Tensor full = plain_logits(decoder, at::cat({ids.narrow(1, 0, plen), padded[b].narrow(0, 0, len).view({1, len})}, 1));
      QWEN_CHECK_CLOSE("batch row " << b, decoder.logits(hidden[b].narrow(0, 0, len)), full.narrow(0, plen, len),
                       kTolerance);
    }
  }

  SECTION("misuse is an error, not a wrong answer") {
    DecoderInput in;
    in.embeds = decoder.embed(ids);
    in.position_ids = text_positions(1, length);
    in.read_positions = at::tensor(std::vector<std::int64_t>{length}, at::kLong);
    CHECK_THROWS_AS(decoder.forward(in), imgjudge::Error);
    in.read_positions = at::Tensor();
    in.segments = at::zeros({length + 1}, at::kLong);
    CHECK_THROWS_AS(decoder.forward(in), imgjudge::Error);
    in.segments = at::Tensor();
    in.position_ids = text_positions(1, length - 1);
    CHECK_THROWS_AS(decoder.forward(in), imgjudge::Error);
    KvCache cache;
    prefill(decoder, ids, 0, 4, cache);
    in.position_ids = text_positions(1, length);
    in.cache = &cache;
    in.segments = at::zeros({length}, at::kLong);  // packed rows need an empty own cache
    CHECK_THROWS_AS(decoder.forward(in), imgjudge::Error);
  }
}

TEST_CASE("grouped_attention equals a naive masked softmax for every mask option", "[parity][decoder]") {
  at::manual_seed(11);
  const std::int64_t heads = 6, kv_heads = 2, dim = 8, prefix_length = 5, past = 3, steps = 7;
  const at::Tensor q_all = at::randn({1, heads, steps, dim});
  const at::Tensor keys = at::randn({1, kv_heads, past + steps, dim});
  const at::Tensor values = at::randn({1, kv_heads, past + steps, dim});
  const at::Tensor prefix_keys = at::randn({1, kv_heads, prefix_length, dim});
  const at::Tensor prefix_values = at::randn({1, kv_heads, prefix_length, dim});

  // The naive reference: repeat KV heads, explicit absolute positions.
  const auto naive = [&](const at::Tensor& q_index, bool with_prefix, std::int64_t own_past, const at::Tensor& segments,
                         std::int64_t window) {
    const std::int64_t groups = heads / kv_heads;
    const std::int64_t plen = with_prefix ? prefix_length : 0;
    at::Tensor k = keys.narrow(2, past - own_past, own_past + steps), v = values.narrow(2, past - own_past, own_past + steps);
    if (with_prefix) {
      k = at::cat({prefix_keys, k}, 2);
      v = at::cat({prefix_values, v}, 2);
    }
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
    const std::int64_t total = k.size(2);
    const at::Tensor q = q_all.index_select(2, q_index);
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(dim));
    at::Tensor mask = at::zeros({q_index.size(0), total});
    for (std::int64_t i = 0; i < q_index.size(0); ++i) {
      const std::int64_t t = q_index[i].item<std::int64_t>();
      const std::int64_t query_abs = plen + own_past + t;
      for (std::int64_t j = 0; j < total; ++j) {
        bool hidden = j > query_abs;
        if (segments.defined() && j >= plen) hidden |= segments[j - plen].item<std::int64_t>() != segments[t].item<std::int64_t>();
        if (window > 0) hidden |= j <= query_abs - window;
        if (hidden) mask[i][j] = -std::numeric_limits<float>::infinity();
      }
    }
    const at::Tensor out = at::matmul(at::softmax(scores + mask, -1), v);  // [1, H, Tq, D]
    return out.transpose(1, 2).reshape({1, q_index.size(0), heads * dim});
  };

  const at::Tensor all = at::arange(steps, at::kLong);
  const at::Tensor some = at::tensor(std::vector<std::int64_t>{0, 3, 6}, at::kLong);
  const at::Tensor segments = at::tensor(std::vector<std::int64_t>{0, 0, 1, 1, 1, 2, 2}, at::kLong);
  for (const bool with_prefix : {false, true}) {
    for (const std::int64_t window : {std::int64_t{0}, std::int64_t{3}}) {
      for (const bool subset : {false, true}) {
        const at::Tensor q_index = subset ? some : all;
        const at::Tensor q = q_all.index_select(2, q_index);
        INFO("prefix " << with_prefix << " window " << window << " subset " << subset);
        imgjudge::models::AttentionSpan span;
        span.prefix_length = with_prefix ? prefix_length : 0;
        span.window = window;
        span.query_index = subset ? some : at::Tensor();
        // With an own past.
        span.past = past;
        QWEN_CHECK_CLOSE("past", imgjudge::models::grouped_attention(
                                     q, keys, values, with_prefix ? prefix_keys : at::Tensor(),
                                     with_prefix ? prefix_values : at::Tensor(), span),
                         naive(q_index, with_prefix, past, at::Tensor(), window), 1e-5);
        // Packed rows (no own past).
        span.past = 0;
        span.segments = segments;
        const at::Tensor own_keys = keys.narrow(2, past, steps), own_values = values.narrow(2, past, steps);
        QWEN_CHECK_CLOSE("segments", imgjudge::models::grouped_attention(
                                         q, own_keys, own_values, with_prefix ? prefix_keys : at::Tensor(),
                                         with_prefix ? prefix_values : at::Tensor(), span),
                         naive(q_index, with_prefix, 0, segments, window), 1e-5);
      }
    }
  }
}

TEST_CASE("rows of different lengths decode as one right-padded batch: the golden greedy steps", "[parity][decoder]") {
  at::set_num_threads(1);
  const auto decoder_ptr = load_fixture_decoder(deep_dir());
  const Decoder& decoder = *decoder_ptr;
  const qwen_test::TensorFile expected(deep_dir() + "/outputs.safetensors");
  const at::Tensor expected_ids = expected["greedy_new_ids"];
  REQUIRE(expected_ids.size(0) == 10);
  const at::Tensor ids = fixture_ids(deep_dir());
  const std::int64_t length = ids.size(1), shorter = length - 4;
  // Row 0: the fixture prompt (the golden steps); row 1: its first `shorter`
  // tokens, decoded alone over a single-row cache as its reference.
  KvCache row0, row1, alone;
  at::Tensor logits0 = prefill(decoder, ids, 0, length, row0)[length - 1];
  at::Tensor logits1 = prefill(decoder, ids, 0, shorter, row1)[shorter - 1];
  prefill(decoder, ids, 0, shorter, alone);
  KvCache batch;  // per layer [2, KV, length, D], row 1 right-padded
  for (std::size_t layer = 0; layer < row0.keys.size(); ++layer) {
    const auto pad = [&](const at::Tensor& t) {
      return at::cat({t, at::zeros({1, t.size(1), length - shorter, t.size(3)}, t.options())}, 2);
    };
    batch.keys.push_back(at::cat({row0.keys[layer], pad(row1.keys[layer])}));
    batch.values.push_back(at::cat({row0.values[layer], pad(row1.values[layer])}));
  }
  at::Tensor key_padding = at::zeros({2, length}, at::kBool);
  key_padding[1].narrow(0, shorter, length - shorter).fill_(true);
  at::Tensor alone_logits = logits1;
  for (std::int64_t k = 0; k < expected_ids.size(0); ++k) {
    INFO("step " << k);
    QWEN_CHECK_CLOSE("row 0 (golden)", logits0, expected["greedy_step_logits"][k], kTolerance);
    QWEN_CHECK_CLOSE("row 1 (alone)", logits1, alone_logits, kTolerance);
    const std::int64_t next0 = logits0.argmax().item<std::int64_t>();
    const std::int64_t next1 = logits1.argmax().item<std::int64_t>();
    CHECK(next0 == expected_ids[k].item<std::int64_t>());
    CHECK(next1 == alone_logits.argmax().item<std::int64_t>());
    DecoderInput step;
    step.embeds = decoder.embed(at::tensor({next0, next1}, at::kLong).view({2, 1}));
    step.position_ids = at::tensor({length + k, shorter + k}, at::kLong).view({1, 2, 1});
    key_padding = at::cat({key_padding, at::zeros({2, 1}, at::kBool)}, 1);
    step.key_padding = key_padding;
    step.cache = &batch;
    const at::Tensor hidden = decoder.forward(step).last_hidden;  // [2, 1, H]
    logits0 = decoder.logits(hidden[0][0]);
    logits1 = decoder.logits(hidden[1][0]);
    DecoderInput one;
    one.embeds = decoder.embed(at::full({1, 1}, next1, at::kLong));
    one.position_ids = text_positions(1, 1, alone.length());
    one.cache = &alone;
    alone_logits = decoder.logits(decoder.forward(one).last_hidden[0][0]);
  }
  // Misuse: padding of the wrong shape, or with packed rows.
  DecoderInput wrong;
  wrong.embeds = decoder.embed(at::zeros({2, 1}, at::kLong));
  wrong.position_ids = at::zeros({1, 2, 1}, at::kLong);
  wrong.cache = &batch;
  wrong.key_padding = at::zeros({2, 3}, at::kBool);
  CHECK_THROWS_WITH(decoder.forward(wrong), Catch::Contains("key_padding must be bool"));
}
