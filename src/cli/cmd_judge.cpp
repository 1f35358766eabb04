// `imgjudge judge`: judge image files against a constitution.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/model_options.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "imgjudge/judge.hpp"

namespace imgjudge::cli {
namespace {

const char* kHelp = R"(usage: imgjudge judge [options] IMAGE...

Judges each image against a constitution and prints a verdict per image.

models:
  --backend NAME            torch (default) or scripted
  --model DIR               Hugging Face folder of the vision-language model (torch)
  --relevance-model DIR     Hugging Face folder of CLIP/SigLIP for relevance scanning (optional)
  --script FILE             answer script of the scripted backend
  --device DEV              cpu (default) or cuda[:N]
  --dtype T                 auto (default), float32, bfloat16 or int8
  --threads N               intra-op threads (default: all cores)
constitution and method:
  --constitution FILE       TOML rules (default: the bundled default constitution)
  --no-relevance --no-debias --no-chains --no-cascade --no-early-exit
                            switch a stage off (ablations)
  --reasoning-tokens N      token budget of each cascaded-reasoning turn (default 512)
  --timeout-ms N            per-image deadline
output:
  --json                    one JSON object per line: the verdict plus "file"
                            (or "file" and "error" for an image that failed)
  --quiet                   no progress bar

exit status: 0 all images safe, 1 at least one unsafe, 2 usage or setup error,
             3 at least one image could not be judged (and none was unsafe)
)";

void print_human(const std::string& file, const Verdict& v) {
  std::size_t judged = 0;
  for (const auto& rule : v.rules) judged += rule.judged;
  fmt::print("{}: {}  ({} of {} rules judged, {} questions, {} reasoning calls, {:.0f} ms)\n", file,
             v.unsafe() ? "UNSAFE" : "safe", judged, v.rules.size(), v.questions_scored, v.reasoning_calls,
             v.timings.total_ms);
  for (const auto& rule : v.rules) {
    if (!rule.violated) continue;
    fmt::print("  violates {} [{}, {}]\n", rule.id, rule.category, severity_name(rule.severity));
    for (const auto& item : rule.items) {
      if (item.deciding_statement < 0) continue;
      const auto& s = item.statements[item.deciding_statement];
      fmt::print("    - {} (M={:.3f}, m0={:.3f}, by {}){}{}\n", s.statement, s.score, s.prior,
                 stage_name(s.decided_by), s.rationale.empty() ? "" : ": ", s.rationale);
    }
  }
}

}  // namespace

int run_judge(const Argv& argv) {
  const Args args(argv,
                  {"backend", "model", "relevance-model", "script", "device", "dtype", "threads",
                   "constitution", "timeout-ms", "reasoning-tokens"},
                  {"json", "quiet", "help", "no-relevance", "no-debias", "no-chains", "no-cascade",
                   "no-early-exit"});
  if (args.flag("help")) {
    fmt::print("{}", kHelp);
    return 0;
  }
  if (args.positionals().empty()) {
    fmt::print(stderr, "imgjudge judge: no images given\n\n{}", kHelp);
    return 2;
  }

  const ModelConfig config = model_config_from(args);

  JudgeOptions options;
  options.relevance = !args.flag("no-relevance");
  options.debias = !args.flag("no-debias");
  options.chains = !args.flag("no-chains");
  options.cascade = !args.flag("no-cascade");
  options.early_exit = !args.flag("no-early-exit");
  options.reasoning_limits.max_new_tokens = args.int_value_or("reasoning-tokens", options.reasoning_limits.max_new_tokens);
  if (options.reasoning_limits.max_new_tokens < 1) {
    throw Error(ErrorCode::InvalidArgument, "--reasoning-tokens must be at least 1");
  }
  const int timeout_ms = args.int_value_or("timeout-ms", 0);

  Constitution constitution = args.value("constitution") ? Constitution::from_file(*args.value("constitution"))
                                                         : Constitution::builtin_default();
  const Judge judge(std::move(constitution), load_models(config), options);

  const bool json = args.flag("json");
  const Progress progress(args.positionals().size(), !args.flag("quiet"));
  bool any_unsafe = false, any_failed = false;
  std::size_t done = 0;
  for (const auto& file : args.positionals()) {
    progress.update(done, file);
    CallOptions call;
    if (timeout_ms > 0) call = CallOptions::with_timeout(std::chrono::milliseconds(timeout_ms));
    try {
      const Verdict verdict = judge.judge_file(file, call);
      any_unsafe = any_unsafe || verdict.unsafe();
      progress.finish();
      if (json) {
        auto object = nlohmann::json::parse(verdict.to_json());
        object["file"] = file;
        fmt::print("{}\n", object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        print_human(file, verdict);
      }
    } catch (const Error& e) {
      any_failed = true;
      progress.finish();
      if (json) {
        fmt::print("{}\n", nlohmann::json{{"file", file},
                                          {"error", {{"code", error_code_name(e.code())}, {"message", e.what()}}}}
                               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        fmt::print("{}: ERROR [{}] {}\n", file, error_code_name(e.code()), e.what());
      }
    }
    std::fflush(stdout);
    ++done;
  }
  progress.finish();
  if (any_unsafe) return 1;
  return any_failed ? 3 : 0;
}

}  // namespace imgjudge::cli
