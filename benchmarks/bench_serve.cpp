// Load test of `imgjudge serve` (docs/serve.md, "Throughput and latency").
//
// For 1..N concurrent clients, each sending its share of a fixed number of
// images back to back, measures throughput (answers per second) and latency
// percentiles two ways over the same models and images:
//   http    the real server (serve::Server, in this process, on 127.0.0.1 with a
//           free port) and cpp-httplib clients with keep-alive: what a platform sees;
//   direct  the in-process Judge called from the same number of threads: the
//           floor the HTTP layer, the queue and the workers add to.
// Bounded: --requests per client per level, nothing runs open-ended. Prints JSON.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "devtools/host_info.hpp"
#include "imgjudge/imgjudge.hpp"
#include "serve/serve.hpp"

using namespace imgjudge;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

const char* kHelp = R"(usage: imgjudge_serve_bench [--clients 1,2,4] [--requests N] [--workers N]
                            [--mode http|direct|both] [--image FILE]... [--constitution FILE]
                            [--backend torch|scripted] [--model DIR] [--relevance-model DIR]
                            [--locator-model DIR] [--script FILE] [--dtype T] [--threads N]
                            [--out FILE]

For each number of concurrent clients in --clients, every client sends
--requests images (default 8) back to back; reported per level: answers, HTTP
statuses, seconds, throughput (answers/s) and latency percentiles (p50, p90, p99,
max, in ms), for the server over HTTP and for the Judge called directly.
--workers: the server's judging workers (default 1); its queue holds every
client, so no request is refused and the latencies include the queue wait.
Without --model: the scripted backend on examples/demo/scripted-answers.toml,
which measures the serving overhead alone (HTTP, queue, decoding, the Judge's
bookkeeping), not a model. Images: examples/images/*, in turn.
)";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, fmt::format("{}: cannot open", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const int value = std::stoi(item);
    if (value < 1 || value > 256) throw Error(ErrorCode::InvalidArgument, "--clients values must be 1..256");
    out.push_back(value);
  }
  return out;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100.0 * double(sorted.size()))));
  return sorted[std::min(rank, sorted.size()) - 1];
}

struct Level {
  std::vector<double> latencies_ms;
  std::map<std::string, int> outcomes;  // HTTP status, or the error code of a direct call
  double seconds = 0;
};

json report(const Level& level, int clients) {
  std::vector<double> sorted = level.latencies_ms;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (const double ms : sorted) sum += ms;
  const int ok = level.outcomes.count("200") ? level.outcomes.at("200") : level.outcomes.count("ok") ? level.outcomes.at("ok") : 0;
  return {{"clients", clients},
          {"requests", sorted.size()},
          {"outcomes", level.outcomes},
          {"seconds", level.seconds},
          {"throughput_per_second", level.seconds > 0 ? ok / level.seconds : 0},
          {"latency_ms",
           {{"p50", percentile(sorted, 50)},
            {"p90", percentile(sorted, 90)},
            {"p99", percentile(sorted, 99)},
            {"max", sorted.empty() ? 0 : sorted.back()},
            {"mean", sorted.empty() ? 0 : sum / double(sorted.size())}}}};
}

// `clients` threads, each running `one(client, request)` `requests` times; each call returns its outcome.
template <typename One>
Level run_level(int clients, int requests, One one) {
  Level level;
  std::mutex mutex;
  std::vector<std::thread> threads;
  const auto started = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto state = one.client_state();
      for (int r = 0; r < requests; ++r) {
        const auto t0 = Clock::now();
        const std::string outcome = one(state, c * requests + r);
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        std::lock_guard lock(mutex);
        level.latencies_ms.push_back(ms);
        ++level.outcomes[outcome];
      }
    });
  }
  for (auto& t : threads) t.join();
  level.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return level;
}

struct HttpOne {
  int port;
  const std::vector<std::string>* images;
  struct State {
    std::unique_ptr<httplib::Client> client;
  };
  State client_state() const {
    State s{std::make_unique<httplib::Client>("127.0.0.1", port)};
    s.client->set_keep_alive(true);
    s.client->set_tcp_nodelay(true);  // as the server: no 40 ms Nagle / delayed-ACK stalls
    s.client->set_read_timeout(std::chrono::seconds(3600));
    return s;
  }
  std::string operator()(State& s, int index) const {
    const std::string& bytes = (*images)[static_cast<std::size_t>(index) % images->size()];
    const auto result = s.client->Post("/v1/judge", bytes, "application/octet-stream");
    return result ? std::to_string(result->status) : "connection_error";
  }
};

struct DirectOne {
  const Judge* judge;
  const std::vector<std::string>* images;
  struct State {};
  State client_state() const { return {}; }
  std::string operator()(State&, int index) const {
    const std::string& bytes = (*images)[static_cast<std::size_t>(index) % images->size()];
    try {
      judge->judge_bytes(bytes.data(), bytes.size());
      return "ok";
    } catch (const Error& e) {
      return error_code_name(e.code());
    }
  }
};

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> args(argv + 1, argv + argc);
  serve::ServeOptions options;
  options.log_requests = false;
  options.port = 0;
  options.default_deadline = std::chrono::milliseconds(0);
  std::vector<int> clients = {1, 2, 4};
  int requests = 8;
  std::string mode = "both", out_path;
  std::vector<std::string> image_paths;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw Error(ErrorCode::InvalidArgument, args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--help") {
      fmt::print("{}", kHelp);
      return 0;
    } else if (args[i] == "--clients") {
      clients = parse_list(value());
    } else if (args[i] == "--requests") {
      requests = std::stoi(value());
    } else if (args[i] == "--workers") {
      options.workers = std::stoi(value());
    } else if (args[i] == "--mode") {
      mode = value();
    } else if (args[i] == "--image") {
      image_paths.push_back(value());
    } else if (args[i] == "--constitution") {
      options.constitution_files.push_back(value());
    } else if (args[i] == "--backend") {
      options.models.backend = value();
    } else if (args[i] == "--model") {
      options.models.model_dir = value();
    } else if (args[i] == "--relevance-model") {
      options.models.relevance_model_dir = value();
    } else if (args[i] == "--locator-model") {
      options.models.locator_model_dir = value();
    } else if (args[i] == "--script") {
      options.models.script_path = value();
    } else if (args[i] == "--dtype") {
      options.models.dtype = value();
    } else if (args[i] == "--threads") {
      options.models.threads = std::stoi(value());
    } else if (args[i] == "--out") {
      out_path = value();
    } else {
      throw Error(ErrorCode::InvalidArgument, fmt::format("unknown option {}; see --help", args[i]));
    }
  }
  if (requests < 1 || requests > 100000) throw Error(ErrorCode::InvalidArgument, "--requests must be 1..100000");
  if (mode != "http" && mode != "direct" && mode != "both") {
    throw Error(ErrorCode::InvalidArgument, "--mode must be http, direct or both");
  }
  if (options.models.model_dir.empty() && options.models.script_path.empty()) {
    options.models.backend = "scripted";
    options.models.script_path = IMGJUDGE_SOURCE_DIR "/examples/demo/scripted-answers.toml";
  }
  if (image_paths.empty()) {
    for (const char* name : {"chelsea.png", "coffee.png", "rocket.jpg"}) {
      image_paths.push_back(std::string(IMGJUDGE_SOURCE_DIR "/examples/images/") + name);
    }
  }
  std::vector<std::string> images;
  for (const auto& path : image_paths) images.push_back(read_file(path));
  const int most_clients = *std::max_element(clients.begin(), clients.end());
  options.queue = static_cast<std::size_t>(most_clients);  // every client admitted: latency, not 429s

  json levels_http = json::array(), levels_direct = json::array();
  double load_seconds = 0;
  if (mode != "http") {
    const auto started = Clock::now();
    const Models models = load_models(options.models);
    const Judge judge(options.constitution_files.empty() ? Constitution::builtin_default()
                                                         : Constitution::from_file(options.constitution_files.front()),
                      models, options.judge);
    load_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    DirectOne one{&judge, &images};
    run_level(1, 1, one);  // warm-up
    for (const int c : clients) {
      fmt::print(stderr, "direct: {} clients x {} requests\n", c, requests);
      levels_direct.push_back(report(run_level(c, requests, one), c));
    }
  }
  if (mode != "direct") {
    serve::Server server(options);
    server.start();
    server.load();
    HttpOne one{server.port(), &images};
    run_level(1, 1, one);  // warm-up
    for (const int c : clients) {
      fmt::print(stderr, "http: {} clients x {} requests\n", c, requests);
      levels_http.push_back(report(run_level(c, requests, one), c));
    }
    server.shutdown();
  }

  const json out = {
      {"benchmark", "imgjudge.bench_serve/1"},
      {"machine", {{"cpu", devtools::cpu_model()}, {"cores", std::thread::hardware_concurrency()}}},
      {"models",
       {{"backend", options.models.backend},
        {"model", options.models.model_dir},
        {"relevance_model", options.models.relevance_model_dir},
        {"locator_model", options.models.locator_model_dir},
        {"script", options.models.script_path},
        {"dtype", options.models.dtype},
        {"threads", options.models.threads}}},
      {"constitution", options.constitution_files.empty() ? json("builtin") : json(options.constitution_files.front())},
      {"images", image_paths},
      {"workers", options.workers},
      {"requests_per_client", requests},
      {"direct_load_seconds", load_seconds},
      {"http", levels_http},
      {"direct", levels_direct},
  };
  const std::string text = out.dump(2) + "\n";
  fmt::print("{}", text);
  if (!out_path.empty()) std::ofstream(out_path) << text;
  return 0;
} catch (const Error& e) {
  fmt::print(stderr, "imgjudge_serve_bench: error [{}]: {}\n", error_code_name(e.code()), e.what());
  return 2;
} catch (const std::exception& e) {
  fmt::print(stderr, "imgjudge_serve_bench: {}\n", e.what());
  return 2;
}
