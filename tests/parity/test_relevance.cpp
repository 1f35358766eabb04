// RelevanceModel over random CLIP/SigLIP folders written by make_random_model
// (real tokenizer files, family-derived parameter lists).
#include "torch_catch.hpp"

#include <filesystem>
#include <unistd.h>

#include "models/relevance.hpp"
#include "runtime/device.hpp"
#include "image/preprocess.hpp"
#include "models/clip.hpp"
#include "devtools/random_models.hpp"
#include "runtime/safetensors.hpp"

using namespace imgjudge;

namespace {

std::string make_folder(const std::string& family, std::uint64_t seed) {
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("imgjudge_rel_" + family + "_" + std::to_string(::getpid()))).string();
  devtools::RandomModelRequest request;
  request.config_path = std::string(IMGJUDGE_TEST_DATA_DIR) + "/parity/" + family + "/config.json";
  request.tokenizer_dir = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/clip";
  request.out_dir = out;
  request.seed = seed;
  devtools::make_random_model(request);
  return out;
}

Image test_image() {
  Image image;
  image.width = 50;
  image.height = 40;
  image.rgb.resize(50 * 40 * 3);
  for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>((i * 37) % 251);
  return image;
}

double dot(const Embedding& a, const Embedding& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

void check_relevance_model(const RelevanceModel& model, std::size_t dim) {
  const CallContext call;
  const auto batch = model.embed_texts({"a photo of a cat", "a gun", "a photo of a cat on a sofa in the sun"}, call);
  REQUIRE(batch.size() == 3);
  for (const auto& e : batch) {
    REQUIRE(e.size() == dim);
    CHECK(dot(e, e) == Approx(1.0).epsilon(1e-5));
  }
  // Padding in a batch must not change an embedding.
  const auto single = model.embed_texts({"a gun"}, call);
  CHECK(dot(single[0], batch[1]) == Approx(1.0).epsilon(1e-5));
  CHECK(dot(batch[0], batch[1]) < 0.9999);
  const Embedding image = model.embed_image(test_image(), call);
  REQUIRE(image.size() == dim);
  CHECK(dot(image, image) == Approx(1.0).epsilon(1e-5));
}

}  // namespace

TEST_CASE("CLIP relevance model: unit embeddings, padding-invariant, image path", "[parity][relevance]") {
  at::set_num_threads(1);
  const std::string dir = make_folder("clip", 7);
  models::LoadOptions options;
  options.target = runtime::resolve_device({"cpu", "float32", 1});
  const auto model = models::load_clip_relevance_model(dir, options);
  CHECK(model->model_id() == "clip:" + dir);
  check_relevance_model(*model, 24);
  // The image embedding is the model's own projection of the processed pixels.
  const auto clip = models::clip::ClipModel(
      models::clip::load_config(dir),
      runtime::WeightStore(runtime::SafetensorsCheckpoint::open_folder(dir), at::kFloat, at::kCPU));
  auto pixels = image::preprocess(test_image(), image::ImageProcessorConfig::from_file(dir + "/preprocessor_config.json"));
  const at::Tensor features =
      clip.encode_image(at::from_blob(pixels.chw.data(), {1, 3, pixels.height, pixels.width}, at::kFloat)).features;
  const at::Tensor expected = features / features.norm();
  const Embedding got = model->embed_image(test_image(), {});
  CHECK(at::allclose(at::tensor(got).view({1, -1}), expected, 1e-5, 1e-6));
  std::filesystem::remove_all(dir);
}

TEST_CASE("SigLIP relevance model: unit embeddings, padding-invariant, image path", "[parity][relevance]") {
  at::set_num_threads(1);
  const std::string dir = make_folder("siglip", 11);
  models::LoadOptions options;
  options.target = runtime::resolve_device({"cpu", "bfloat16", 1});  // the fast CPU path must work too
  const auto model = models::load_siglip_relevance_model(dir, options);
  const CallContext call;
  const auto texts = model->embed_texts({"a photo of a cat", "a gun"}, call);
  REQUIRE(texts.size() == 2);
  CHECK(texts[0].size() == 32);
  CHECK(dot(texts[0], texts[0]) == Approx(1.0).epsilon(1e-3));
  CHECK(model->embed_image(test_image(), call).size() == 32);
  std::filesystem::remove_all(dir);
}

TEST_CASE("make_random_model: deterministic for a seed, vocab follows the tokenizer", "[parity][relevance]") {
  const std::string a = make_folder("clip", 5);
  const auto file = runtime::SafetensorsFile::open(a + "/model.safetensors");
  const auto& embedding = file->at("text_model.embeddings.token_embedding.weight");
  CHECK(embedding.shape == std::vector<std::int64_t>{49408, 32});
  CHECK(std::filesystem::exists(a + "/vocab.json"));
  CHECK(std::filesystem::exists(a + "/preprocessor_config.json"));
  const std::vector<std::uint8_t> first(embedding.data, embedding.data + embedding.byte_size);
  std::filesystem::remove_all(a);
  const std::string b = make_folder("clip", 5);
  const auto again = runtime::SafetensorsFile::open(b + "/model.safetensors");
  const auto& e2 = again->at("text_model.embeddings.token_embedding.weight");
  CHECK(std::equal(first.begin(), first.end(), e2.data));
  std::filesystem::remove_all(b);
}
