// SHA-256 (FIPS 180-4), for content hashes in verdicts and cache keys.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace imgjudge::util {

class Sha256 {
 public:
  Sha256();
  Sha256& update(const void* data, std::size_t size);
  Sha256& update(std::string_view text) { return update(text.data(), text.size()); }
  std::array<std::uint8_t, 32> digest();  ///< Finishes; the object must not be updated again.
  std::string hex_digest();               ///< digest() as 64 lower-case hex digits.

 private:
  void compress(const std::uint8_t* block);
  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

inline std::string sha256_hex(std::string_view text) { return Sha256().update(text).hex_digest(); }

}  // namespace imgjudge::util
