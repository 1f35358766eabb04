// The constitution parser: Constitution::from_string on untrusted TOML, then
// the linter and the hash invariants of what it accepts.
// Seeds: tests/fuzz/corpus/constitution (default constitution, examples, tests/data/constitutions).
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_support.hpp"
#include "imgjudge/constitution.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace imgjudge;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_imgjudge_errors([&] {
    const Constitution constitution = Constitution::from_string(text, "fuzz.toml");
    fuzz::require(!constitution.rules.empty(), "accepted a constitution without rules");
    fuzz::require(constitution.hash.rfind("sha256:", 0) == 0, "hash without the sha256: prefix");
    std::set<std::string> ids;
    for (const Rule& rule : constitution.rules) {
      fuzz::require(ids.insert(rule.id).second, "accepted a duplicate rule id");
      fuzz::require(constitution.find_rule(rule.id) == &rule, "find_rule() misses a rule");
    }
    (void)lint_constitution(constitution);
    // Parsing is deterministic: the same text gives the same hash.
    fuzz::require(Constitution::from_string(text, "again.toml").hash == constitution.hash,
                  "hash differs between two parses of the same text");
  });
  return 0;
}
