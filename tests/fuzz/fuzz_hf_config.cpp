// Hugging Face config.json: HfConfig::load on untrusted bytes, then every
// typed getter on every key, recursively, as the model families call them.
// Wrong types must be Error(InvalidModel), never a json exception or UB.
// Seeds: tests/fuzz/corpus/hf_config (the parity models' config.json files).
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "runtime/config.hpp"

namespace {

using imgjudge::fuzz::expect_only_imgjudge_errors;
using imgjudge::runtime::HfConfig;

void probe(const HfConfig& config, int depth) {
  if (depth > 8) return;  // getters are per level; deeper levels add nothing new
  for (const auto& item : config.json().items()) {
    const std::string& key = item.key();
    expect_only_imgjudge_errors([&] { (void)config.get_int(key); });
    expect_only_imgjudge_errors([&] { (void)config.get_int(key, 7); });
    expect_only_imgjudge_errors([&] { (void)config.get_double(key, 0.5); });
    expect_only_imgjudge_errors([&] { (void)config.get_bool(key, false); });
    expect_only_imgjudge_errors([&] { (void)config.get_string(key, "fallback"); });
    expect_only_imgjudge_errors([&] { (void)config.get_doubles(key, {}); });
    expect_only_imgjudge_errors([&] { probe(config.section(key), depth + 1); });
  }
  // Absent keys: required getters fail with a message, optional ones fall back.
  expect_only_imgjudge_errors([&] { (void)config.get_string("no such key"); });
  imgjudge::fuzz::require(config.get_int("no such key", 42) == 42 || config.has("no such key"),
                          "absent key did not fall back");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const imgjudge::fuzz::ScratchDir scratch;
  const std::string path = scratch.write("config.json", data, size);
  expect_only_imgjudge_errors([&] { probe(HfConfig::load(path), 0); });
  return 0;
}
