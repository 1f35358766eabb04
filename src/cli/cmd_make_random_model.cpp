// `imgjudge make-random-model`: a HF model folder with random weights.
#include <fmt/core.h>
#include <fmt/ranges.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "devtools/random_models.hpp"

namespace imgjudge::cli {
namespace {

const char* kMakeRandomModelHelp = R"(usage: imgjudge make-random-model --config CONFIG.json --out DIR
                                  [--tokenizer DIR] [--seed N] [--dtype f32|bf16]

Writes DIR/config.json, DIR/model.safetensors (random weights, deterministic
for a seed; the parameter list comes from the family's own code),
DIR/preprocessor_config.json for vision families, and the tokenizer files of
--tokenizer DIR (the config's vocab_size is set to the tokenizer's size).

exit status: 0 written, 2 usage or input error
)";

}  // namespace

int run_make_random_model(const Argv& argv) {
  const Args args(argv, {"config", "out", "tokenizer", "seed", "dtype"}, {"help"});
  if (args.flag("help")) {
    fmt::print("{}", kMakeRandomModelHelp);
    return 0;
  }
  if (!args.value("config") || !args.value("out") || !args.positionals().empty()) {
    fmt::print(stderr, "{}", kMakeRandomModelHelp);
    return 2;
  }
  devtools::RandomModelRequest request;
  request.config_path = args.required("config");
  request.out_dir = args.required("out");
  request.tokenizer_dir = args.value_or("tokenizer", "");
  request.dtype = args.value_or("dtype", "f32");
  const int seed = args.int_value_or("seed", 0);
  if (seed < 0) {
    fmt::print(stderr, "imgjudge make-random-model: --seed must be >= 0\n");
    return 2;
  }
  request.seed = static_cast<std::uint64_t>(seed);
  try {
    const auto written = devtools::make_random_model(request);
    fmt::print("{}: wrote {}\n", request.out_dir, fmt::join(written, ", "));
  } catch (const Error& e) {
    fmt::print(stderr, "imgjudge make-random-model: {}\n", e.what());
    return 2;
  }
  return 0;
}

}  // namespace imgjudge::cli
