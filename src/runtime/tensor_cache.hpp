// A caching allocator for CPU tensors (process-wide, installed once when a
// torch model is first loaded).
//
// Why: a forward pass allocates and frees the same large temporaries (a score
// block, an MLP activation of [tokens, 4 x width]) layer after layer, image
// after image. glibc serves big blocks with fresh mmap()s and gives them back
// on free, so every pass pays a page fault per 4 KiB on first touch; on the
// VMs this library runs in (and any machine with free-page reporting) that
// costs more than the arithmetic: a 16 MiB float32 softmax takes 60 ms on a
// fresh buffer and 2.8 ms on a reused one. Blocks of 128 KiB and more are
// therefore kept, by size class, for the next allocation of their class.
//
// Bounds: at most `limit` bytes sit idle in the cache (IMGJUDGE_TENSOR_CACHE_MB,
// default min(1 GiB, RAM / 16); 0 turns caching off); a block that does not
// fit is freed at once. When an allocation fails the cache is emptied and the
// allocation retried; if it still fails, Error(OutOfMemory) names the size.
#pragma once

#include <cstddef>
#include <cstdint>

namespace imgjudge::runtime {

struct TensorCacheStats {
  bool installed = false;
  std::size_t limit_bytes = 0;   ///< Most idle bytes kept.
  std::size_t idle_bytes = 0;    ///< Held for reuse now.
  std::size_t idle_blocks = 0;
  std::uint64_t reused = 0;      ///< Allocations served from the cache.
  std::uint64_t allocated = 0;   ///< Allocations of cacheable size that went to the system.
};

/// Installs the allocator as libtorch's CPU allocator; later calls do nothing.
/// Tensors allocated before keep their own deleter.
void install_tensor_cache();

TensorCacheStats tensor_cache_stats();

/// Frees every idle block (tensors in use are not touched).
void release_tensor_cache();

}  // namespace imgjudge::runtime
