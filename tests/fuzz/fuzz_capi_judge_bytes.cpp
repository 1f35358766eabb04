// C API: imgjudge_judge_bytes on untrusted image bytes, through a Judge over
// the default constitution and the scripted backend (deterministic answers, no
// weights, no libtorch: see scripted_only_registry.cpp). Every verdict it
// returns must be readable through the verdict accessors.
// Seeds: tests/fuzz/corpus/capi_judge_bytes (the image seeds).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "capi_support.hpp"

namespace {

using imgjudge::fuzz::check_status;
using imgjudge::fuzz::fail;
using imgjudge::fuzz::require;

// With no [[images]], every statement gets the script's default score and
// prior, so items stay uncertain and go through cascaded reasoning too.
const char* kScript = R"(
[defaults]
score = 0.6
prior = 0.5
reasoning = '{"rating": "No", "rationale": "fuzz"}'
)";

const imgjudge_judge* make_judge() {
  static const imgjudge::fuzz::ScratchDir scratch;
  const std::string script = scratch.write("script.toml", reinterpret_cast<const std::uint8_t*>(kScript),
                                           std::strlen(kScript));
  imgjudge_constitution* constitution = nullptr;
  if (imgjudge_constitution_load_default(&constitution) != IMGJUDGE_OK) fail("setup", imgjudge_last_error_message());
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.backend = "scripted";
  options.script_path = script.c_str();
  // Small limits keep one input at milliseconds (hashing 64 Mpx would not).
  options.max_image_width = 2048;
  options.max_image_height = 2048;
  options.max_image_pixels = 1u << 20;
  imgjudge_judge* judge = nullptr;
  if (imgjudge_judge_create(&judge, constitution, &options) != IMGJUDGE_OK) fail("setup", imgjudge_last_error_message());
  imgjudge_constitution_free(constitution);
  return judge;  // lives for the whole process
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const imgjudge_judge* const judge = make_judge();
  imgjudge_verdict* verdict = nullptr;
  const imgjudge_status status = imgjudge_judge_bytes(&verdict, judge, data, size, nullptr);
  check_status(status, "imgjudge_judge_bytes");
  if (status != IMGJUDGE_OK) {
    require(verdict == nullptr, "failed call left *out non-NULL");
    require(status == IMGJUDGE_INVALID_IMAGE || status == IMGJUDGE_LIMIT_EXCEEDED ||
                status == IMGJUDGE_INVALID_ARGUMENT,
            "image bytes failed with a category other than invalid_image/limit_exceeded/invalid_argument");
    return 0;
  }
  imgjudge_decision decision;
  check_status(imgjudge_verdict_decision(&decision, verdict), "verdict_decision");
  std::size_t violated = 0;
  check_status(imgjudge_verdict_violated_rule_count(&violated, verdict), "violated_rule_count");
  require((violated > 0) == (decision == IMGJUDGE_DECISION_UNSAFE), "decision disagrees with violated rules");
  const char* json = nullptr;
  std::size_t length = 0;
  check_status(imgjudge_verdict_json(&json, &length, verdict), "verdict_json");
  require(json != nullptr && std::strlen(json) == length, "verdict JSON length mismatch");
  imgjudge_verdict_free(verdict);
  return 0;
}
