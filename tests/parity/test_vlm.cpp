// The family-neutral VisionLanguageModel (backends/torch/vlm.cpp) on random
// 4-layer Qwen2-VL / Qwen2.5-VL folders (4 query heads per KV head) made with
// the real Qwen2 tokenizer: batched, prefix-shared, packed scores equal
// one-question-at-a-time full forwards; m0; generation; answer tokens.
#include "torch_catch.hpp"

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "backends/torch/vlm.hpp"
#include "imgjudge/error.hpp"
#include "models/qwen2_vl.hpp"
#include "devtools/random_models.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using imgjudge::models::QwenVLModel;

// A tiny Qwen2-VL (2 layers, width 64; ViT 2 blocks, width 32, 4 px patches).
std::string make_tiny_qwen2_vl(const std::string& model_type) {
  const std::string root = (std::filesystem::temp_directory_path() / ("imgjudge_test_" + model_type)).string();
  std::filesystem::create_directories(root);
  const std::string config_path = root + "/source_config.json";
  std::ofstream(config_path) << fmt::format(R"({{
    "model_type": "{}", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 1, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "tie_word_embeddings": true, "vocab_size": 1000, "image_token_id": 151655, "video_token_id": 151656,
    "vision_start_token_id": 151652, "vision_end_token_id": 151653,
    "rope_scaling": {{"type": "mrope", "mrope_section": [2, 3, 3]}},
    "vision_config": {{"depth": 2, "embed_dim": 32, "hidden_size": {}, "out_hidden_size": 64,
      "intermediate_size": 48, "num_heads": 4, "mlp_ratio": 2, "patch_size": 4, "spatial_merge_size": 2,
      "temporal_patch_size": 2, "window_size": 16, "fullatt_block_indexes": [1], "in_channels": 3}}
  }})", model_type, model_type == "qwen2_vl" ? 64 : 32);
  imgjudge::devtools::RandomModelRequest request;
  request.config_path = config_path;
  request.tokenizer_dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/qwen2";
  request.out_dir = root + "/model";
  request.seed = 7;
  imgjudge::devtools::make_random_model(request);
  return request.out_dir;
}

imgjudge::Image test_image() {
  imgjudge::Image image;
  image.width = 37;
  image.height = 29;
  image.rgb.resize(static_cast<std::size_t>(image.width * image.height * 3));
  for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>((i * 37 + i / 7) % 251);
  return image;
}

// The reference: one full forward of one prompt, no cache, no batching.
double full_forward_score(const QwenVLModel& model, const imgjudge::Image* image, const std::string& question,
                          imgjudge::AnswerSpellings spellings = imgjudge::AnswerSpellings::Exact) {
  using imgjudge::tokenizer::ChatContent;
  std::vector<ChatContent> content;
  if (image != nullptr) content.push_back(ChatContent::image());
  content.push_back(ChatContent::make_text(question));
  std::vector<imgjudge::models::EncodedImage> encoded;
  if (image != nullptr) encoded.push_back(model.encode_image(*image, nullptr));
  std::vector<const imgjudge::models::EncodedImage*> images;
  for (const auto& e : encoded) images.push_back(&e);
  const std::vector<std::int64_t> ids = model.render({{"user", content}}, images, true);
  imgjudge::models::DecoderInput input;
  input.embeds = model.embed(ids, images);
  input.position_ids = model.positions(ids, images).ids;
  const at::Tensor hidden = model.decoder().forward(input).last_hidden[0];
  const at::Tensor probs = at::softmax(model.decoder().logits(hidden[hidden.size(0) - 1]).to(at::kDouble), 0);
  const auto& tok = model.tokenizer();
  if (spellings == imgjudge::AnswerSpellings::Exact) {
    const double yes = probs[tok.encode("Yes", false).at(0)].item<double>();
    const double no = probs[tok.encode("No", false).at(0)].item<double>();
    return yes / (yes + no);
  }
  double yes = 0, no = 0;
  for (const char* word : {"Yes", " Yes", "yes", " yes"}) {
    auto t = tok.encode(word, false);
    if (t.size() == 1) yes += probs[t[0]].item<double>();
  }
  for (const char* word : {"No", " No", "no", " no"}) {
    auto t = tok.encode(word, false);
    if (t.size() == 1) no += probs[t[0]].item<double>();
  }
  return yes / (yes + no);
}

std::shared_ptr<const QwenVLModel> load(const std::string& dir, const std::string& dtype = "float32") {
  imgjudge::models::LoadOptions options;
  options.target = imgjudge::runtime::resolve_device({"cpu", dtype, 1});
  return QwenVLModel::load(dir, options);
}

}  // namespace

TEST_CASE("qwen vl judge: batched prefix-shared scores equal full forwards", "[parity][qwen2_vl][judge]") {
  for (const std::string family : {"qwen2_vl", "qwen2_5_vl"}) {
    INFO(family);
    const std::string dir = make_tiny_qwen2_vl(family);
    const auto model = load(dir);
    const auto judge = std::make_shared<const imgjudge::backends::torch::MultimodalJudge>(model, "float32");
    const auto& tok = model->tokenizer();
    const imgjudge::Image image = test_image();
    const std::vector<imgjudge::Question> questions = {
        {"a cat", "Is the following content visible via this image? Answer \"Yes\" or \"No\". Statement: a cat"},
        {"x", "Is there blood?"},
        {"long", "Is the following content visible via this image? Answer \"Yes\" or \"No\". Statement: a person "
                 "holding a knife with visible bloody injuries on both arms"},
    };
    const imgjudge::CallContext call;
    const auto context = judge->prepare(image, call);
    const auto scores = judge->score(context.get(), questions, {}, call);
    const auto priors = judge->score(nullptr, questions, {}, call);
    REQUIRE(scores.size() == questions.size());
    REQUIRE(priors.size() == questions.size());
    for (std::size_t i = 0; i < questions.size(); ++i) {
      const double with_image = full_forward_score(*model, &image, questions[i].prompt);
      const double without = full_forward_score(*model, nullptr, questions[i].prompt);
      INFO("question " << i << " batched " << scores[i] << " full " << with_image << " | m0 " << priors[i] << " full "
                       << without);
      CHECK(std::abs(scores[i] - with_image) <= 1e-4);
      CHECK(std::abs(priors[i] - without) <= 1e-4);
      CHECK(scores[i] > 0.0);
      CHECK(scores[i] < 1.0);
    }
    // The spelling sum, when asked for, equals its full-forward definition too.
    imgjudge::AnswerWords any;
    any.spellings = imgjudge::AnswerSpellings::Any;
    const auto any_scores = judge->score(context.get(), questions, any, call);
    for (std::size_t i = 0; i < questions.size(); ++i) {
      CHECK(std::abs(any_scores[i] - full_forward_score(*model, &image, questions[i].prompt,
                                                        imgjudge::AnswerSpellings::Any)) <= 1e-4);
    }

    // One question alone scores the same as inside the batch.
    const auto single = judge->score(context.get(), {questions[1]}, {}, call);
    CHECK(std::abs(single[0] - scores[1]) <= 1e-4);

    // Questions of one template share its head ("Is the following ... Statement:")
    // as an extension of the image prefix, built once and reused by later
    // batches (rounds) and lone questions; every score still equals a full forward.
    const std::string head = "Is the following content visible via this image? Answer \"Yes\" or \"No\". Statement: ";
    const std::vector<std::vector<std::string>> rounds = {
        {"a cat on a sofa", "blood on the floor", "a person holding a knife"},
        {"smoke", "a rifle with a scope"},
        {"an empty street at night"},
    };
    for (const auto& statements : rounds) {
      std::vector<imgjudge::Question> batch;
      for (const auto& statement : statements) batch.push_back({statement, head + statement});
      const auto round_scores = judge->score(context.get(), batch, {}, call);
      REQUIRE(round_scores.size() == batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const double full = full_forward_score(*model, &image, batch[i].prompt);
        INFO(batch[i].statement << ": head-shared " << round_scores[i] << " full " << full);
        CHECK(std::abs(round_scores[i] - full) <= 1e-4);
      }
    }

    // More questions than one packed pass takes (1024 tokens): they run in
    // several passes over the same prefix and still equal full forwards.
    {
      std::vector<imgjudge::Question> many;
      for (int i = 0; i < 90; ++i) {
        const std::string statement = fmt::format("object number {} is visible on the left side of the wooden table", i);
        many.push_back({statement, head + statement});
      }
      const auto many_scores = judge->score(context.get(), many, {}, call);
      REQUIRE(many_scores.size() == many.size());
      for (std::size_t i = 0; i < many.size(); i += 11) {
        const double full = full_forward_score(*model, &image, many[i].prompt);
        INFO(many[i].statement << ": packed " << many_scores[i] << " full " << full);
        CHECK(std::abs(many_scores[i] - full) <= 1e-4);
      }
    }

    // One prepared image scored from several threads at once (the question-head
    // cache is shared): every thread gets the sequential answers.
    {
      const auto shared_context = judge->prepare(image, call);
      std::vector<imgjudge::Question> batch;
      for (const auto& statement : rounds.front()) batch.push_back({statement, head + statement});
      const auto sequential = judge->score(judge->prepare(image, call).get(), batch, {}, call);
      std::vector<std::vector<double>> results(4);
      std::vector<std::thread> threads;
      for (std::size_t t = 0; t < results.size(); ++t) {
        threads.emplace_back([&, t] { results[t] = judge->score(shared_context.get(), batch, {}, call); });
      }
      for (auto& thread : threads) thread.join();
      for (const auto& result : results) {
        REQUIRE(result.size() == sequential.size());
        for (std::size_t i = 0; i < result.size(); ++i) CHECK(std::abs(result[i] - sequential[i]) <= 1e-6);
      }
    }

    // int8 linear layers: the same questions within quantization error.
    const auto int8_judge = std::make_shared<const imgjudge::backends::torch::MultimodalJudge>(load(dir, "int8"), "int8");
    CHECK(int8_judge->model_id().find("(int8)") != std::string::npos);
    const auto int8_scores = int8_judge->score(int8_judge->prepare(image, call).get(), questions, {}, call);
    for (std::size_t i = 0; i < questions.size(); ++i) {
      INFO("question " << i << " float32 " << scores[i] << " int8 " << int8_scores[i]);
      CHECK(std::abs(int8_scores[i] - scores[i]) <= 0.02);
    }

    const std::string described = judge->describe_answer_tokens({});
    CHECK(described.find("'Yes'") != std::string::npos);
    CHECK(described.find("'No'") != std::string::npos);

    imgjudge::GenerateLimits limits;
    limits.max_new_tokens = 5;
    const std::string text =
        judge->generate(context.get(), {{imgjudge::ChatTurn::Role::User, "Describe the image."}}, limits, call);
    const std::string again =
        judge->generate(context.get(), {{imgjudge::ChatTurn::Role::User, "Describe the image."}}, limits, call);
    CHECK(text == again);  // greedy: deterministic
    limits.max_new_tokens = 0;
    CHECK(judge->generate(nullptr, {{imgjudge::ChatTurn::Role::User, "Hi"}}, limits, call).empty());

    // The token budget ends generation: this model's vocabulary (1000) cannot
    // produce <|im_end|> (151645), so without the budget it would never stop.
    // Re-encoding the text gives at most the generated count (BPE merges).
    limits.max_new_tokens = 3;
    const std::string short_text = judge->generate(context.get(), {{imgjudge::ChatTurn::Role::User, "Go"}}, limits, call);
    limits.max_new_tokens = 12;
    const std::string long_text = judge->generate(context.get(), {{imgjudge::ChatTurn::Role::User, "Go"}}, limits, call);
    INFO("3 tokens: '" << short_text << "', 12 tokens: '" << long_text << "'");
    CHECK(!short_text.empty());
    CHECK(tok.encode(short_text, false).size() <= 3);
    CHECK(tok.encode(long_text, false).size() <= 12);
    CHECK(long_text.size() > short_text.size());
  }
}
