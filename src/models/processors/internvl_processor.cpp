#include "models/processors/internvl_processor.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "image/resize.hpp"
#include "imgjudge/error.hpp"
#include "runtime/config.hpp"

namespace imgjudge::models {
namespace {

// A bound on the tile count: the candidate set grows as max * log(max), and
// every tile is a full ViT pass.
constexpr std::int64_t kMaxTiles = 1024;

std::int64_t positive(const runtime::HfConfig& config, const char* key, std::int64_t fallback) {
  const std::int64_t value = config.get_int(key, fallback);
  if (value <= 0) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: '{}' must be a positive integer, found {}", config.file(), config.qualified(key), value));
  }
  return value;
}

// CPython's hash of a 2-tuple of small non-negative ints (Objects/tupleobject.c,
// the xxHash-based tuplehash of 3.8+; hash(i) == i for such ints).
std::uint64_t python_tuple_hash(std::uint64_t first, std::uint64_t second) {
  constexpr std::uint64_t kPrime1 = 11400714785074694791ULL, kPrime2 = 14029467366897019727ULL;
  constexpr std::uint64_t kPrime5 = 2870177450012600261ULL;
  std::uint64_t acc = kPrime5;
  for (const std::uint64_t lane : {first, second}) {
    acc += lane * kPrime2;
    acc = (acc << 31) | (acc >> 33);
    acc *= kPrime1;
  }
  acc += 2 ^ (kPrime5 ^ 3527539ULL);
  return acc == ~std::uint64_t{0} ? 1546275796 : acc;
}

// The slot order of a CPython set (Objects/setobject.c: 8 slots to start,
// linear probes of 9 then perturbed jumps, resized to 4x `used` when 3/5
// full) after adding `keys` in order; duplicates are ignored.
std::vector<std::array<std::int64_t, 2>> python_set_order(const std::vector<std::array<std::int64_t, 2>>& keys) {
  struct Slot {
    bool used = false;
    std::array<std::int64_t, 2> key{};
    std::uint64_t hash = 0;
  };
  constexpr std::size_t kLinearProbes = 9;
  std::vector<Slot> table(8);
  std::size_t mask = 7, fill = 0;
  const auto insert_clean = [](std::vector<Slot>& slots, std::size_t slot_mask, const Slot& entry) {
    std::uint64_t perturb = entry.hash;
    std::size_t i = entry.hash & slot_mask;
    while (true) {
      if (!slots[i].used) {
        slots[i] = entry;
        return;
      }
      if (i + kLinearProbes <= slot_mask) {
        for (std::size_t j = 1; j <= kLinearProbes; ++j) {
          if (!slots[i + j].used) {
            slots[i + j] = entry;
            return;
          }
        }
      }
      perturb >>= 5;
      i = (i * 5 + 1 + perturb) & slot_mask;
    }
  };
  for (const auto& key : keys) {
    const std::uint64_t hash = python_tuple_hash(static_cast<std::uint64_t>(key[0]), static_cast<std::uint64_t>(key[1]));
    std::uint64_t perturb = hash;
    std::size_t i = hash & mask;
    std::size_t free_slot = 0;
    bool present = false;
    for (bool placed = false; !placed;) {
      // The slot itself, then up to 9 more when they fit before the end.
      const std::size_t probes = i + kLinearProbes <= mask ? kLinearProbes : 0;
      for (std::size_t k = i; k <= i + probes; ++k) {
        if (!table[k].used) {
          free_slot = k;
          placed = true;
          break;
        }
        if (table[k].hash == hash && table[k].key == key) {
          present = placed = true;
          break;
        }
      }
      perturb >>= 5;
      i = (i * 5 + 1 + perturb) & mask;
    }
    if (present) continue;
    table[free_slot] = Slot{true, key, hash};
    if (++fill * 5 < mask * 3) continue;
    std::size_t size = 8;
    while (size <= fill * 4) size <<= 1;
    std::vector<Slot> grown(size);
    for (const Slot& slot : table) {
      if (slot.used) insert_clean(grown, size - 1, slot);
    }
    table.swap(grown);
    mask = size - 1;
  }
  std::vector<std::array<std::int64_t, 2>> order;
  for (const Slot& slot : table) {
    if (slot.used) order.push_back(slot.key);
  }
  return order;
}

// rows [top, top + size) x columns [left, left + size) of `image`.
Image crop_square(const Image& image, int left, int top, int size) {
  Image out;
  out.width = out.height = size;
  out.rgb.resize(static_cast<std::size_t>(size) * static_cast<std::size_t>(size) * 3);
  for (int y = 0; y < size; ++y) {
    const auto* from = image.rgb.data() + (static_cast<std::size_t>(top + y) * image.width + left) * 3;
    std::copy(from, from + static_cast<std::size_t>(size) * 3, out.rgb.data() + static_cast<std::size_t>(y) * size * 3);
  }
  return out;
}

// torchvision ToTensor + Normalize(IMAGENET_MEAN, IMAGENET_STD) of a PIL RGB
// image: uint8 -> float32 / 255, then (x - mean) / std, in libtorch's float32
// kernels as the reference ran them. [3, H, W].
at::Tensor to_normalized_tensor(const Image& image) {
  const at::Tensor bytes = at::from_blob(const_cast<std::uint8_t*>(image.rgb.data()), {image.height, image.width, 3}, at::kByte);
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  return bytes.permute({2, 0, 1}).to(at::kFloat).div(255).sub(mean).div(std);
}

}  // namespace

InternVLProcessorConfig InternVLProcessorConfig::from_config(const runtime::HfConfig& config) {
  InternVLProcessorConfig c;
  const runtime::HfConfig vision = config.section("vision_config");
  c.tile_size = config.has("force_image_size") ? positive(config, "force_image_size", 0)
                                               : positive(vision, "image_size", 224);  // InternVisionConfig default
  c.dynamic = config.get_bool("dynamic_image_size", false);
  c.min_tiles = positive(config, "min_dynamic_patch", 1);
  c.max_tiles = positive(config, "max_dynamic_patch", 6);
  c.use_thumbnail = config.get_bool("use_thumbnail", false);
  if (c.dynamic && (c.min_tiles > c.max_tiles || c.max_tiles > kMaxTiles)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: min_dynamic_patch {} .. max_dynamic_patch {} must be a range of at most {} tiles",
                            config.file(), c.min_tiles, c.max_tiles, kMaxTiles));
  }
  return c;
}

std::vector<std::array<std::int64_t, 2>> internvl_candidate_grids(std::int64_t min_tiles, std::int64_t max_tiles) {
  // set((i, j) for n in range(min, max + 1) for i in range(1, n + 1)
  //     for j in range(1, n + 1) if min <= i * j <= max), in generation order.
  std::vector<std::array<std::int64_t, 2>> generated;
  for (std::int64_t n = min_tiles; n <= max_tiles; ++n) {
    for (std::int64_t i = 1; i <= n; ++i) {
      for (std::int64_t j = 1; j <= n; ++j) {
        if (i * j >= min_tiles && i * j <= max_tiles) generated.push_back({i, j});
      }
    }
  }
  std::vector<std::array<std::int64_t, 2>> grids = python_set_order(generated);
  std::stable_sort(grids.begin(), grids.end(),
                   [](const auto& a, const auto& b) { return a[0] * a[1] < b[0] * b[1]; });
  return grids;
}

std::array<std::int64_t, 2> internvl_tile_grid(std::int64_t width, std::int64_t height,
                                               const InternVLProcessorConfig& config) {
  const std::vector<std::array<std::int64_t, 2>> grids = internvl_candidate_grids(config.min_tiles, config.max_tiles);
  if (grids.empty() || width <= 0 || height <= 0) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("InternVL tiling: no grid of {}..{} tiles for a {}x{} image", config.min_tiles,
                            config.max_tiles, width, height));
  }
  const double aspect_ratio = static_cast<double>(width) / static_cast<double>(height);
  const double area = static_cast<double>(width * height);
  const double tile_area = static_cast<double>(config.tile_size) * static_cast<double>(config.tile_size);
  double best_diff = std::numeric_limits<double>::infinity();
  std::array<std::int64_t, 2> best{1, 1};
  for (const auto& grid : grids) {
    const double diff = std::abs(aspect_ratio - static_cast<double>(grid[0]) / static_cast<double>(grid[1]));
    if (diff < best_diff) {
      best_diff = diff;
      best = grid;
    } else if (diff == best_diff && area > 0.5 * tile_area * static_cast<double>(grid[0] * grid[1])) {
      // An equally close grid later in the order (more tiles) wins when the
      // image has more than half of its pixels.
      best = grid;
    }
  }
  return best;
}

at::Tensor internvl_preprocess(const Image& image, const InternVLProcessorConfig& config) {
  if (image.empty()) throw Error(ErrorCode::InvalidImage, "InternVL image processor: empty image");
  const int tile = static_cast<int>(config.tile_size);
  std::vector<at::Tensor> tiles;
  if (!config.dynamic) {
    // build_transform alone: T.Resize((T, T), BICUBIC).
    tiles.push_back(to_normalized_tensor(image::resize(image, tile, tile, image::Resample::Bicubic)));
    return at::stack(tiles);
  }
  const auto [columns, rows] = internvl_tile_grid(image.width, image.height, config);
  const Image resized =
      image::resize(image, static_cast<int>(columns) * tile, static_cast<int>(rows) * tile, image::Resample::Bicubic);
  for (std::int64_t k = 0; k < columns * rows; ++k) {
    tiles.push_back(to_normalized_tensor(
        crop_square(resized, static_cast<int>(k % columns) * tile, static_cast<int>(k / columns) * tile, tile)));
  }
  // The transform's own Resize((T, T)) leaves T x T tiles as they are.
  if (config.use_thumbnail && tiles.size() != 1) {
    tiles.push_back(to_normalized_tensor(image::resize(image, tile, tile, image::Resample::Bicubic)));
  }
  return at::stack(tiles);
}

}  // namespace imgjudge::models
