// Preprocessing parity with Hugging Face (CLIP, SigLIP goldens from
// transformers 4.50.3 + Pillow), Pillow resampling properties, center crop,
// and preprocessor_config.json parsing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "image/preprocess.hpp"
#include "image/resize.hpp"
#include "imgjudge/error.hpp"
#include "runtime/safetensors.hpp"

using namespace imgjudge;
using namespace imgjudge::image;

namespace {

const std::string kParityDir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/";

Image image_from_values(int width, int height, const std::vector<int>& values) {
  Image image;
  image.width = width;
  image.height = height;
  for (int v : values) image.rgb.push_back(std::uint8_t(v));
  return image;
}

// Single-channel helper: every pixel grey v.
Image grey_row(const std::vector<int>& values, int height = 1) {
  std::vector<int> rgb;
  for (int y = 0; y < height; ++y) {
    for (int v : values) rgb.insert(rgb.end(), {v, v, v});
  }
  return image_from_values(int(values.size()), height, rgb);
}

std::vector<int> red_channel(const Image& image) {
  std::vector<int> out;
  for (std::size_t i = 0; i < image.rgb.size(); i += 3) out.push_back(image.rgb[i]);
  return out;
}

struct ParityResult {
  double max_abs_diff = 0;
  std::size_t mismatches = 0;  // elements not bit-identical
};

ParityResult run_parity(const std::string& family, const Resample* override_filter = nullptr) {
  auto config = ImageProcessorConfig::from_file(kParityDir + family + "/preprocessor_config.json");
  if (override_filter != nullptr) config.resample = *override_filter;
  const auto golden = runtime::SafetensorsFile::open(kParityDir + family + "/preprocess.safetensors");
  const runtime::TensorView& pixels_in = golden->at("image");
  const runtime::TensorView& expected = golden->at("pixel_values");
  REQUIRE(pixels_in.dtype == runtime::DType::U8);
  REQUIRE(pixels_in.shape.size() == 3);
  REQUIRE(pixels_in.shape[2] == 3);
  REQUIRE(expected.dtype == runtime::DType::F32);
  REQUIRE(expected.shape.size() == 4);
  const int height = int(pixels_in.shape[0]);
  const int width = int(pixels_in.shape[1]);
  const Image image = Image::from_rgb(pixels_in.data, width, height, std::size_t(width) * 3);

  const FloatImage out = preprocess(image, config);
  REQUIRE(expected.shape[0] == 1);
  REQUIRE(out.channels == expected.shape[1]);
  REQUIRE(out.height == expected.shape[2]);
  REQUIRE(out.width == expected.shape[3]);
  REQUIRE(out.chw.size() == std::size_t(expected.numel()));
  ParityResult result;
  for (std::size_t i = 0; i < out.chw.size(); ++i) {
    float want = 0;
    std::memcpy(&want, expected.data + i * sizeof(float), sizeof(float));  // data may be unaligned
    const double diff = std::fabs(double(out.chw[i]) - double(want));
    result.max_abs_diff = std::max(result.max_abs_diff, diff);
    if (out.chw[i] != want) ++result.mismatches;
  }
  return result;
}

}  // namespace

TEST_CASE("CLIP preprocessing matches CLIPImageProcessor", "[unit][image]") {
  const ParityResult result = run_parity("clip");
  CAPTURE(result.max_abs_diff, result.mismatches);
  CHECK(result.max_abs_diff <= 1e-4);
  CHECK(result.mismatches == 0);  // PIL-exact resize + float32 arithmetic: bit-identical
}

TEST_CASE("the CLIP golden tells resampling filters apart", "[unit][image]") {
  // Guards the parity test itself: a near-miss filter must not pass.
  for (Resample other : {Resample::Bilinear, Resample::Lanczos, Resample::Hamming}) {
    CAPTURE(resample_name(other));
    CHECK(run_parity("clip", &other).max_abs_diff > 1e-3);
  }
}

TEST_CASE("SigLIP preprocessing matches SiglipImageProcessor", "[unit][image]") {
  const ParityResult result = run_parity("siglip");
  CAPTURE(result.max_abs_diff, result.mismatches);
  CHECK(result.max_abs_diff <= 1e-4);
  CHECK(result.mismatches == 0);
}

TEST_CASE("fixture preprocessor configs parse as HF reads them", "[unit][image]") {
  const auto clip = ImageProcessorConfig::from_file(kParityDir + "clip/preprocessor_config.json");
  CHECK(clip.image_processor_type == "CLIPImageProcessor");
  CHECK(clip.shortest_edge == 32);
  CHECK(clip.do_center_crop);
  CHECK(clip.crop_height == 32);
  CHECK(clip.crop_width == 32);
  CHECK(clip.resample == Resample::Bicubic);
  CHECK(clip.image_mean[0] == 0.48145466);
  CHECK(clip.image_std[2] == 0.27577711);
  const auto siglip = ImageProcessorConfig::from_file(kParityDir + "siglip/preprocessor_config.json");
  CHECK(siglip.shortest_edge == 0);
  CHECK(siglip.size_height == 32);
  CHECK(siglip.size_width == 32);
  CHECK_FALSE(siglip.do_center_crop);
  CHECK_FALSE(siglip.do_convert_rgb);  // null in the file: SigLIP's default (None)
  CHECK(siglip.image_mean[1] == 0.5);
}

TEST_CASE("preprocessor config errors name the file and the field", "[unit][image]") {
  auto error_of = [](const std::string& json, ErrorCode* code = nullptr) -> std::string {
    try {
      ImageProcessorConfig::from_json(json, "pp.json");
    } catch (const Error& e) {
      if (code != nullptr) *code = e.code();
      return e.what();
    }
    return "";
  };
  ErrorCode code{};
  CHECK_THAT(error_of("{", &code), Catch::Contains("pp.json: invalid JSON"));
  CHECK(code == ErrorCode::InvalidModel);
  CHECK_THAT(error_of(R"({"image_processor_type": "Qwen2VLImageProcessor"})", &code),
             Catch::Contains("'Qwen2VLImageProcessor' is not supported"));
  CHECK(code == ErrorCode::Unsupported);
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "resample": 7})", &code),
             Catch::Contains("'resample'") && Catch::Contains("unknown PIL resampling filter 7"));
  CHECK(code == ErrorCode::InvalidModel);
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "image_std": [1, 0, 1]})"),
             Catch::Contains("'image_std' must be finite and non-zero"));
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "image_mean": [1, 2]})"),
             Catch::Contains("'image_mean' must be a number or a list of 3 numbers"));
  CHECK_THAT(error_of(R"({"image_processor_type": "SiglipImageProcessor", "size": {"shortest_edge": 5}})", &code),
             Catch::Contains("'size'") && Catch::Contains("not supported for SiglipImageProcessor"));
  CHECK(code == ErrorCode::Unsupported);
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "size": {"height": 0, "width": 4}})"),
             Catch::Contains("'size.height' must be an integer in 1..65536"));
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "do_resize": "yes"})"),
             Catch::Contains("'do_resize' must be true or false"));
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "rescale_factor": -1})"),
             Catch::Contains("'rescale_factor' must be a positive number"));
  CHECK_THAT(error_of(R"({"image_processor_type": "CLIPImageProcessor", "crop_size": "big"})"),
             Catch::Contains("'crop_size' must be an integer"));
  // Legacy spelling and processor defaults.
  const auto legacy = ImageProcessorConfig::from_json(R"({"feature_extractor_type": "CLIPFeatureExtractor", "size": 224})", "pp.json");
  CHECK(legacy.image_processor_type == "CLIPImageProcessor");
  CHECK(legacy.shortest_edge == 224);
  CHECK(legacy.crop_height == 224);
  CHECK(legacy.image_mean[0] == 0.48145466);
}

TEST_CASE("shortest-edge output size truncates like HF", "[unit][image]") {
  // {height, width}
  CHECK(shortest_edge_output_size(45, 70, 32) == std::array<int, 2>{32, 49});  // 32*70/45 = 49.8
  CHECK(shortest_edge_output_size(70, 45, 32) == std::array<int, 2>{49, 32});
  CHECK(shortest_edge_output_size(100, 100, 224) == std::array<int, 2>{224, 224});
  CHECK(shortest_edge_output_size(480, 640, 224) == std::array<int, 2>{224, 298});  // 298.67
  CHECK(shortest_edge_output_size(3, 1000, 224) == std::array<int, 2>{224, 74666});
  CHECK_THROWS_AS(shortest_edge_output_size(0, 5, 3), Error);
}

TEST_CASE("center crop uses floor offsets and zero padding", "[unit][image]") {
  // 5x1 row 10..50 cropped to width 2: left = (5 - 2) // 2 = 1.
  const Image row = grey_row({10, 20, 30, 40, 50});
  CHECK(red_channel(center_crop(row, 1, 2)) == std::vector<int>{20, 30});
  // Larger than the image: left = (5 - 8) // 2 = -2, outside is black.
  CHECK(red_channel(center_crop(row, 1, 8)) == std::vector<int>{0, 0, 10, 20, 30, 40, 50, 0});
  // Height 1 -> 4: top = (1 - 4) // 2 = -2, the row lands at y = 2.
  CHECK(red_channel(center_crop(row, 4, 1)) == std::vector<int>{0, 0, 30, 0});
  CHECK_THROWS_AS(center_crop(row, 0, 1), Error);
}

TEST_CASE("rescale and normalize follow HF's float64 then float32 arithmetic", "[unit][image]") {
  const Image image = image_from_values(1, 1, {0, 128, 255});
  const FloatImage out = rescale_and_normalize(image, true, 1.0 / 255, true, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5});
  REQUIRE(out.chw.size() == 3);
  CHECK(out.chw[0] == -1.0f);
  CHECK(out.chw[1] == (static_cast<float>(128.0 / 255) - 0.5f) / 0.5f);
  CHECK(out.chw[2] == 1.0f);
  const FloatImage raw = rescale_and_normalize(image, false, 1.0, false, {0, 0, 0}, {1, 1, 1});
  CHECK(raw.chw == std::vector<float>{0.f, 128.f, 255.f});
}

TEST_CASE("Pillow resampling: box, bilinear, nearest worked examples", "[unit][image]") {
  SECTION("box 4 -> 2 averages pairs, rounding half up in each pass") {
    const Image in = grey_row({10, 21, 100, 200}, 2);
    // (10 + 21) / 2 = 15.5 -> 16; (100 + 200) / 2 = 150.
    CHECK(red_channel(resize(in, 2, 1, Resample::Box)) == std::vector<int>{16, 150});
  }
  SECTION("bilinear 2 -> 4 upsampling") {
    // Centres at 0.25, 0.75, ... of the source grid; weights 1 and 0 near the
    // edges, 0.75/0.25 inside: (0.75*0 + 0.25*200) = 50, (0.25*0 + 0.75*200) = 150.
    const Image in = grey_row({0, 200});
    CHECK(red_channel(resize(in, 4, 1, Resample::Bilinear)) == std::vector<int>{0, 50, 150, 200});
  }
  SECTION("nearest 4 -> 2 picks floor((i + 0.5) * 2)") {
    const Image in = grey_row({1, 2, 3, 4});
    CHECK(red_channel(resize(in, 2, 1, Resample::Nearest)) == std::vector<int>{2, 4});
    CHECK(red_channel(resize(in, 8, 1, Resample::Nearest)) == std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4});
  }
  SECTION("source box selects a region") {
    const Image in = grey_row({1, 2, 3, 4, 5, 6});
    Box box;
    box.x0 = 2;
    box.x1 = 4;
    box.y1 = 1;
    // An integral box of the output size is a crop.
    CHECK(red_channel(resize(in, 2, 1, Resample::Bicubic, box)) == std::vector<int>{3, 4});
    CHECK(red_channel(resize(in, 1, 1, Resample::Box, box)) == std::vector<int>{4});  // (3 + 4) / 2 = 3.5 -> 4
  }
}

TEST_CASE("every filter keeps flat images flat and sizes right", "[unit][image]") {
  std::vector<int> rgb;
  for (int i = 0; i < 13 * 7; ++i) rgb.insert(rgb.end(), {0, 255, 77});
  const Image flat = image_from_values(13, 7, rgb);
  for (Resample filter : {Resample::Nearest, Resample::Lanczos, Resample::Bilinear, Resample::Bicubic,
                          Resample::Box, Resample::Hamming}) {
    CAPTURE(resample_name(filter));
    for (auto [w, h] : {std::pair{5, 3}, std::pair{30, 17}, std::pair{13, 2}, std::pair{1, 1}}) {
      const Image out = resize(flat, w, h, filter);
      REQUIRE(out.width == w);
      REQUIRE(out.height == h);
      for (std::size_t i = 0; i < out.rgb.size(); i += 3) {
        REQUIRE(out.rgb[i] == 0);
        REQUIRE(out.rgb[i + 1] == 255);
        REQUIRE(out.rgb[i + 2] == 77);
      }
    }
  }
}

TEST_CASE("resize rejects bad arguments", "[unit][image]") {
  const Image in = grey_row({1, 2, 3});
  CHECK_THROWS_AS(resize(in, 0, 1, Resample::Bilinear), Error);
  CHECK_THROWS_AS(resize(Image{}, 1, 1, Resample::Bilinear), Error);
  Box outside;
  outside.x1 = 4;
  outside.y1 = 1;
  CHECK_THROWS_AS(resize(in, 2, 1, Resample::Bilinear, outside), Error);
  CHECK_THROWS_AS(resample_from_pil_code(6), Error);
  CHECK(resample_from_pil_code(1) == Resample::Lanczos);
  // Same size: unchanged.
  CHECK(resize(in, 3, 1, Resample::Lanczos).rgb == in.rgb);
}
