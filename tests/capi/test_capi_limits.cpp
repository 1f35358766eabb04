// Resource limits at the C boundary: an allocation failure inside a call is
// reported as IMGJUDGE_OUT_OF_MEMORY for that call, and the judge stays usable.
//
// The failure is provoked for real, in a child process whose address space is
// capped (RLIMIT_AS) just above what it already uses: a 35-byte GIF declares a
// 16384x16384 logical screen, which the judge's raised pixel limit allows, so
// decoding asks for a 1 GiB canvas and the allocation fails.
#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "imgjudge.h"

namespace {

// A GIF89a with a 2-colour table and one 1x1 frame (index 0) on a logical
// screen of `screen` x `screen` pixels. The LZW data (min code size 2) is
// clear, 0, end-of-information: 02 02 44 01 00.
std::vector<std::uint8_t> gif_with_screen(std::uint16_t screen) {
  const auto lo = static_cast<std::uint8_t>(screen & 0xFF), hi = static_cast<std::uint8_t>(screen >> 8);
  return {'G', 'I', 'F', '8', '9', 'a', lo, hi, lo, hi, 0x80, 0x00, 0x00,  // screen, global table of 2
          0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00,                              // white, black
          0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,      // 1x1 frame at 0,0
          0x02, 0x02, 0x44, 0x01, 0x00,                                    // LZW data
          0x3B};
}

std::uint64_t virtual_memory_bytes() {
  unsigned long long pages = 0;
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  if (std::fscanf(statm, "%llu", &pages) != 1) pages = 0;
  std::fclose(statm);
  return pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

// Exit codes of the child, so the parent can say what went wrong.
enum ChildExit { kAsExpected = 0, kNoRlimit = 2, kHugeNotOom = 3, kSmallFailed = 4 };

}  // namespace

TEST_CASE("an allocation failure in a call is OUT_OF_MEMORY and leaves the judge usable", "[capi]") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizers reserve terabytes of address space: RLIMIT_AS cannot be used.
  WARN("skipped under a sanitizer (RLIMIT_AS conflicts with its shadow memory)");
  return;
#endif
  imgjudge_constitution* constitution = nullptr;
  REQUIRE(imgjudge_constitution_load_default(&constitution) == IMGJUDGE_OK);
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  options.backend = "scripted";
  const std::string script = std::string(IMGJUDGE_SOURCE_DIR) + "/examples/demo/scripted-answers.toml";
  options.script_path = script.c_str();
  options.max_image_pixels = std::uint64_t{1} << 28;  // 16384 x 16384: allowed
  imgjudge_judge* judge = nullptr;
  INFO(imgjudge_last_error_message());
  REQUIRE(imgjudge_judge_create(&judge, constitution, &options) == IMGJUDGE_OK);
  imgjudge_constitution_free(constitution);

  const std::vector<std::uint8_t> bomb = gif_with_screen(16384);  // 1 GiB RGBA canvas
  const std::vector<std::uint8_t> small = gif_with_screen(4);

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // 256 MiB of headroom: ordinary work fits, the 1 GiB canvas does not.
    const rlim_t cap = virtual_memory_bytes() + (rlim_t{256} << 20);
    const rlimit limit{cap, cap};
    if (virtual_memory_bytes() == 0 || setrlimit(RLIMIT_AS, &limit) != 0) _exit(kNoRlimit);
    imgjudge_verdict* verdict = nullptr;
    const imgjudge_status status = imgjudge_judge_bytes(&verdict, judge, bomb.data(), bomb.size(), nullptr);
    if (status != IMGJUDGE_OUT_OF_MEMORY || verdict != nullptr) {
      std::fprintf(stderr, "huge image: status %s: %s\n", imgjudge_status_name(status),
                   imgjudge_last_error_message());
      _exit(kHugeNotOom);
    }
    // The same judge, same process, still at the cap: the next call works.
    if (imgjudge_judge_bytes(&verdict, judge, small.data(), small.size(), nullptr) != IMGJUDGE_OK) {
      std::fprintf(stderr, "small image after OOM: %s\n", imgjudge_last_error_message());
      _exit(kSmallFailed);
    }
    imgjudge_verdict_free(verdict);
    _exit(kAsExpected);
  }
  int wait_status = 0;
  REQUIRE(waitpid(child, &wait_status, 0) == child);
  REQUIRE(WIFEXITED(wait_status));
  CHECK(WEXITSTATUS(wait_status) == kAsExpected);

  // Without the cap the same bytes decode (the limit allowed them): the
  // failure above was the allocation, not a limit or a bad file.
  imgjudge_verdict* verdict = nullptr;
  CHECK(imgjudge_judge_bytes(&verdict, judge, small.data(), small.size(), nullptr) == IMGJUDGE_OK);
  imgjudge_verdict_free(verdict);
  imgjudge_judge_free(judge);
}
