// imgjudge end-to-end benchmark (docs/performance.md).
//
// One process, one model, the same images, two ways of asking the same 42
// questions (14 rules x 3 chain items, early exit / relevance / cascade off):
//   naive     the paper's loop: for every question the image is encoded and the
//             whole prompt prefilled from scratch, and m0 is recomputed per image;
//   imgjudge  the Judge: image encoded once, prefix KV shared by a batched pass,
//             m0 and prompts cached at construction.
// Then the components one by one, each as achieved GFLOP/s next to the GEMM
// GFLOP/s of the same machine at the same shapes. Prints JSON.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "devtools/locator_probe.hpp"
#include "devtools/vlm_probe.hpp"
#include "image/resize.hpp"
#include "imgjudge/imgjudge.hpp"
#include "models/families.hpp"
#include "devtools/random_models.hpp"
#include "runtime/device.hpp"
#include "runtime/safetensors.hpp"
#include "runtime/tensor_cache.hpp"
#include "devtools/gemm_probe.hpp"
#include "devtools/host_info.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

using namespace imgjudge;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

const char* kHelp = R"(usage: imgjudge_bench [--quick | --reduced] [--family F | --model DIR]
                      [--dtype auto|bfloat16|float32|int8] [--threads N]
                      [--sizes 448,896,photo] [--images N] [--naive-questions N]
                      [--drop-caches] [--out FILE]
                      [--locator owlv2|owlvit | --locator-model DIR]

Without --model, a random-weight folder of a published checkpoint's widths is
generated once in build/bench-models/ at every layer of the checkpoint, for
--family (benchmarks/models/*.json):
qwen2_vl (Qwen2-VL-2B, the default), llava_onevision (llava-onevision-qwen2-0.5b),
llava (llava-1.5-7b), internvl_chat (InternVL2-8B: InternViT-300M at 448 px,
InternLM2.5-7B, the tiny InternLM2 SentencePiece tokenizer); with --reduced
(or --quick) 4 text + 4 vision layers instead (Qwen2-VL-2B at full depth is 4.4 GB
in bfloat16; its naive loop is sampled, see --naive-questions).
--sizes: square sizes, and `photo` for the example photos at their own size
(rocket.jpg 640x427 first).
Cold and warm: the first image after load (nothing judged before it in this
process) is timed on its own as `cold`, next to the warm mean of its size.
--drop-caches (root): drops the page cache before loading, so `cold` includes
reading the weights from disk, as a new worker or a restarted service does.
The components (vision, prefill, scoring, decode) are timed through the
engine the Judge runs, each beside the same-shape GEMM.
--dtype auto (default): what the library picks on this machine (bfloat16 with
AVX-512 or CUDA, float32 otherwise). int8: int8 linear weights; the report
then also gives its score difference from float32 on the same images.
--naive-questions N: time the naive loop on N of the 42 questions (spread over
the rules) and extrapolate to all 42; every naive question costs the same (one
image encode + one full prefill + one m0 prefill). Default: all with --reduced,
4 at full depth.
--locator F: also time the strategy-2 locator, a random-weight folder of
owlv2 (owlv2-base-patch16-ensemble: 960 px, 3600 patches) or owlvit
(owlvit-base-patch32: 768 px, 576 patches) at every published width, reduced
to 4 vision and 4 text layers unless --full-depth; --locator-model DIR: a real
folder. Reported per image: the image processor, the encode (processor + ViT,
once per image that has an uncertain item with objects), embedding the
phrases (once per Judge) and locating them all (per item).
--quick: --reduced, 448x448 only, 1 image, 8 naive questions (about 1 minute
on 2 cores, plus about 15 s to generate the reduced model the first time).
)";

// The parameters' bytes once loaded: floating tensors at the dtype the library
// runs (bfloat16 2, float32 4); with int8, 2-D weights (the linear layers) at
// 1 byte plus a float32 scale per output row, everything else float32. Counted
// from the checkpoint, because the RSS growth over loading is not it: the
// allocator keeps freed conversion buffers and reuses pages libtorch mapped at
// start-up, so the growth read -12.9 MB for a 4.4 GB bfloat16 model.
std::int64_t loaded_weight_bytes(const std::string& model_dir, const std::string& dtype) {
  const auto checkpoint = runtime::SafetensorsCheckpoint::open_folder(model_dir);
  std::int64_t bytes = 0;
  for (const auto& name : checkpoint.names()) {
    const runtime::TensorView& tensor = checkpoint.at(name);
    const std::int64_t elements = tensor.numel();
    if (dtype == "int8" && tensor.shape.size() == 2) {
      bytes += elements + tensor.shape[0] * 4;
    } else {
      bytes += elements * (dtype == "bfloat16" || dtype == "float16" ? 2 : 4);
    }
  }
  return bytes;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// VmRSS / VmHWM (peak) of this process from /proc/self/status, in bytes.
std::int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

// Starts a new peak-RSS window (Linux: "5" to clear_refs resets VmHWM), so the
// judging peak is not the transient of loading (a bfloat16 file mapped while
// its float32 copy is made).
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// M(x, c) of every statement a verdict scored, by statement.
std::map<std::string, double> statement_scores(const Verdict& verdict) {
  std::map<std::string, double> scores;
  for (const auto& rule : verdict.rules) {
    for (const auto& item : rule.items) {
      for (const auto& s : item.statements) scores[s.statement] = s.score;
    }
  }
  return scores;
}

// `--sizes` entry for the photos at their own size (kPhotoSize in `sizes`).
constexpr int kPhotoSize = 0;

// A real photo (examples/images) resized to size x size with PIL-exact bicubic,
// or as it is for kPhotoSize (rocket.jpg first: 640x427, a typical upload).
Image test_image(int size, int index) {
  static const char* files[] = {"rocket.jpg", "chelsea.png", "coffee.png"};
  const Image photo = load_image_file(std::string(IMGJUDGE_SOURCE_DIR "/examples/images/") + files[index % 3]);
  if (size == kPhotoSize) return photo;
  return image::resize(photo, size, size, image::Resample::Bicubic);
}

std::string size_label(int size) { return size == kPhotoSize ? "photo" : fmt::format("{}x{}", size, size); }

// The published checkpoint each family is benchmarked at (benchmarks/models/<name>.json).
std::string checkpoint_of(const std::string& family) {
  if (family == "qwen2_vl") return "qwen2-vl-2b";
  if (family == "llava_onevision") return "llava-onevision-0.5b";
  if (family == "llava") return "llava-1.5-7b";
  if (family == "internvl_chat") return "internvl2-8b";
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("--family {}: no benchmark checkpoint (qwen2_vl, llava_onevision, llava, internvl_chat)", family));
}

// The tokenizer (tests/data/tokenizers/<name>) a family's random folder gets:
// InternVL2-8B's InternLM2 ships a SentencePiece tokenizer.model.
std::string tokenizer_of(const std::string& family) { return family == "internvl_chat" ? "internlm2_tiny" : "qwen2"; }

// The checkpoint's config with 4 text and 4 vision layers: every width real.
json reduced(json config) {
  json& text = config.contains("text_config") ? config["text_config"]
               : config.contains("llm_config") ? config["llm_config"]
                                               : config;
  text["num_hidden_layers"] = 4;
  json& vision = config["vision_config"];
  for (const char* key : {"depth", "num_hidden_layers"}) {
    if (vision.contains(key)) vision[key] = 4;
  }
  if (vision.contains("fullatt_block_indexes")) vision["fullatt_block_indexes"] = {3};
  return config;
}

// The locator checkpoint benchmarked for --locator (benchmarks/models/<name>.json).
std::string locator_checkpoint_of(const std::string& family) {
  if (family == "owlv2") return "owlv2-base";
  if (family == "owlvit") return "owlvit-base";
  throw Error(ErrorCode::InvalidArgument, fmt::format("--locator {}: no benchmark checkpoint (owlv2, owlvit)", family));
}

// A bfloat16 checkpoint, as published models are; other dtypes convert it at load.
// `checkpoint`: benchmarks/models/<checkpoint>.json; `tokenizer`: under tests/data/tokenizers.
std::string ensure_random_model(const std::string& checkpoint, const std::string& tokenizer, bool full_depth) {
  const std::string name = checkpoint + (full_depth ? "" : "-reduced");
  const std::string dir = std::string("build/bench-models/") + name + "-bfloat16";
  if (util::file_exists(util::join_path(dir, "model.safetensors"))) return dir;
  fmt::print(stderr, "bench: generating random-weight {} in {} (once)\n", name, dir);
  const std::string source = std::string(IMGJUDGE_SOURCE_DIR "/benchmarks/models/") + checkpoint + ".json";
  json config = json::parse(util::read_file_text(source));
  if (!full_depth) config = reduced(config);
  std::filesystem::create_directories("build/bench-models");
  const std::string config_path = "build/bench-models/" + name + ".json";
  std::ofstream(config_path) << config.dump(2);
  devtools::RandomModelRequest request;
  request.config_path = config_path;
  request.tokenizer_dir = std::string(IMGJUDGE_SOURCE_DIR "/tests/data/tokenizers/") + tokenizer;
  request.out_dir = dir;
  request.seed = 1;
  request.dtype = "bf16";
  devtools::make_random_model(request);  // with the family's published processor config
  return dir;
}

json tensor_cache_json() {
  const runtime::TensorCacheStats s = runtime::tensor_cache_stats();
  return {{"installed", s.installed}, {"limit_bytes", s.limit_bytes}, {"idle_bytes", s.idle_bytes},
          {"idle_blocks", s.idle_blocks}, {"reused", s.reused}, {"allocated", s.allocated}};
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool quick = false, reduced_depth = false, drop_caches = false;
  std::string model_dir, dtype = "auto", out_path, family = "qwen2_vl", locator_family, locator_dir;
  int threads = 0, images_per_size = 2, naive_questions = 0;
  std::vector<int> sizes = {448, 896, kPhotoSize};
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw Error(ErrorCode::InvalidArgument, args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--quick") quick = true;
    else if (args[i] == "--reduced") reduced_depth = true;
    else if (args[i] == "--drop-caches") drop_caches = true;
    else if (args[i] == "--model") model_dir = value();
    else if (args[i] == "--family") family = value();
    else if (args[i] == "--locator") locator_family = value();
    else if (args[i] == "--locator-model") locator_dir = value();
    else if (args[i] == "--dtype") dtype = value();
    else if (args[i] == "--threads") threads = std::stoi(value());
    else if (args[i] == "--images") images_per_size = std::stoi(value());
    else if (args[i] == "--naive-questions") naive_questions = std::stoi(value());
    else if (args[i] == "--out") out_path = value();
    else if (args[i] == "--sizes") {
      sizes.clear();
      std::string list = value();
      for (std::size_t start = 0; start < list.size();) {
        std::size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        const std::string entry = list.substr(start, comma - start);
        sizes.push_back(entry == "photo" ? kPhotoSize : std::stoi(entry));
        start = comma + 1;
      }
    } else if (args[i] == "--help") {
      fmt::print("{}", kHelp);
      return 0;
    } else {
      fmt::print(stderr, "imgjudge_bench: unknown argument {}\n{}", args[i], kHelp);
      return 2;
    }
  }
  if (quick) {
    reduced_depth = true;
    sizes = {448};
    images_per_size = 1;
    if (naive_questions == 0) naive_questions = 8;
  }
  const bool full_depth = !reduced_depth;
  // At full depth a naive question costs a whole image encode and prefill:
  // all 42 would take most of an hour per image on 2 cores.
  if (naive_questions == 0 && full_depth) naive_questions = 4;
  // The dtype the library would choose here, spelled as the probes want it.
  const runtime::ExecutionTarget target = runtime::resolve_device({"cpu", dtype, threads});
  dtype = target.linear_format == runtime::LinearFormat::Int8 ? "int8" : runtime::dtype_label(target.dtype);
  threads = devtools::set_threads(threads);
  if (model_dir.empty()) model_dir = ensure_random_model(checkpoint_of(family), tokenizer_of(family), full_depth);
  if (locator_dir.empty() && !locator_family.empty()) {
    locator_dir = ensure_random_model(locator_checkpoint_of(locator_family), "clip", full_depth);
  }
  family = models::read_model_type(model_dir);

  ModelConfig config;
  config.model_dir = model_dir;
  config.dtype = dtype;
  config.threads = threads;
  if (drop_caches) {
    // Cold means the weights come from disk, as for a new worker: write out
    // dirty pages, then drop the clean ones (needs root).
    ::sync();
    std::ofstream control("/proc/sys/vm/drop_caches");
    if (!(control << "3\n" << std::flush)) {
      throw Error(ErrorCode::Io, "--drop-caches: cannot write /proc/sys/vm/drop_caches (run as root)");
    }
  }
  const std::int64_t rss_before_load = status_bytes("VmRSS");  // libtorch and the process itself
  auto load_start = Clock::now();
  const Models models = load_models(config);
  const double load_s = seconds_since(load_start);
  const std::int64_t rss_growth_at_load = status_bytes("VmRSS") - rss_before_load;
  const std::int64_t weights = loaded_weight_bytes(model_dir, dtype);
  const Constitution constitution = Constitution::from_file(IMGJUDGE_SOURCE_DIR "/benchmarks/constitution-14x3.toml");

  JudgeOptions options;
  options.relevance = false;
  options.cascade = false;
  options.early_exit = false;
  auto construct_start = Clock::now();
  const Judge judge(constitution, models, options);
  const double construct_s = seconds_since(construct_start);
  const std::int64_t load_peak_rss = status_bytes("VmHWM");
  reset_peak_rss();

  // Cold: the first image after load, before anything else runs in this
  // process (a service's first request). A photo the warm loop does not use.
  const Image cold_image = test_image(sizes.front(), images_per_size);
  const auto cold_start = Clock::now();
  const Verdict cold_verdict = judge.judge(cold_image);
  const double cold_s = seconds_since(cold_start);

  std::vector<Question> questions;
  for (const auto& rule : constitution.rules) {
    for (const auto& item : rule.chain) {
      for (const auto& statement : item.any_of) {
        questions.push_back({statement, render_question(rule.questions.score, statement)});
      }
    }
  }
  // The naive loop's sample: every k-th question, so each rule is represented.
  const std::size_t naive_count = naive_questions > 0 ? std::min<std::size_t>(naive_questions, questions.size())
                                                      : questions.size();
  std::vector<Question> naive_sample;
  for (std::size_t i = 0; i < naive_count; ++i) naive_sample.push_back(questions[i * questions.size() / naive_count]);

  json results = json::array();
  std::vector<std::pair<Image, std::map<std::string, double>>> judged;  // for the int8 comparison
  for (int size : sizes) {
    double naive_s = 0, judge_s = 0, max_score_diff = 0;
    StageTimings stages;
    for (int n = 0; n < images_per_size; ++n) {
      const Image image = test_image(size, n);
      // naive: every question from scratch, m0 per image.
      std::map<std::string, double> naive_scores;
      auto start = Clock::now();
      for (const auto& question : naive_sample) {
        const auto context = models.vlm->prepare(image, CallContext{});
        naive_scores[question.statement] = models.vlm->score(context.get(), {question}, options.answers, CallContext{}).at(0);
        models.vlm->score(nullptr, {question}, options.answers, CallContext{});
      }
      // Extrapolated to all questions when only a sample ran (equal cost each).
      naive_s += seconds_since(start) * double(questions.size()) / double(naive_sample.size());
      // imgjudge
      start = Clock::now();
      const Verdict verdict = judge.judge(image);
      judge_s += seconds_since(start);
      stages.prepare_ms += verdict.timings.prepare_ms;
      stages.scoring_ms += verdict.timings.scoring_ms;
      // Both must have asked the same questions and got the same answers.
      std::map<std::string, double> scores = statement_scores(verdict);
      if (scores.size() != questions.size()) {
        throw Error(ErrorCode::Internal, fmt::format("judge asked {} questions, naive {}", scores.size(), questions.size()));
      }
      for (const auto& [statement, naive] : naive_scores) {
        max_score_diff = std::max(max_score_diff, std::abs(scores.at(statement) - naive));
      }
      judged.emplace_back(image, std::move(scores));
    }
    const double images = images_per_size;
    results.push_back({{"image_size", size_label(size)},
                       {"images", images_per_size},
                       {"questions_per_image", questions.size()},
                       {"naive", {{"questions_timed", naive_sample.size()},
                                  {"seconds_per_image", naive_s / images}, {"images_per_s", images / naive_s},
                                  {"questions_per_s", images * questions.size() / naive_s}}},
                       {"imgjudge", {{"seconds_per_image", judge_s / images}, {"images_per_s", images / judge_s},
                                     {"questions_per_s", images * questions.size() / judge_s},
                                     {"prepare_ms_per_image", stages.prepare_ms / images},
                                     {"scoring_ms_per_image", stages.scoring_ms / images}}},
                       {"speedup_vs_naive", naive_s / judge_s},
                       {"max_score_difference_vs_naive", max_score_diff}});
    fmt::print(stderr, "bench: {}: naive {:.2f} s/image, imgjudge {:.2f} s/image, speedup {:.1f}x\n", size_label(size),
               naive_s / images, judge_s / images, naive_s / judge_s);
  }

  const std::int64_t judging_peak_rss = status_bytes("VmHWM");  // before the probes load a second copy

  // int8: how far its scores move from float32 on the same images.
  json int8_vs_float32 = nullptr;
  if (dtype == "int8") {
    ModelConfig reference_config = config;
    reference_config.dtype = "float32";
    const Judge reference(constitution, load_models(reference_config), options);
    double max_diff = 0, sum_diff = 0;
    int count = 0;
    for (const auto& [image, scores] : judged) {
      for (const auto& [statement, score] : statement_scores(reference.judge(image))) {
        const double diff = std::abs(score - scores.at(statement));
        max_diff = std::max(max_diff, diff);
        sum_diff += diff;
        ++count;
      }
    }
    int8_vs_float32 = {{"max_score_difference", max_diff}, {"mean_score_difference", sum_diff / count},
                       {"statements", count}};
    fmt::print(stderr, "bench: int8 vs float32 scores: max |diff| {:.2e}, mean {:.2e}\n", max_diff, sum_diff / count);
  }

  // The three dtypes' GEMM rates here, at one moderate shape (bfloat16 without
  // AVX-512 runs a scalar loop, so a large shape would take minutes).
  json gemm_by_dtype = json::object();
  for (const char* kind : {"float32", "bfloat16", "int8"}) {
    const auto probe = devtools::probe_gemm(64, 1536, 1536, kind);
    gemm_by_dtype[kind] = {{"shape", {probe.m, probe.k, probe.n}}, {"gflops", probe.gflops}};
  }

  // Decode is memory-bound: one step reads every decoder weight once, for
  // one row or many, so a batched step costs about one and reasoning about N
  // statements about one stream.
  // The host's read bandwidth in this run: the ceiling of a decode step.
  const double host_read_gb_per_s = devtools::probe_read_bandwidth_gbps();
  auto decode_batching_json = [&](const devtools::VlmComponents& c) {
    json reasoning = json::array();
    for (const auto& r : c.reasoning) {
      reasoning.push_back({{"conversations", r.conversations}, {"tokens_each", devtools::kReasoningTokens},
                           {"one_at_a_time_seconds", r.sequential_seconds}, {"batched_seconds", r.batched_seconds}});
    }
    auto gb_per_s = [&](double seconds) { return seconds > 0 ? c.decoder_weight_bytes / seconds / 1e9 : 0.0; };
    return json{{"decoder_weight_bytes", c.decoder_weight_bytes},
                {"step_seconds_batch_1", c.decode.seconds},
                {"step_seconds_batch_" + std::to_string(devtools::kDecodeBatchRows), c.decode_batch.seconds},
                {"weights_gb_per_s_batch_1", gb_per_s(c.decode.seconds)},
                {"host_read_gb_per_s", host_read_gb_per_s},
                {"fraction_of_host_bandwidth_batch_1", gb_per_s(c.decode.seconds) / host_read_gb_per_s},
                {"weights_gb_per_s_batch_" + std::to_string(devtools::kDecodeBatchRows), gb_per_s(c.decode_batch.seconds)},
                {"reasoning", reasoning}};
  };
  const double judge_seconds = results.front()["imgjudge"]["seconds_per_image"].get<double>();
  // Components at the first size, through the engine the Judge runs, each
  // next to the same-shape GEMM.
  json component_report;
  {
    const auto components = devtools::probe_vlm_components(model_dir, dtype, test_image(sizes.front(), 0), questions);
    auto gemm = [&](std::int64_t m, std::int64_t k, std::int64_t n) { return devtools::probe_gemm(m, k, n, dtype); };
    const auto gemm_vision = gemm(components.vision.tokens, components.vision_width, components.vision_intermediate);
    const auto gemm_prefill = gemm(components.prefix_tokens, components.hidden_size, components.intermediate_size);
    const auto gemm_scoring = gemm(components.scoring.tokens, components.hidden_size, components.intermediate_size);
    const auto gemm_decode = gemm(1, components.hidden_size, components.intermediate_size);
    auto component_json = [](const devtools::ComponentTiming& c, const devtools::GemmProbe& g) {
      return json{{"seconds", c.seconds}, {"tokens", c.tokens}, {"gflop", c.flops / 1e9},
                  {"achieved_gflops", c.gflops()}, {"gemm_gflops_same_shape", g.gflops},
                  {"gemm_shape", {g.m, g.k, g.n}}, {"efficiency", c.gflops() / g.gflops}};
    };
    // The physical floor of one image at this machine's GEMM rates: the vision
    // tower, one prefill of the prefix and the questions' own tokens, each at
    // the speed of a plain GEMM of its shape.
    const double floor_seconds = components.vision.flops / (gemm_vision.gflops * 1e9) +
                                 components.prefill.flops / (gemm_prefill.gflops * 1e9) +
                                 components.scoring.flops / (gemm_scoring.gflops * 1e9);
    component_report = {
        {"components", {{"image_size", size_label(sizes.front())},
                        {"image_tokens", components.image_tokens},
                        {"prefix_tokens", components.prefix_tokens},
                        {"question_head_tokens", components.question_head_tokens},
                        {"tokens_per_question", components.tokens_per_question},
                        {"vision", component_json(components.vision, gemm_vision)},
                        {"prefill", component_json(components.prefill, gemm_prefill)},
                        {"scoring", component_json(components.scoring, gemm_scoring)},
                        {"decode", component_json(components.decode, gemm_decode)}}},
        {"decode_batching", decode_batching_json(components)},
        {"prefill_efficiency", components.prefill.gflops() / gemm_prefill.gflops},
        {"scoring_efficiency", components.scoring.gflops() / gemm_scoring.gflops},
        {"floor_seconds_per_image", floor_seconds},
        {"fraction_of_floor", floor_seconds / judge_seconds}};
  }
  // The strategy-2 locator, at the first size's photo (its processor makes
  // its own size from it), with the object phrases of the default constitution.
  json locator_report = nullptr;
  if (!locator_dir.empty()) {
    std::vector<std::string> phrases;
    for (const auto& rule : Constitution::builtin_default().rules) {
      for (const auto& item : rule.chain) {
        for (const auto& object : item.objects) {
          if (std::find(phrases.begin(), phrases.end(), object) == phrases.end()) phrases.push_back(object);
        }
      }
    }
    const Image photo = load_image_file(IMGJUDGE_SOURCE_DIR "/examples/images/rocket.jpg");
    const auto locator = devtools::probe_locator(locator_dir, dtype, photo, phrases);
    const auto gemm_vision = devtools::probe_gemm(locator.encode.tokens + 1, locator.vision_width,
                                                  locator.vision_intermediate, dtype);
    auto timing = [](const devtools::ComponentTiming& c) { return json{{"seconds", c.seconds}, {"count", c.tokens}}; };
    locator_report = {
        {"dir", locator_dir},
        {"family", locator.model_type},
        {"config", json::parse(util::read_file_text(util::join_path(locator_dir, "config.json")))},
        {"image", {{"file", "examples/images/rocket.jpg"}, {"width", photo.width}, {"height", photo.height}}},
        {"image_size", locator.image_size},
        {"patches", locator.encode.tokens},
        {"load_seconds", locator.load_seconds},
        {"preprocess_seconds", locator.preprocess.seconds},
        {"encode", {{"seconds", locator.encode.seconds}, {"vit_gflop", locator.encode.flops / 1e9},
                    {"achieved_gflops", locator.encode.gflops()}, {"gemm_gflops_same_shape", gemm_vision.gflops},
                    {"gemm_shape", {gemm_vision.m, gemm_vision.k, gemm_vision.n}},
                    {"efficiency", locator.encode.gflops() / gemm_vision.gflops}}},
        {"embed_phrases", timing(locator.embed_phrases)},
        {"locate_all_phrases", timing(locator.locate)},
        // What strategy 2 adds to an image that needs it, next to the Judge's
        // own time for the image (plus one VLM score per item it touches).
        {"encode_over_judge_seconds_per_image", locator.encode.seconds / judge_seconds}};
    fmt::print(stderr, "bench: locator {}: encode {:.2f} s/image ({} patches, {:.0f} GFLOP/s), {} phrases embedded in "
               "{:.3f} s, located in {:.4f} s\n", locator.model_type, locator.encode.seconds, locator.encode.tokens,
               locator.encode.gflops(), phrases.size(), locator.embed_phrases.seconds, locator.locate.seconds);
  }

  json report = {
      {"benchmark", "imgjudge.bench_judge/2"},
      {"machine", {{"cpu", devtools::cpu_model()}, {"cores", std::thread::hardware_concurrency()},
                   {"avx512bw", devtools::cpu_flag("avx512bw")}, {"avx512_bf16", devtools::cpu_flag("avx512_bf16")},
                   {"blas", devtools::blas_library()}, {"gemm_by_dtype", gemm_by_dtype}}},
      {"model", {{"dir", model_dir}, {"family", family}, {"config", json::parse(util::read_file_text(util::join_path(model_dir, "config.json")))}}},
      {"dtype", dtype},
      {"threads", threads},
      {"quick", quick},
      {"full_depth", full_depth},
      {"weights_bytes", weights},
      {"rss_growth_at_load_bytes", rss_growth_at_load},
      {"load_seconds", load_s},
      {"cold", {{"image_size", size_label(sizes.front())},
                {"image", {{"width", cold_image.width}, {"height", cold_image.height}}},
                {"page_cache_dropped", drop_caches},
                {"seconds", cold_s},
                {"prepare_ms", cold_verdict.timings.prepare_ms},
                {"scoring_ms", cold_verdict.timings.scoring_ms},
                {"warm_seconds_per_image", judge_seconds},
                {"cold_over_warm", cold_s / judge_seconds}}},
      {"judge_construction_seconds", construct_s},
      {"workload", {{"rules", constitution.rules.size()}, {"questions", questions.size()},
                    {"answer_spellings", answer_spellings_name(constitution.answer_spellings)},
                    {"early_exit", false}, {"relevance", false}, {"cascade", false}}},
      {"end_to_end", results},
      {"speedup_vs_naive", results.front()["speedup_vs_naive"]},
      {"images_per_s", results.front()["imgjudge"]["images_per_s"]},
      {"peak_rss_bytes", judging_peak_rss},
      {"peak_rss_over_weights", double(judging_peak_rss) / double(weights)},
      {"rss_before_load_bytes", rss_before_load},
      {"load_peak_rss_bytes", load_peak_rss},
      {"int8_vs_float32", int8_vs_float32},
      {"locator", locator_report},
      {"tensor_cache", tensor_cache_json()},
  };
  report.update(component_report);
  // The Judge's shared-prefix, packed scoring must give the naive loop's
  // answers: exactly up to float32 rounding, within bfloat16/int8 rounding otherwise.
  double worst = 0;
  for (const auto& result : results) worst = std::max(worst, result["max_score_difference_vs_naive"].get<double>());
  const double tolerance = dtype == "float32" ? 1e-4 : 0.02;
  report["score_check"] = {{"max_score_difference_vs_naive", worst}, {"tolerance", tolerance},
                           {"passed", worst <= tolerance}};
  const std::string text = report.dump(2);
  fmt::print("{}\n", text);
  if (!out_path.empty()) std::ofstream(out_path) << text << "\n";
  if (worst > tolerance) {
    fmt::print(stderr, "imgjudge_bench: the Judge's scores differ from the naive loop's by {:.3g} (> {:g})\n", worst,
               tolerance);
    return 1;
  }
  return 0;
} catch (const Error& e) {
  fmt::print(stderr, "imgjudge_bench: error [{}]: {}\n", error_code_name(e.code()), e.what());
  return 2;
}
