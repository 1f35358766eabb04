#include "devtools/locator_probe.hpp"

#include <chrono>

#include "imgjudge/backend.hpp"
#include "models/families.hpp"
#include "models/owl.hpp"
#include "models/processors/owl_processor.hpp"
#include "runtime/device.hpp"
#include "util/files.hpp"

namespace imgjudge::devtools {
namespace {

// FLOPs of one ViT pass over `tokens` tokens: per layer the q/k/v/o
// projections (4 d^2), the MLP (2 d f) and attention (QK^T and PV: 2 T^2 d),
// two FLOPs per multiply-add. Norms, activations and the heads are ignored.
double vit_flops(const models::VitConfig& vision, double tokens) {
  const double d = double(vision.encoder.hidden_size), f = double(vision.encoder.intermediate_size);
  const double per_layer = 2 * tokens * (4 * d * d + 2 * d * f) + 2 * 2 * tokens * tokens * d;
  return per_layer * double(vision.encoder.num_layers);
}

}  // namespace

LocatorComponents probe_locator(const std::string& model_dir, const std::string& dtype, const Image& image,
                                const std::vector<std::string>& phrases, int repetitions) {
  LocatorComponents out;
  const models::owl::Config config = models::owl::load_config(model_dir);
  out.model_type = config.model_type;
  out.image_size = config.vision.image_size;
  out.patch_size = config.vision.patch_size;
  out.vision_width = config.vision.encoder.hidden_size;
  out.vision_intermediate = config.vision.encoder.intermediate_size;

  models::LoadOptions options;
  options.target = runtime::resolve_device({"cpu", dtype, 0});
  const auto started = std::chrono::steady_clock::now();
  const auto locator = models::require_family(config.model_type, models::FamilyRole::Locator, model_dir)
                           .load_locator(model_dir, options);
  out.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const auto processor =
      models::OwlImageProcessorConfig::from_file(util::join_path(model_dir, "preprocessor_config.json"));
  out.preprocess.tokens = std::int64_t(image.width) * image.height;  // input pixels
  out.preprocess.seconds = median_seconds(repetitions, [&] { models::owl_preprocess(image, processor); });

  const CallContext call;
  const std::int64_t patches = config.vision.grid() * config.vision.grid();
  out.encode.tokens = patches;
  out.encode.flops = vit_flops(config.vision, double(patches + 1));  // + the class token
  std::shared_ptr<const LocatorImage> encoded;
  out.encode.seconds = median_seconds(repetitions, [&] { encoded = locator->prepare(image, call); });

  std::shared_ptr<const LocatorQueries> queries;
  out.embed_phrases.tokens = std::int64_t(phrases.size());
  out.embed_phrases.seconds = median_seconds(repetitions, [&] { queries = locator->embed_queries(phrases, call); });

  std::vector<std::size_t> all(phrases.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  out.locate.tokens = std::int64_t(phrases.size());
  out.locate.seconds = median_seconds(repetitions, [&] { locator->locate(*encoded, *queries, all, 0.05, call); });
  return out;
}

}  // namespace imgjudge::devtools
