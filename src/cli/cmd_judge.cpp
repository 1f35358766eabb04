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

const char* kUsage = R"(usage: imgjudge judge [options] IMAGE...

Judges each image against a constitution and prints a verdict per image.

)";
const char* kOutputHelp = R"(output:
  --json                    one JSON object per line: the verdict plus "file"
                            (or "file" and "error" for an image that failed)
  --quiet                   no progress bar

exit status: 0 all images safe, 1 at least one unsafe, 2 usage or setup error,
             3 at least one image could not be judged (and none was unsafe),
             4 at least one image needs review (and every image was judged, none unsafe)
)";

void print_human(const std::string& file, const Verdict& v) {
  std::size_t judged = 0, regions = 0;
  for (const auto& rule : v.rules) {
    judged += rule.judged;
    for (const auto& item : rule.items) {
      for (const auto& s : item.statements) regions += s.region.has_value();
    }
  }
  const std::string located = regions == 0 ? "" : fmt::format(", {} regions removed or cropped", regions);
  fmt::print("{}: {}  ({} of {} rules judged, {} questions{}, {} reasoning calls, {:.0f} ms)\n", one_line(file),
             v.unsafe() ? "UNSAFE" : v.needs_review() ? "REVIEW" : "safe", judged, v.rules.size(), v.questions_scored, located, v.reasoning_calls,
             v.timings.total_ms);
  for (const auto& rule : v.rules) {
    if (rule.review) {
      fmt::print("  needs review: {} [{}, {}] (uncertain, score {:.2f})\n", rule.id, rule.category,
                 severity_name(rule.severity), rule.score);
    }
    if (!rule.violated) continue;
    fmt::print("  violates {} [{}, {}]{}\n", rule.id, rule.category, severity_name(rule.severity),
               rule.uncertain ? " (uncertain, counted as unsafe)" : "");
    for (const auto& item : rule.items) {
      if (item.deciding_statement < 0) continue;
      const auto& s = item.statements[item.deciding_statement];
      const std::string region =
          s.region ? fmt::format(", {} '{}' at [{:.0f} {:.0f} {:.0f} {:.0f}]: M={:.3f}", s.region->cropped ? "crop of" : "without",
                                 s.region->phrase, s.region->box.x0, s.region->box.y0, s.region->box.x1,
                                 s.region->box.y1, s.region->score)
                   : "";
      fmt::print("    - {} (M={:.3f}, m0={:.3f}{}, by {}){}{}\n", one_line(s.statement), s.score, s.prior,
                 one_line(region), stage_name(s.decided_by), s.rationale.empty() ? "" : ": ", one_line(s.rationale));
    }
  }
}

}  // namespace

int run_judge(const Argv& argv) {
  const Args args(argv, joined(kModelOptions, kMethodOptions), joined({"json", "quiet", "help"}, kMethodFlags));
  const std::string help = std::string(kUsage) + kModelOptionsHelp + kMethodOptionsHelp + kOutputHelp;
  if (args.flag("help")) {
    fmt::print("{}", help);
    return 0;
  }
  if (args.positionals().empty()) {
    fmt::print(stderr, "imgjudge judge: no images given\n\n{}", help);
    return 2;
  }

  const ModelConfig config = model_config_from(args);

  const JudgeOptions options = judge_options_from(args);
  const std::chrono::milliseconds timeout = timeout_from(args);
  const Judge judge(constitution_from(args), load_models(config), options);

  const bool json = args.flag("json");
  const Progress progress(args.positionals().size(), !args.flag("quiet"));
  bool any_unsafe = false, any_failed = false, any_review = false;
  std::size_t done = 0;
  for (const auto& file : args.positionals()) {
    progress.update(done, file);
    CallOptions call;
    if (timeout.count() > 0) call = CallOptions::with_timeout(timeout);
    try {
      const Verdict verdict = judge.judge_file(file, call);
      any_unsafe = any_unsafe || verdict.unsafe();
      any_review = any_review || verdict.needs_review();
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
        fmt::print("{}: ERROR [{}] {}\n", one_line(file), error_code_name(e.code()),
                   one_line(without_path(e.what(), file)));
      }
    }
    std::fflush(stdout);
    ++done;
  }
  progress.finish();
  if (any_unsafe) return 1;
  if (any_failed) return 3;
  return any_review ? 4 : 0;
}

}  // namespace imgjudge::cli
