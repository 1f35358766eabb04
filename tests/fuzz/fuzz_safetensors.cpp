// safetensors header parsing: SafetensorsFile::from_bytes on untrusted bytes.
// Every view it accepts must lie inside the buffer with byte_size equal to
// numel * dtype size; ASan checks the spans by touching their first and last byte.
// Seeds: tests/fuzz/corpus/safetensors (tests/data/hostile/safetensors + small valid files).
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "runtime/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imgjudge;
  fuzz::expect_only_imgjudge_errors([&] {
    const auto file = runtime::SafetensorsFile::from_bytes(data, size, "fuzz.safetensors");
    volatile std::uint8_t sink = 0;
    for (const auto& [name, view] : file->tensors()) {
      fuzz::require(name == view.name, "map key != view name");
      fuzz::require(view.numel() >= 0, "negative numel");
      fuzz::require(view.byte_size == std::size_t(view.numel()) * runtime::dtype_size(view.dtype),
                    "byte_size != numel * dtype size");
      if (view.byte_size > 0) {
        sink = sink + view.data[0] + view.data[view.byte_size - 1];
      }
      // at() and contains() agree with the map.
      fuzz::require(&file->at(name) == &view && file->contains(name), "at()/contains() disagree");
    }
    (void)sink;
  });
  return 0;
}
