// `imgjudge verify-fixture DIR`: runs a model family on a golden fixture folder
// and prints the max abs diff of every reference tensor.
#include <cmath>
#include <thread>

#include <fmt/core.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "devtools/fixtures.hpp"

namespace imgjudge::cli {
namespace {

const char* kVerifyFixtureHelp = R"(usage: imgjudge verify-fixture DIR [--tolerance 1e-4]

Checks this build against a golden fixture made with Hugging Face
transformers (float32, CPU, 1 thread, as the references were made):
  model fixture (inputs.safetensors + outputs.safetensors): runs the family
    named by DIR/config.json "model_type" on the inputs and compares every
    reference tensor; checks the image processor against
    DIR/preprocess.safetensors when present (one image or image_0..k);
  judge fixture (expected.json): loads DIR as the judge does and compares
    every score and prior (exact and any-spelling answers) within the
    tolerance, and the prompt ids, answer tokens, image layout and greedy
    generation exactly.

exit status: 0 every tensor within tolerance, 1 some tensor off, 2 usage or model error
)";

void print_diffs(const char* section, const std::vector<devtools::TensorDiff>& diffs, double tolerance) {
  for (const auto& d : diffs) {
    const bool ok = d.problem.empty() && d.max_abs_diff <= (d.exact ? 0.0 : tolerance);
    if (d.problem.empty() && d.exact) {
      fmt::print("  {:<10} {:<32} {}  {}\n", section, d.name, ok ? "equal" : "differs", ok ? "ok" : "FAIL");
    } else if (d.problem.empty()) {
      fmt::print("  {:<10} {:<32} max_abs_diff={:.3g}  {}\n", section, d.name, d.max_abs_diff, ok ? "ok" : "FAIL");
    } else {
      fmt::print("  {:<10} {:<32} {}  FAIL\n", section, d.name, d.problem);
    }
  }
}

}  // namespace

int run_verify_fixture(const Argv& argv) {
  const Args args(argv, {"tolerance"}, {"help"});
  if (args.flag("help")) {
    fmt::print("{}", kVerifyFixtureHelp);
    return 0;
  }
  if (args.positionals().size() != 1) {
    fmt::print(stderr, "{}", kVerifyFixtureHelp);
    return 2;
  }
  const double tolerance = args.double_value_or("tolerance", 1e-4);
  if (!(tolerance >= 0)) {
    fmt::print(stderr, "imgjudge verify-fixture: --tolerance must be >= 0\n");
    return 2;
  }
  const std::string dir = args.positionals()[0];
  devtools::FixtureReport report;
  try {
    report = devtools::verify_fixture(dir);
  } catch (const Error& e) {
    fmt::print(stderr, "imgjudge verify-fixture: {}\n", e.what());
    return 2;
  }
  fmt::print("{} ({})\n", dir, report.model_type);
  print_diffs("output", report.outputs, tolerance);
  print_diffs("preprocess", report.preprocess, tolerance);
  for (const auto& note : report.notes) fmt::print("  note: {}\n", note);
  const bool passed = report.passed(tolerance);
  fmt::print("{}: {} {} fixture, {} outputs, tolerance {:g}\n", passed ? "PASS" : "FAIL", report.model_type,
             report.kind, report.outputs.size(), tolerance);
  return passed ? 0 : 1;
}

}  // namespace imgjudge::cli
