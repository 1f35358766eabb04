// InternVL2 / 2.5 beyond its golden fixtures (tests/data/parity/internvl_*, run by
// `imgjudge verify-fixture`): dynamic tiling as OpenGVLab's dynamic_preprocess
// chooses (CPython set order, the tie rule), config reading with the classes'
// defaults, pixel shuffle v1 / v2 in closed form.
#include "torch_catch.hpp"

#include <array>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "models/internvl.hpp"
#include "models/processors/internvl_processor.hpp"
#include "runtime/config.hpp"

using namespace imgjudge::models;
using imgjudge::runtime::HfConfig;
using Grids = std::vector<std::array<std::int64_t, 2>>;

namespace {

const std::string kFixture = std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/internvl_qwen2";

InternVLProcessorConfig tiling(std::int64_t min_tiles, std::int64_t max_tiles, std::int64_t tile) {
  InternVLProcessorConfig c;
  c.dynamic = true;
  c.use_thumbnail = true;
  c.min_tiles = min_tiles;
  c.max_tiles = max_tiles;
  c.tile_size = tile;
  return c;
}

nlohmann::json minimal_config() {
  return nlohmann::json::parse(R"({"model_type": "internvl_chat", "template": "internvl2_5", "force_image_size": 448,
    "llm_config": {"architectures": ["InternLM2ForCausalLM"]},
    "vision_config": {"image_size": 448, "patch_size": 14, "hidden_size": 1024, "num_attention_heads": 16,
                      "intermediate_size": 4096, "num_hidden_layers": 24}})");
}

imgjudge::Image gradient(int width, int height) {
  imgjudge::Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>((i * 7) % 251);
  return image;
}

}  // namespace

TEST_CASE("InternVL candidate grids come in the reference's order (area, then CPython set order)", "[parity][internvl]") {
  // python3: sorted(set((i, j) for n in range(mn, mx + 1) for i in range(1, n + 1)
  //                  for j in range(1, n + 1) if mn <= i * j <= mx), key=lambda x: x[0] * x[1])
  CHECK((internvl_candidate_grids(1, 6) ==
        Grids{{1, 1}, {1, 2}, {2, 1}, {3, 1}, {1, 3}, {4, 1}, {1, 4}, {2, 2}, {1, 5}, {5, 1}, {6, 1}, {2, 3}, {1, 6}, {3, 2}}));
  CHECK((internvl_candidate_grids(1, 12) ==
        Grids{{1, 1}, {1, 2}, {2, 1}, {3, 1}, {1, 3}, {2, 2}, {4, 1}, {1, 4}, {5, 1},  {1, 5},  {1, 6}, {6, 1},
              {3, 2}, {2, 3}, {7, 1}, {1, 7}, {4, 2}, {2, 4}, {1, 8}, {8, 1}, {1, 9}, {3, 3},  {9, 1},  {2, 5},
              {5, 2}, {10, 1}, {1, 10}, {11, 1}, {1, 11}, {12, 1}, {3, 4}, {4, 3}, {1, 12}, {6, 2}, {2, 6}}));
  CHECK((internvl_candidate_grids(4, 4) == Grids{{4, 1}, {1, 4}, {2, 2}}));
  const Grids from_two = internvl_candidate_grids(2, 12);
  CHECK(from_two.size() == 34);
  CHECK((Grids(from_two.begin(), from_two.begin() + 6) == Grids{{1, 2}, {2, 1}, {3, 1}, {1, 3}, {2, 2}, {4, 1}}));
  // Past a resize of CPython's set table (1..40: 8 -> 32 -> 128 -> 512 slots).
  const Grids forty = internvl_candidate_grids(1, 40);
  CHECK((Grids(forty.begin(), forty.begin() + 20) ==
        Grids{{1, 1}, {1, 2}, {2, 1}, {3, 1}, {1, 3}, {2, 2}, {4, 1}, {1, 4}, {5, 1}, {1, 5},
              {6, 1}, {3, 2}, {2, 3}, {1, 6}, {7, 1}, {1, 7}, {4, 2}, {2, 4}, {1, 8}, {8, 1}}));
}

TEST_CASE("InternVL picks the closest aspect ratio; an equal one later wins only for a large image", "[parity][internvl]") {
  using G = std::array<std::int64_t, 2>;
  CHECK(internvl_tile_grid(61, 37, tiling(1, 6, 56)) == G{3, 2});  // the fixture's image: 6 tiles + thumbnail
  CHECK(internvl_tile_grid(100, 100, tiling(1, 12, 448)) == G{1, 1});
  CHECK(internvl_tile_grid(800, 800, tiling(1, 12, 448)) == G{2, 2});  // (1,1), (2,2), (3,3) tie: 800^2 > half of 2x2
  CHECK(internvl_tile_grid(896, 448, tiling(1, 12, 448)) == G{2, 1});
  CHECK(internvl_tile_grid(640, 427, tiling(1, 12, 448)) == G{3, 2});
  CHECK(internvl_tile_grid(1000, 10, tiling(1, 6, 448)) == G{6, 1});
  // min = max = 4: (1,4) and (2,2) tie at 5:8, (4,1) and (2,2) at 5:2; (2,2) comes later and
  // wins only when the image has more than half of its 4 * 448^2 pixels.
  CHECK(internvl_tile_grid(500, 800, tiling(4, 4, 448)) == G{1, 4});
  CHECK(internvl_tile_grid(640, 1024, tiling(4, 4, 448)) == G{2, 2});
  CHECK(internvl_tile_grid(5, 2, tiling(4, 4, 448)) == G{4, 1});
  CHECK(internvl_tile_grid(2000, 800, tiling(4, 4, 448)) == G{2, 2});
  CHECK_THROWS_AS(internvl_tile_grid(0, 10, tiling(1, 6, 448)), imgjudge::Error);
}

TEST_CASE("InternVL tiles: the grid row-major, a thumbnail when more than one, one tile without tiling", "[parity][internvl]") {
  c10::InferenceMode guard;
  CHECK(internvl_preprocess(gradient(61, 37), tiling(1, 6, 56)).sizes() == at::IntArrayRef({7, 3, 56, 56}));
  CHECK(internvl_preprocess(gradient(40, 40), tiling(1, 6, 56)).sizes() == at::IntArrayRef({1, 3, 56, 56}));
  InternVLProcessorConfig no_thumbnail = tiling(1, 6, 28);
  no_thumbnail.use_thumbnail = false;
  const at::Tensor tiles = internvl_preprocess(gradient(90, 30), no_thumbnail);
  CHECK(tiles.sizes() == at::IntArrayRef({3, 3, 28, 28}));
  InternVLProcessorConfig whole = tiling(1, 6, 28);
  whole.dynamic = false;
  CHECK(internvl_preprocess(gradient(90, 30), whole).sizes() == at::IntArrayRef({1, 3, 28, 28}));
}

TEST_CASE("InternVL config: the classes' defaults, what is refused", "[parity][internvl]") {
  nlohmann::json raw = minimal_config();
  InternVLConfig c = InternVLConfig::from_config(HfConfig(raw, "c.json"));
  CHECK(c.language_model == InternVLConfig::LanguageModel::InternLM2);
  CHECK(c.tokens_per_tile() == 256);
  CHECK(c.ps_v1);                      // ps_version's class default is v1
  CHECK(c.vision.rms_norm);            // InternVisionConfig: norm_type rms_norm,
  CHECK(c.vision.qk_normalization);    // qk_normalization true,
  CHECK_FALSE(c.vision.qkv_bias);      // qkv_bias false
  CHECK_FALSE(c.processor.dynamic);
  CHECK(c.processor.max_tiles == 6);
  CHECK_FALSE(c.system_message.has_value());

  raw["force_image_size"] = 224;  // tiles smaller than the 448 px position grid: 64 tokens
  raw["ps_version"] = "v2";
  raw["system_message"] = "S";
  c = InternVLConfig::from_config(HfConfig(raw, "c.json"));
  CHECK(c.tokens_per_tile() == 64);
  CHECK_FALSE(c.ps_v1);
  CHECK(c.system_message == std::string("S"));

  nlohmann::json bad = minimal_config();
  bad["llm_config"]["architectures"] = {"Phi3ForCausalLM"};
  CHECK_THROWS_WITH(InternVLConfig::from_config(HfConfig(bad, "c.json")), Catch::Contains("Phi3ForCausalLM"));
  bad = minimal_config();
  bad["use_llm_lora"] = 16;
  CHECK_THROWS_WITH(InternVLConfig::from_config(HfConfig(bad, "c.json")), Catch::Contains("LoRA"));
  bad = minimal_config();
  bad["downsample_ratio"] = 0.3;
  CHECK_THROWS_WITH(InternVLConfig::from_config(HfConfig(bad, "c.json")), Catch::Contains("downsample_ratio"));
  bad = minimal_config();
  bad["vision_config"]["norm_type"] = "batch_norm";
  CHECK_THROWS_WITH(InternVLConfig::from_config(HfConfig(bad, "c.json")), Catch::Contains("norm_type"));
  bad = minimal_config();
  bad["select_layer"] = -30;
  CHECK_THROWS_AS(InternVLConfig::from_config(HfConfig(bad, "c.json")), imgjudge::Error);
}

TEST_CASE("InternVL pixel shuffle: channels (row offset, column offset, C); v2 row-major, v1 transposed", "[parity][internvl]") {
  c10::InferenceMode guard;
  namespace fs = std::filesystem;
  std::random_device random;
  const fs::path dir = fs::temp_directory_path() / ("imgjudge_internvl_" + std::to_string(random()));
  fs::create_directories(dir);
  fs::copy_file(kFixture + "/model.safetensors", dir / "model.safetensors");
  std::ifstream in(kFixture + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  LoadOptions options;
  options.with_processors = false;
  for (const char* version : {"v2", "v1"}) {
    config["ps_version"] = version;
    std::ofstream(dir / "config.json") << config.dump();
    const auto model = InternVLModel::load(dir.string(), options, 992);
    const std::int64_t n = 2, a = 4, b = 6, c = 3, k = 2;
    const at::Tensor x = at::arange(n * a * b * c, at::kFloat).reshape({n, a, b, c});
    const at::Tensor y = model->pixel_shuffle(x);
    REQUIRE(y.sizes() == at::IntArrayRef({n, (a / k) * (b / k), c * k * k}));
    bool all = true;
    for (std::int64_t t = 0; t < n; ++t) {
      for (std::int64_t row = 0; row < a / k; ++row) {
        for (std::int64_t column = 0; column < b / k; ++column) {
          const std::int64_t token = std::string(version) == "v2" ? row * (b / k) + column : column * (a / k) + row;
          for (std::int64_t i = 0; i < k; ++i) {
            for (std::int64_t j = 0; j < k; ++j) {
              for (std::int64_t ch = 0; ch < c; ++ch) {
                all = all && y[t][token][(i * k + j) * c + ch].item<float>() ==
                                 x[t][k * row + i][k * column + j][ch].item<float>();
              }
            }
          }
        }
      }
    }
    INFO("ps_version " << version);
    CHECK(all);
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}
