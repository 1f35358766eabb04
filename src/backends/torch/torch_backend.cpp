#include "backends/torch/torch_backend.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>

#include "backends/torch/vlm.hpp"
#include "imgjudge/error.hpp"
#include "models/families.hpp"
#include "runtime/device.hpp"

namespace imgjudge::backends::torch {
namespace {

// ModelConfig::image_memory_mb in bytes; its default is half the physical
// memory, at most 8 GiB (Qwen2-VL-2B at its published max_pixels needs ~3.6 GiB).
std::uint64_t image_memory_budget(const ModelConfig& config) {
  if (config.image_memory_mb > 0) return config.image_memory_mb << 20;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t half = pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) / 2
                                                   : std::uint64_t{8} << 30;
  return std::min<std::uint64_t>(half, std::uint64_t{8} << 30);
}

}  // namespace

Models load_models(const ModelConfig& config) {
  if (config.model_dir.empty()) {
    throw Error(ErrorCode::InvalidArgument, "torch backend: no model folder given (--model DIR)");
  }
  models::LoadOptions options;
  options.target = runtime::resolve_device(runtime::DeviceOptions{config.device, config.dtype, config.threads});
  const std::string dtype_label = options.target.linear_format == runtime::LinearFormat::Int8
                                      ? "int8"
                                      : runtime::dtype_label(options.target.dtype);
  Models loaded;
  const models::Family& lm = models::require_family(models::read_model_type(config.model_dir),
                                                    models::FamilyRole::VisionLanguage, config.model_dir);
  loaded.vlm = std::make_shared<const MultimodalJudge>(lm.load_lm(config.model_dir, options), dtype_label,
                                                       image_memory_budget(config));
  if (!config.relevance_model_dir.empty()) {
    const models::Family& relevance = models::require_family(models::read_model_type(config.relevance_model_dir),
                                                             models::FamilyRole::Relevance, config.relevance_model_dir);
    loaded.relevance = relevance.load_relevance(config.relevance_model_dir, options);
  }
  if (!config.locator_model_dir.empty()) {
    const models::Family& locator = models::require_family(models::read_model_type(config.locator_model_dir),
                                                           models::FamilyRole::Locator, config.locator_model_dir);
    loaded.locator = locator.load_locator(config.locator_model_dir, options);
  }
#if defined(__GLIBC__)
  // Loading runs every tensor through temporaries (dtype conversion, int8
  // packing); give the freed heap back so resident memory is the weights.
  malloc_trim(0);
#endif
  return loaded;
}

}  // namespace imgjudge::backends::torch
