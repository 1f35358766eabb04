// The tolerant parser of the model's JSON answer in cascaded reasoning
// (core::parse_reasoning_answer): any text in, a rating or nullopt out.
// Seeds: tests/fuzz/corpus/reasoning.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/reasoning.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  imgjudge::fuzz::expect_only_imgjudge_errors([&] {
    const auto answer = imgjudge::core::parse_reasoning_answer(text);
    if (answer) {
      imgjudge::fuzz::require(answer->rationale.size() <= text.size() + 16,
                              "rationale longer than the text it came from");
    }
  });
  return 0;
}
