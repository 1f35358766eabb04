// C API: imgjudge_constitution_load_string on untrusted bytes (embedded NULs
// included: the length, not a terminator, bounds the text), then every
// accessor of the handle it returns.
// Seeds: tests/fuzz/corpus/capi_constitution.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "capi_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using imgjudge::fuzz::check_status;
  using imgjudge::fuzz::require;
  imgjudge_constitution* constitution = reinterpret_cast<imgjudge_constitution*>(0x1);
  const imgjudge_status status = imgjudge_constitution_load_string(
      &constitution, reinterpret_cast<const char*>(data), size, "fuzz.toml");
  check_status(status, "imgjudge_constitution_load_string");
  if (status != IMGJUDGE_OK) {
    require(constitution == nullptr, "failed load left *out non-NULL");
    return 0;
  }
  std::size_t count = 0;
  check_status(imgjudge_constitution_rule_count(&count, constitution), "rule_count");
  require(count > 0, "a loaded constitution has no rules");
  for (std::size_t i = 0; i < count; ++i) {
    const char* id = nullptr;
    check_status(imgjudge_constitution_rule_id(&id, constitution, i), "rule_id");
    require(id != nullptr && std::strlen(id) > 0, "empty rule id");
  }
  const char* id = nullptr;
  require(imgjudge_constitution_rule_id(&id, constitution, count) == IMGJUDGE_INVALID_ARGUMENT,
          "rule_id past the end is not INVALID_ARGUMENT");
  const char* hash = nullptr;
  check_status(imgjudge_constitution_hash(&hash, constitution), "hash");
  require(hash != nullptr && std::strncmp(hash, "sha256:", 7) == 0, "hash without sha256: prefix");
  imgjudge_constitution_free(constitution);
  return 0;
}
