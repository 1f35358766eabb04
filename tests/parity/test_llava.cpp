// The LLaVA families beyond their golden fixtures (which run through
// `imgjudge verify-fixture`, a ctest per folder): the processors' geometry
// with Python's numeric semantics, config reading as published checkpoints
// write it, several feature layers, and the family table's coverage.
#include "torch_catch.hpp"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "devtools/fixture_runners.hpp"
#include "devtools/random_models.hpp"
#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "models/llava.hpp"
#include "models/processors/llava_processor.hpp"
#include "runtime/config.hpp"
#include "runtime/tensor.hpp"

using namespace imgjudge::models;
using imgjudge::runtime::HfConfig;

TEST_CASE("llava geometry follows Python's numeric semantics", "[parity][llava]") {
  // float // float is CPython's floor division, snapped (not floor(a / b)).
  CHECK(python_floordiv(16.0, 1.3333333333333333) == 12.0);
  CHECK(python_floordiv(-7.0, 2.0) == -4.0);
  CHECK(python_floordiv(7.5, 2.5) == 3.0);
  CHECK(python_floordiv(1.0, 0.1) == 9.0);  // 1 // 0.1 == 9.0 in Python
  // round(x, 7), then int(): 4.99999999 becomes 5, not 4.
  CHECK(static_cast<int>(python_round7(4.99999999)) == 5);
  CHECK(python_round7(0.12345675) == Approx(0.1234568).epsilon(0));
  // select_best_resolution keeps the most resolution, then wastes the least; the first on ties.
  const GridPinpoints pinpoints = {{32, 64}, {64, 32}, {64, 64}, {96, 32}, {32, 96}};
  CHECK(select_best_resolution(45, 70, pinpoints) == std::array<std::int64_t, 2>{64, 64});
  CHECK(select_best_resolution(100, 20, pinpoints) == std::array<std::int64_t, 2>{96, 32});
  CHECK(select_best_resolution(10, 10, {{20, 20}, {20, 20}}) == std::array<std::int64_t, 2>{20, 20});
  // The resize inside the pinpoint: ceil(oh * (tw / ow)) in that order.
  CHECK(patch_output_size(45, 70, {64, 64}) == std::array<std::int64_t, 2>{42, 64});
  CHECK(patch_output_size(200, 120, {168, 112}) == std::array<std::int64_t, 2>{168, 101});
  // Unpadding cuts whole rows (columns) of padding: 45x70 in an 8x8 map keeps 6 rows, 100x20 in 12x4 keeps 2 columns.
  CHECK(unpad_image(at::zeros({3, 8, 8}), 45, 70).sizes() == at::IntArrayRef({3, 6, 8}));
  CHECK(unpad_image(at::zeros({3, 12, 4}), 100, 20).sizes() == at::IntArrayRef({3, 12, 2}));
}

TEST_CASE("llava configs as published checkpoints write them", "[parity][llava]") {
  // llava-hf/llava-1.5-7b-hf's config.json: most text values are LlamaConfig's defaults and left out.
  const auto published = nlohmann::json::parse(R"({
    "model_type": "llava", "image_token_index": 32000, "projector_hidden_act": "gelu",
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
    "text_config": {"model_type": "llama", "vocab_size": 32064, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05},
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                      "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                      "patch_size": 14, "projection_dim": 768}})");
  const LlavaConfig c = LlavaConfig::from_config(HfConfig(published, "llava-1.5-7b/config.json"));
  CHECK(c.variant == LlavaConfig::Variant::Llava);
  CHECK(c.text_model_type == "llama");
  CHECK_FALSE(c.siglip_tower);
  CHECK(c.vision.grid() == 24);
  CHECK(c.vision.encoder.hidden_act == "quick_gelu");
  CHECK(c.feature_layers == std::vector<std::int64_t>{-2});
  CHECK(c.drop_class_token);
  // Its parameters: a 4096-wide Llama with 32 layers, the CLIP-L tower, the projector.
  const auto specs = llava_parameter_specs(HfConfig(published, "llava-1.5-7b/config.json"));
  std::map<std::string, std::vector<std::int64_t>> by_name;
  for (const auto& spec : specs) by_name[spec.name] = spec.shape;
  CHECK(by_name.at("language_model.model.embed_tokens.weight") == std::vector<std::int64_t>{32064, 4096});
  CHECK(by_name.count("language_model.model.layers.31.mlp.down_proj.weight") == 1);
  CHECK(by_name.at("multi_modal_projector.linear_1.weight") == std::vector<std::int64_t>{4096, 1024});
  CHECK(by_name.at("vision_tower.vision_model.embeddings.position_embedding.weight") ==
        std::vector<std::int64_t>{577, 1024});
  CHECK(by_name.count("image_newline") == 0);

  // OneVision: SigLIP and Qwen2 by default, full strategy, anyres_max_N, feature layers as a list.
  auto onevision = nlohmann::json::parse(R"({"model_type": "llava_onevision", "vision_aspect_ratio": "anyres_max_4",
    "vision_feature_layer": [-2, -1],
    "text_config": {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100,
                    "intermediate_size": 8},
    "vision_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28,
                      "patch_size": 14, "intermediate_size": 8}})");
  const LlavaConfig ov = LlavaConfig::from_config(HfConfig(onevision, "ov.json"));
  CHECK(ov.siglip_tower);
  CHECK(ov.text_model_type == "qwen2");
  CHECK(ov.max_tiles == 4);
  CHECK_FALSE(ov.drop_class_token);
  CHECK(ov.feature_layers == std::vector<std::int64_t>{-2, -1});
  CHECK(ov.pinpoints.size() == 36);  // the 384-px grid of the class default
  const auto ov_specs = llava_parameter_specs(HfConfig(onevision, "ov.json"));
  bool projector_takes_both_layers = false;
  for (const auto& spec : ov_specs) {
    if (spec.name == "multi_modal_projector.linear_1.weight") projector_takes_both_layers = spec.shape[1] == 64;
  }
  CHECK(projector_takes_both_layers);

  onevision["vision_aspect_ratio"] = "anyres";
  CHECK_THROWS_WITH(LlavaConfig::from_config(HfConfig(onevision, "ov.json")), Catch::Contains("anyres_max_<N>"));
  onevision["vision_aspect_ratio"] = "anyres_max_9";
  onevision["vision_feature_select_strategy"] = "cls";
  CHECK_THROWS_WITH(LlavaConfig::from_config(HfConfig(onevision, "ov.json")), Catch::Contains("default or full"));
  onevision["vision_feature_select_strategy"] = "full";
  onevision["vision_feature_layer"] = -5;
  CHECK_THROWS_WITH(LlavaConfig::from_config(HfConfig(onevision, "ov.json")),
                    Catch::Contains("outside the tower's 3 hidden states"));
}

TEST_CASE("several vision feature layers are concatenated in list order", "[parity][llava]") {
  at::set_num_threads(1);
  // A random llava folder reading hidden states -3 and -1 of its 3-layer tower.
  auto config = HfConfig::load(std::string(IMGJUDGE_SOURCE_DIR) + "/examples/demo/tiny-llava.json").json();
  config["vision_feature_layer"] = {-3, -1};
  config["image_token_index"] = 999;  // no tokenizer: inside the random vocabulary
  const auto root = std::filesystem::temp_directory_path() / "imgjudge_llava_layers";
  std::filesystem::create_directories(root);
  std::ofstream(root / "config.json") << config.dump();
  imgjudge::devtools::RandomModelRequest request;
  request.config_path = (root / "config.json").string();
  request.out_dir = (root / "model").string();
  request.seed = 5;
  imgjudge::devtools::make_random_model(request);

  LoadOptions options;
  options.with_processors = false;
  const auto model = LlavaModel::load(request.out_dir, options);
  at::manual_seed(1);
  const at::Tensor pixels = at::randn({2, 3, 56, 56});
  const auto states = model->vision_hidden_states(pixels);  // 4 entries
  REQUIRE(states.size() == 4);
  // The reference: HF's get_image_features, from the checkpoint's own tensors.
  const auto weights = imgjudge::runtime::read_safetensors(request.out_dir + "/model.safetensors");
  const at::Tensor selected = at::cat({states[1], states[3]}, -1).narrow(1, 1, 16);  // CLS dropped
  const at::Tensor hidden = at::gelu(at::linear(selected, weights.at("multi_modal_projector.linear_1.weight"),
                                                weights.at("multi_modal_projector.linear_1.bias")));
  const at::Tensor expected = at::linear(hidden, weights.at("multi_modal_projector.linear_2.weight"),
                                         weights.at("multi_modal_projector.linear_2.bias"));
  const at::Tensor got = model->tile_features(pixels);
  REQUIRE(got.sizes() == expected.sizes());
  CHECK((got - expected).abs().max().item<double>() <= 1e-5);
  std::filesystem::remove_all(root);
}

TEST_CASE("every family of the table has a golden-fixture runner, and every runner a family", "[parity][families]") {
  for (const Family& family : families()) {
    INFO(family.model_type);
    CHECK(imgjudge::devtools::find_fixture_runner(family.model_type) != nullptr);
    CHECK(family.parameters != nullptr);
    const bool vision = family.role == FamilyRole::VisionLanguage;
    CHECK((family.load_lm != nullptr) == (vision || family.role == FamilyRole::Text));
    CHECK((family.image_token != nullptr) == vision);
  }
  for (const std::string& type : imgjudge::devtools::fixture_runner_types()) {
    INFO(type);
    CHECK(find_family(type) != nullptr);
  }
  CHECK_THROWS_WITH(require_family("gemma3", FamilyRole::VisionLanguage, "/models/x"),
                    Catch::Contains("/models/x: model_type \"gemma3\" is not a supported vision-language family "
                                    "(this build supports: qwen2_vl, qwen2_5_vl, llava"));
  CHECK_THROWS_WITH(require_family("llava", FamilyRole::Relevance, "/models/x"),
                    Catch::Contains("is not a supported relevance family (this build supports: clip, siglip)"));
}
