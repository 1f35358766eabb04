// CLIP against transformers 4.50.3 (tests/data/parity/clip, float32, 1 thread).
#include "torch_catch.hpp"

#include "imgjudge/error.hpp"
#include "models/clip.hpp"
#include "parity_util.hpp"
#include "runtime/config.hpp"
#include "runtime/nn.hpp"

using namespace imgjudge;

TEST_CASE("CLIP text pooling: argmax for eos_token_id 2, else first eos", "[parity][clip]") {
  at::set_num_threads(1);
  c10::InferenceMode inference;
  const std::string dir = parity::fixture_dir("clip");
  auto config = models::clip::load_config(dir);
  const runtime::WeightStore weights(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU);
  // Row: 5 tokens, eos (999) at position 2, a larger id (998 < 999, so use 999 twice).
  const at::Tensor ids = at::tensor({998, 10, 999, 20, 999}, at::kLong).view({1, 5});
  const models::clip::ClipModel first_eos(config, weights);
  const auto a = first_eos.encode_text(ids, {});
  CHECK(at::equal(a.pooled, a.last_hidden_state.select(1, 2)));
  config.text.eos_token_id = 2;  // openai-style config: argmax picks the first maximum too
  const at::Tensor ids2 = at::tensor({998, 10, 30, 999, 20}, at::kLong).view({1, 5});
  const models::clip::ClipModel argmax(config, weights);
  const auto b = argmax.encode_text(ids2, {});
  CHECK(at::equal(b.pooled, b.last_hidden_state.select(1, 3)));
}

TEST_CASE("CLIP rejects wrong image sizes and out-of-range token ids", "[parity][clip]") {
  const std::string dir = parity::fixture_dir("clip");
  const models::clip::ClipModel model(
      models::clip::load_config(dir),
      runtime::WeightStore(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU));
  CHECK_THROWS_AS(model.encode_image(at::zeros({1, 3, 48, 48}), false), Error);
  CHECK_THROWS_AS(model.encode_text(at::tensor({5, 1000}, at::kLong).view({1, 2}), {}), Error);
}

TEST_CASE("CLIP parameter_specs come from the model and follow the config", "[parity][clip]") {
  auto config = models::clip::parse_config(runtime::HfConfig(
      nlohmann::json::parse(R"({"projection_dim": 16,
        "text_config": {"hidden_size": 24, "num_hidden_layers": 3, "num_attention_heads": 2, "vocab_size": 50,
                        "max_position_embeddings": 7, "intermediate_size": 40},
        "vision_config": {"hidden_size": 40, "num_hidden_layers": 1, "num_attention_heads": 5, "image_size": 48,
                          "patch_size": 16, "intermediate_size": 20}})"),
      "inline"));
  const auto specs = models::clip::parameter_specs(config);
  std::map<std::string, std::vector<int64_t>> by_name;
  for (const auto& spec : specs) by_name[spec.name] = spec.shape;
  CHECK(by_name.at("vision_model.embeddings.position_embedding.weight") == std::vector<int64_t>{10, 40});
  CHECK(by_name.at("text_model.encoder.layers.2.mlp.fc1.weight") == std::vector<int64_t>{40, 24});
  CHECK(by_name.count("text_model.encoder.layers.3.mlp.fc1.weight") == 0);
  CHECK(by_name.at("visual_projection.weight") == std::vector<int64_t>{16, 40});
  CHECK(by_name.at("logit_scale").empty());
  // 2 + 16*3 + 2 (text) + 3 + 16*1 + 4 (vision) + 3 (projections, scale)
  CHECK(specs.size() == 2 + 16 * 3 + 2 + 3 + 16 * 1 + 4 + 3);
}
