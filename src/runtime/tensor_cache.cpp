#include "runtime/tensor_cache.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::runtime {
namespace {

// Every block starts with this header (keeps the data 64-byte aligned, as
// libtorch's own allocator does): the block's size class, or 0 for a block
// too small to cache.
constexpr std::size_t kHeader = 64;
constexpr std::size_t kSmallest = std::size_t{128} << 10;
constexpr std::uint64_t kMagic = 0x696d676a75646765;  // "imgjudge"

struct Header {
  std::size_t size_class;
  std::uint64_t magic;
};
static_assert(sizeof(Header) <= kHeader);

// Four classes per power of two (2^k x 1, 1.25, 1.5, 1.75): at most 25% unused.
std::size_t size_class(std::size_t bytes) {
  if (bytes < kSmallest) return 0;
  std::size_t power = kSmallest;
  while (power * 2 <= bytes) power *= 2;
  const std::size_t step = power / 4;
  return (bytes + step - 1) / step * step;
}

std::size_t default_limit() {
  if (const char* text = std::getenv("IMGJUDGE_TENSOR_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long megabytes = std::strtoull(text, &end, 10);
    if (end != text && *end == '\0') return static_cast<std::size_t>(megabytes) << 20;
    // An unreadable value keeps the default rather than failing a model load.
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const std::size_t ram = pages > 0 && page > 0 ? std::size_t(pages) * std::size_t(page) : std::size_t{16} << 30;
  return std::min(std::size_t{1} << 30, ram / 16);
}

class TensorCache final : public c10::Allocator {
 public:
  explicit TensorCache(std::size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(std::size_t bytes) const override {
    if (bytes == 0) return {nullptr, nullptr, &release, c10::Device(c10::DeviceType::CPU)};
    const std::size_t cls = limit_ > 0 ? size_class(bytes) : 0;
    void* block = nullptr;
    if (cls != 0) block = take(cls);
    if (block == nullptr) block = allocate_block(cls != 0 ? cls : bytes);
    auto* header = static_cast<Header*>(block);
    header->size_class = cls;
    header->magic = kMagic;
    void* data = static_cast<char*>(block) + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  TensorCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    TensorCacheStats s;
    s.installed = true;
    s.limit_bytes = limit_;
    s.idle_bytes = idle_bytes_;
    for (const auto& [cls, blocks] : idle_) s.idle_blocks += blocks.size();
    s.reused = reused_;
    s.allocated = allocated_;
    return s;
  }

  void release_idle() const {
    std::unordered_map<std::size_t, std::vector<void*>> idle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle.swap(idle_);
      idle_bytes_ = 0;
    }
    for (auto& [cls, blocks] : idle) {
      for (void* block : blocks) c10::free_cpu(block);
    }
  }

  static TensorCache* instance;

 private:
  void* take(std::size_t cls) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = idle_.find(cls);
    if (it == idle_.end() || it->second.empty()) {
      ++allocated_;
      return nullptr;
    }
    void* block = it->second.back();
    it->second.pop_back();
    idle_bytes_ -= cls;
    ++reused_;
    return block;
  }

  void* allocate_block(std::size_t bytes) const {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        return c10::alloc_cpu(bytes + kHeader);
      } catch (const c10::Error&) {
        // Out of memory (or an allocation limit): drop what sits idle, then retry once.
      } catch (const std::bad_alloc&) {
      }
      release_idle();
    }
    throw Error(ErrorCode::OutOfMemory,
                fmt::format("cannot allocate {} MiB for a tensor", (bytes + (std::size_t{1} << 20) - 1) >> 20));
  }

  // Returns the block to its class's list, or to the system when it is not
  // cacheable or the idle bytes would pass the limit.
  static void release(void* data) {
    if (data == nullptr) return;
    void* block = static_cast<char*>(data) - kHeader;
    const auto* header = static_cast<const Header*>(block);
    const std::size_t cls = header->size_class;
    if (cls != 0 && instance != nullptr) {
      TensorCache& cache = *instance;
      std::lock_guard<std::mutex> lock(cache.mutex_);
      if (cache.idle_bytes_ + cls <= cache.limit_) {
        try {
          cache.idle_[cls].push_back(block);
          cache.idle_bytes_ += cls;
          return;
        } catch (const std::bad_alloc&) {
          // No room to remember it: give it back below.
        }
      }
    }
    c10::free_cpu(block);
  }

  const std::size_t limit_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::size_t, std::vector<void*>> idle_;
  mutable std::size_t idle_bytes_ = 0;
  mutable std::uint64_t reused_ = 0, allocated_ = 0;
};

TensorCache* TensorCache::instance = nullptr;

}  // namespace

void install_tensor_cache() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Never destroyed: tensors may be freed during static destruction.
    TensorCache::instance = new TensorCache(default_limit());
    c10::SetCPUAllocator(TensorCache::instance, /*priority=*/1);
  });
}

TensorCacheStats tensor_cache_stats() {
  return TensorCache::instance != nullptr ? TensorCache::instance->stats() : TensorCacheStats{};
}

void release_tensor_cache() {
  if (TensorCache::instance != nullptr) TensorCache::instance->release_idle();
}

}  // namespace imgjudge::runtime
