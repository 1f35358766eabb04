// Shared helpers of the libFuzzer targets (tests/fuzz, scripts/fuzz.sh).
//
// The contract every target checks: untrusted bytes either succeed or throw
// imgjudge::Error. Any other exception escaping an imgjudge entry point (a
// json::type_error, std::out_of_range, std::bad_alloc from an unbounded
// allocation, ...) breaks the "one exception type" rule of error.hpp and is
// reported as a crash, exactly like an ASan or UBSan finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <typeinfo>

#include "imgjudge/error.hpp"

namespace imgjudge::fuzz {

[[noreturn]] inline void fail(const char* what, const char* detail) {
  std::fprintf(stderr, "FUZZ CONTRACT VIOLATION: %s: %s\n", what, detail);
  std::fflush(stderr);
  std::abort();
}

/// Runs `body`; imgjudge::Error is the expected way to reject bad input.
template <typename Body>
void expect_only_imgjudge_errors(Body&& body) {
  try {
    body();
  } catch (const imgjudge::Error& e) {
    // Messages name what is wrong: an empty one is a bug too.
    if (e.what()[0] == '\0') fail("imgjudge::Error with an empty message", error_code_name(e.code()));
  } catch (const std::exception& e) {
    fail(typeid(e).name(), e.what());
  } catch (...) {
    fail("unknown exception", "(not derived from std::exception)");
  }
}

/// Asserts an invariant of a successful result (aborts with `what` otherwise).
inline void require(bool condition, const char* what) {
  if (!condition) fail("broken invariant", what);
}

/// A private folder for loaders that only read files (one per process,
/// removed at exit). libFuzzer runs inputs one at a time per process.
class ScratchDir {
 public:
  ScratchDir() {
    char pattern[] = "/tmp/imgjudge-fuzz-XXXXXX";
    if (mkdtemp(pattern) == nullptr) fail("mkdtemp", "cannot create a scratch folder");
    path_ = pattern;
  }
  ~ScratchDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  /// Writes `size` bytes to <dir>/<name> (replacing it) and returns its path.
  std::string write(const std::string& name, const std::uint8_t* data, std::size_t size) const {
    const std::string path = path_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) fail("scratch write", path.c_str());
    return path;
  }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace imgjudge::fuzz
