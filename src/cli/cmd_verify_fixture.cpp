// `imgjudge verify-fixture DIR`: runs a model family on a golden fixture folder
// and prints the max abs diff of every reference tensor.
#include <cmath>
#include <thread>

#include <fmt/core.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "models/fixtures.hpp"

namespace imgjudge::cli {
namespace {

const char* kVerifyFixtureHelp = R"(usage: imgjudge verify-fixture DIR [--tolerance 1e-4]

Runs the model family named by DIR/config.json "model_type" on
DIR/inputs.safetensors (float32, CPU, 1 thread for reproducibility) and
compares every tensor of DIR/outputs.safetensors; checks the image processor
against DIR/preprocess.safetensors when present.

exit status: 0 every tensor within tolerance, 1 some tensor off, 2 usage or model error
)";

void print_diffs(const char* section, const std::vector<models::TensorDiff>& diffs, double tolerance) {
  for (const auto& d : diffs) {
    const bool ok = d.problem.empty() && d.max_abs_diff <= tolerance;
    if (d.problem.empty()) {
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
  models::FixtureReport report;
  try {
    report = models::verify_fixture(dir);
  } catch (const Error& e) {
    fmt::print(stderr, "imgjudge verify-fixture: {}\n", e.what());
    return 2;
  }
  fmt::print("{} ({})\n", dir, report.model_type);
  print_diffs("output", report.outputs, tolerance);
  print_diffs("preprocess", report.preprocess, tolerance);
  if (!report.preprocess_note.empty()) fmt::print("  preprocess check skipped: {}\n", report.preprocess_note);
  const bool passed = report.passed(tolerance);
  fmt::print("{}: {} output tensors, tolerance {:g}\n", passed ? "PASS" : "FAIL", report.outputs.size(), tolerance);
  return passed ? 0 : 1;
}

}  // namespace imgjudge::cli
