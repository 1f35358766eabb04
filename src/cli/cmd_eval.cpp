// `imgjudge eval`: measure a judge on a labelled image set (docs/evaluation.md).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/model_options.hpp"
#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "eval/labels.hpp"
#include "eval/metrics.hpp"
#include "eval/report.hpp"
#include "eval/results.hpp"
#include "eval/runner.hpp"
#include "imgjudge/judge.hpp"
#include "util/files.hpp"

namespace imgjudge::cli {
namespace {

const char* kHelp = R"(usage: imgjudge eval --model DIR --labels FILE [--results FILE] [--report DIR] [options]

Judges every labelled image (and again for each ablation), appending each result to a
results file as it comes; a rerun skips what the file already holds. Prints the metrics as
JSON on stdout and, with --report, writes DIR/report.md with its tables and PNG plots.
Without --results or --report the results are kept in memory only (nothing to resume).

data:
  --labels FILE             CSV (image,label[,rules]) or JSON lines; image paths relative to it
  --results FILE            JSON-lines results, appended to (default with --report: DIR/results.jsonl;
                            without either: kept in memory for this run only)
  --restart                 empty the results file first instead of resuming
  --report DIR              write DIR/report.md, DIR/metrics.json and the plots
)";
const char* kEvalHelp = R"(evaluation:
  --ablate LIST             also run with each listed stage off, as extra columns:
                            relevance,debias,chains,cascade,early-exit,locator
  --quiet                   no progress bar or summary on stderr

exit status: 0 done (images that could not be judged are counted as errors), 2 usage or setup error
)";

nlohmann::json id_or_null(const std::string& id) { return id.empty() ? nlohmann::json(nullptr) : nlohmann::json(id); }

// The models that judged: the loaded ones, or (a rerun that judged nothing new) those the
// results file names for the full method.
eval::ModelIds model_ids(const ModelConfig& config, const Models& models, const eval::ResultsFile& results) {
  eval::ModelIds ids;
  ids.backend = config.backend;
  ids.dtype = config.dtype;
  if (models.vlm) {
    ids.vlm = models.vlm->model_id();
    if (models.relevance) ids.relevance = models.relevance->model_id();
    if (models.locator) ids.locator = models.locator->model_id();
    return ids;
  }
  for (const auto& record : results.records()) {
    if (record.failed || record.ablation != "full") continue;
    ids.vlm = record.vlm_model;
    ids.relevance = record.relevance_model;
    ids.locator = record.locator_model;
    break;
  }
  return ids;
}

}  // namespace

int run_eval(const Argv& argv) {
  const Args args(argv, joined(joined(kModelOptions, kMethodOptions), {"labels", "results", "report", "ablate"}),
                  joined({"quiet", "help", "restart"}, kMethodFlags));
  const std::string help = std::string(kHelp) + kModelOptionsHelp + kMethodOptionsHelp + kEvalHelp;
  if (args.flag("help")) {
    fmt::print("{}", help);
    return 0;
  }
  if (!args.value("labels")) {
    fmt::print(stderr, "imgjudge eval: --labels is required\n\n{}", help);
    return 2;
  }
  const std::string report_dir = args.value_or("report", "");
  const bool quiet = args.flag("quiet");

  const eval::LabelSet labels = eval::load_labels(*args.value("labels"));
  const Constitution constitution = constitution_from(args);
  eval::check_rules_exist(labels, constitution);
  const auto ablations = eval::make_ablations(args.value_or("ablate", ""), judge_options_from(args));
  const std::chrono::milliseconds timeout = timeout_from(args);

  if (!report_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(report_dir, ec);
    if (ec) throw Error(ErrorCode::Io, fmt::format("{}: cannot create the report folder: {}", report_dir, ec.message()));
  }
  eval::ResultsFile results(
      args.value_or("results", report_dir.empty() ? std::string() : util::join_path(report_dir, "results.jsonl")),
      args.flag("restart"));
  if (results.dropped_bytes() > 0 && !quiet) {
    fmt::print(stderr, "imgjudge eval: {}: dropped an incomplete last line ({} bytes); judging that image again\n",
               results.path(), results.dropped_bytes());
  }

  // Models are loaded only if something is left to judge: a rerun for the report is instant.
  std::size_t pending = 0;
  for (const auto& ablation : ablations) {
    for (const auto& image : labels.images) pending += results.find(ablation.name, image.image) == nullptr;
  }
  const ModelConfig config = model_config_from(args);
  Models models;
  if (pending > 0) {
    models = load_models(config);
  }

  const Progress progress(labels.images.size() * ablations.size(), !quiet);
  const eval::RunCounts counts =
      eval::run_evaluation(constitution, models, labels, ablations, results,
                           [&](std::size_t done, std::size_t, const std::string& label) { progress.update(done, label); },
                           timeout);
  progress.finish();

  eval::ReportInput report;
  report.constitution = &constitution;
  report.labels = &labels;
  report.results_path = results.path();
  report.models = model_ids(config, models, results);
  for (const auto& ablation : ablations) {
    report.metrics.push_back(
        eval::compute_metrics(constitution, labels, results.records(), ablation.name, ablation.description));
  }
  report.scores = eval::collect_item_scores(labels, results.records(), "full");
  report.relevance = eval::relevance_curve(constitution, labels, results.records(), "full");

  nlohmann::json output = {
      {"schema", "imgjudge.eval/1"},
      {"constitution", {{"name", constitution.name}, {"version", constitution.version}, {"hash", constitution.hash}}},
      {"labels", labels.source},
      {"results", results.path().empty() ? nlohmann::json(nullptr) : nlohmann::json(results.path())},
      {"models",
       {{"backend", report.models.backend},
        {"dtype", report.models.dtype},
        {"vlm", id_or_null(report.models.vlm)},
        {"relevance", id_or_null(report.models.relevance)},
        {"locator", id_or_null(report.models.locator)}}},
      {"images", labels.images.size()},
      {"run", {{"judged", counts.judged}, {"failed", counts.failed}, {"resumed", counts.resumed}}},
      {"ablations", nlohmann::json::array()},
      {"report", nullptr}};
  for (const auto& m : report.metrics) output["ablations"].push_back(eval::to_json(m));
  // The curve's points go to the plot; stdout keeps the summary at the configured thresholds.
  output["relevance"] = eval::to_json(report.relevance);
  output["relevance"].erase("points");

  if (!report_dir.empty()) {
    output["report"] = eval::write_report(report_dir, report);
    std::ofstream metrics_file(util::join_path(report_dir, "metrics.json"), std::ios::trunc);
    metrics_file << output.dump(2) << '\n';
  }
  fmt::print("{}\n", output.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!quiet) {
    fmt::print(stderr, "imgjudge eval: judged {} ({} could not be judged), resumed {}{}\n", counts.judged,
               counts.failed, counts.resumed,
               report_dir.empty() ? "" : fmt::format("; report: {}", output["report"].get<std::string>()));
  }
  return 0;
}

}  // namespace imgjudge::cli
