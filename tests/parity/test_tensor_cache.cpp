// The caching CPU allocator (runtime/tensor_cache.hpp): large blocks are
// reused by size class, small ones are not kept, the idle bytes stay bounded,
// and an impossible allocation is an OutOfMemory error, not a crash.
#include "torch_catch.hpp"

#include "imgjudge/error.hpp"
#include "runtime/tensor_cache.hpp"

using namespace imgjudge;

TEST_CASE("tensor cache: large blocks are reused, small ones go back to the system", "[parity][tensor_cache]") {
  runtime::install_tensor_cache();
  runtime::install_tensor_cache();  // idempotent
  runtime::release_tensor_cache();
  const auto before = runtime::tensor_cache_stats();
  REQUIRE(before.installed);
  REQUIRE(before.idle_bytes == 0);
  if (before.limit_bytes < (std::size_t{8} << 20)) {
    WARN("IMGJUDGE_TENSOR_CACHE_MB below 8: caching is (nearly) off here");
    return;
  }

  const void* first = nullptr;
  {
    const at::Tensor big = at::empty({(1 << 20) + 100000}, at::kFloat);  // 4.4 MiB: class 5 MiB
    first = big.data_ptr();
    CHECK(reinterpret_cast<std::uintptr_t>(first) % 64 == 0);
  }
  auto idle = runtime::tensor_cache_stats();
  CHECK(idle.idle_blocks == before.idle_blocks + 1);
  CHECK(idle.idle_bytes >= (std::size_t{4} << 20));
  {
    // Another size of the same class (4 MiB .. 5 MiB) gets the same block back.
    const at::Tensor again = at::empty({(1 << 20) + 200000}, at::kFloat);  // 4.8 MiB
    CHECK(again.data_ptr() == first);
    const auto during = runtime::tensor_cache_stats();
    CHECK(during.reused == idle.reused + 1);
    CHECK(during.idle_bytes == idle.idle_bytes - (std::size_t{5} << 20));
    // Tensor contents are the caller's: a reused block works like a fresh one.
    at::Tensor filled = at::arange(1 << 20, at::kFloat);
    CHECK(filled[12345].item<float>() == 12345.f);
  }
  {
    const at::Tensor small = at::empty({1000}, at::kFloat);  // 4 KB: not cached
    (void)small;
  }
  CHECK(runtime::tensor_cache_stats().idle_blocks == idle.idle_blocks + 1);  // the arange block joined

  runtime::release_tensor_cache();
  CHECK(runtime::tensor_cache_stats().idle_bytes == 0);
  CHECK(runtime::tensor_cache_stats().idle_blocks == 0);
}

TEST_CASE("tensor cache: idle bytes never pass the limit", "[parity][tensor_cache]") {
  runtime::install_tensor_cache();
  runtime::release_tensor_cache();
  const std::size_t limit = runtime::tensor_cache_stats().limit_bytes;
  {
    // Twice the limit in 1 MiB tensors, all freed together.
    std::vector<at::Tensor> tensors;
    for (std::size_t held = 0; held < 2 * limit + (std::size_t{1} << 20); held += std::size_t{1} << 20) {
      tensors.push_back(at::empty({1 << 18}, at::kFloat));
    }
  }
  CHECK(runtime::tensor_cache_stats().idle_bytes <= limit);
  runtime::release_tensor_cache();
}

TEST_CASE("tensor cache: an impossible allocation is OutOfMemory and names the size", "[parity][tensor_cache]") {
  runtime::install_tensor_cache();
  try {
    const at::Tensor huge = at::empty({std::int64_t{1} << 47}, at::kByte);  // 128 TiB
    FAIL("allocated 128 TiB");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::OutOfMemory);
    CHECK_THAT(e.what(), Catch::Contains("MiB for a tensor"));
  }
  // The allocator still works.
  CHECK(at::ones({1 << 20}, at::kFloat).sum().item<float>() == float(1 << 20));
}
