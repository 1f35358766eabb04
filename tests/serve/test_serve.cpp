// `imgjudge serve` end to end: the real server process on 127.0.0.1 (a free
// port it picks and logs), driven by a real HTTP client. The scripted backend
// (with encode_delay_ms for calls of a known length) makes overload, deadlines,
// disconnects and shutdown deterministic; a random-weight Qwen2-VL runs the
// real model code behind the same endpoints.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

extern char** environ;

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string kSource = IMGJUDGE_SOURCE_DIR;
const std::string kRocket = kSource + "/examples/images/rocket.jpg";
const std::string kCoffee = kSource + "/examples/images/coffee.png";
const std::string kFireConstitution = kSource + "/tests/data/score/fire-constitution.toml";
const std::string kDefaultConstitution = kSource + "/src/core/default_constitution.toml";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A scratch folder, removed afterwards.
struct Scratch {
  fs::path dir;
  Scratch() {
    char pattern[] = "/tmp/imgjudge-serve-XXXXXX";
    dir = mkdtemp(pattern);
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  std::string file(const std::string& name, const std::string& text) const {
    write_file((dir / name).string(), text);
    return (dir / name).string();
  }
};

// The answers of tests/data/score/region-answers.toml (the rocket's fire found
// by the locator, so fire-constitution.toml judges it unsafe by strategy 2),
// with the encode delay and load delay a test needs.
std::string script(Scratch& scratch, int encode_delay_ms, int load_delay_ms = 0) {
  std::string text = read_file(kSource + "/tests/data/score/region-answers.toml");
  // Its image paths are relative to tests/data/score: make them absolute.
  text = std::regex_replace(text, std::regex("file = \"\\.\\./"), "file = \"" + kSource + "/tests/data/");
  text = std::regex_replace(text, std::regex("file = \"(?!/)"), "file = \"" + kSource + "/tests/data/score/");
  const std::string delays =
      "encode_delay_ms = " + std::to_string(encode_delay_ms) + "\nload_delay_ms = " + std::to_string(load_delay_ms) + "\n";
  const auto defaults = text.find("[defaults]\n");
  if (defaults == std::string::npos) {
    text = "[defaults]\n" + delays + text;
  } else {
    text.insert(defaults + std::string("[defaults]\n").size(), delays);
  }
  return scratch.file("script.toml", text);
}

// The `imgjudge serve` process, its stderr read line by line (JSON log lines).
class ServerProcess {
 public:
  enum class Wait { Exit, Listening, Ready };
  explicit ServerProcess(const std::vector<std::string>& options, Wait wait = Wait::Ready,
                         const std::string& listen = "127.0.0.1:0") {
    std::vector<std::string> args = {IMGJUDGE_CLI, "serve", "--listen", listen};
    args.insert(args.end(), options.begin(), options.end());
    int pipe_fds[2];
    REQUIRE(pipe2(pipe_fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const int spawned = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    REQUIRE(spawned == 0);
    reader_ = std::thread([this, fd = pipe_fds[0]] { read_lines(fd); });
    if (wait == Wait::Exit) return;
    const json listening = wait_for_log([](const json& line) { return line.value("event", "") == "listening"; }, 30s);
    REQUIRE(listening.is_object());
    const std::string address = listening["address"];
    port_ = std::stoi(address.substr(address.rfind(':') + 1));
    if (wait == Wait::Ready) {
      REQUIRE(wait_for_log([](const json& line) { return line.value("event", "") == "ready"; }, 60s).is_object());
    }
  }

  ~ServerProcess() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    reader_.join();
  }

  int port() const { return port_; }

  httplib::Client client(std::chrono::milliseconds read_timeout = 30s) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(read_timeout);
    c.set_connection_timeout(5s);
    return c;
  }

  void signal(int number) const { REQUIRE(kill(pid_, number) == 0); }

  // The exit status, or nullopt if the process is still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      int status = 0;
      const pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

  // The first log line (in order) matching `match`, waiting for it; null on timeout.
  json wait_for_log(const std::function<bool(const json&)>& match, std::chrono::milliseconds timeout,
                    std::size_t skip = 0) {
    std::unique_lock lock(mutex_);
    json found;
    arrived_.wait_for(lock, timeout, [&] {
      std::size_t seen = 0;
      for (const auto& line : lines_) {
        if (match(line) && seen++ == skip) {
          found = line;
          return true;
        }
      }
      return closed_;
    });
    return found;
  }

  std::vector<json> log_lines(const std::string& event) {
    std::lock_guard lock(mutex_);
    std::vector<json> out;
    for (const auto& line : lines_) {
      if (line.value("event", "") == event) out.push_back(line);
    }
    return out;
  }

  std::string all_output() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) out += line.dump() + "\n";
    return out;
  }

 private:
  void read_lines(int fd) {
    std::string pending;
    char buffer[4096];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      pending.append(buffer, static_cast<std::size_t>(n));
      for (auto newline = pending.find('\n'); newline != std::string::npos; newline = pending.find('\n')) {
        const std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        json parsed = json::parse(line, nullptr, false);
        if (parsed.is_discarded()) parsed = json{{"event", "text"}, {"text", line}};
        {
          std::lock_guard lock(mutex_);
          lines_.push_back(std::move(parsed));
        }
        arrived_.notify_all();
      }
    }
    close(fd);
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    arrived_.notify_all();
  }

  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<json> lines_;
  bool closed_ = false;
};

json body_of(const httplib::Result& result) {
  REQUIRE(result);
  const json parsed = json::parse(result->body, nullptr, false);
  INFO(result->body);
  REQUIRE_FALSE(parsed.is_discarded());
  return parsed;
}

// The error code of a JSON error answer, checking its form: {"error": {"code", "message"}}.
std::string error_code_of(const httplib::Result& result) {
  const json body = body_of(result);
  INFO(result->body);
  REQUIRE(body.contains("error"));
  REQUIRE(body["error"]["code"].is_string());
  REQUIRE(body["error"]["message"].is_string());
  CHECK_FALSE(body["error"]["message"].get<std::string>().empty());
  CHECK(result->get_header_value("Content-Type") == "application/json");
  return body["error"]["code"];
}

httplib::Result post_image(httplib::Client& client, const std::string& target, const std::string& bytes) {
  return client.Post(target.c_str(), bytes, "application/octet-stream");
}

// The value of an unlabelled or fully labelled sample in a Prometheus text page.
std::optional<double> metric(const std::string& page, const std::string& sample) {
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  }
  return std::nullopt;
}

std::string metrics_page(const ServerProcess& server) {
  auto client = server.client();
  const auto result = client.Get("/metrics");
  REQUIRE(result);
  REQUIRE(result->status == 200);
  CHECK(result->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  return result->body;
}

bool is_request_with_id(const json& line, const std::string& id) {
  return line.value("event", "") == "request" && line.value("request_id", "") == id;
}

}  // namespace

TEST_CASE("serve: every endpoint, its parameters and its errors", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 0), "--constitution", kFireConstitution,
                        "--constitution", kDefaultConstitution});
  auto client = server.client();
  const std::string rocket = read_file(kRocket);

  SECTION("health, readiness and the constitutions") {
    auto result = client.Get("/healthz");
    REQUIRE(result);
    CHECK(result->status == 200);
    CHECK(body_of(result)["status"] == "ok");
    result = client.Get("/readyz");
    CHECK(result->status == 200);
    CHECK(body_of(result)["status"] == "ready");
    result = client.Get("/v1/constitutions");
    REQUIRE(result->status == 200);
    const json listing = body_of(result);
    CHECK(listing["default"] == "strategy-2-fire");
    REQUIRE(listing["constitutions"].size() == 2);
    CHECK(listing["constitutions"][0]["name"] == "strategy-2-fire");
    CHECK(listing["constitutions"][0]["source"] == kFireConstitution);
    CHECK(listing["constitutions"][1]["name"] == "imgjudge-default");
    CHECK(listing["constitutions"][1]["rules"] == 18);
    for (const auto& c : listing["constitutions"]) {
      CHECK(std::regex_match(c["hash"].get<std::string>(), std::regex("sha256:[0-9a-f]{64}")));
      CHECK_FALSE(c["version"].get<std::string>().empty());
    }
    CHECK(listing["models"]["vlm"].get<std::string>().rfind("scripted:", 0) == 0);
  }

  SECTION("the OpenAPI description names exactly the endpoints the server answers") {
    std::istringstream yaml(read_file(kSource + "/docs/serve-openapi.yaml"));
    std::vector<std::string> documented;
    std::string line;
    const std::regex path_line("^  (/[^:]*):$");
    std::smatch match;
    while (std::getline(yaml, line)) {
      if (std::regex_match(line, match, path_line)) documented.push_back(match[1]);
    }
    CHECK(documented == std::vector<std::string>{"/v1/judge", "/v1/score", "/v1/constitutions", "/healthz", "/readyz",
                                                 "/metrics"});
    for (const auto& path : documented) {
      INFO(path);
      const bool post = path == "/v1/judge" || path == "/v1/score";
      const auto result = post ? post_image(client, path, rocket) : client.Get(path.c_str());
      REQUIRE(result);
      CHECK(result->status != 404);
      CHECK(result->status != 405);
    }
  }

  SECTION("judge: raw body, multipart, constitution by name, stage switches, request ids") {
    httplib::Headers headers = {{"X-Request-Id", "client-id-42"}};
    auto result = client.Post("/v1/judge", headers, rocket, "image/jpeg");
    REQUIRE(result);
    REQUIRE(result->status == 200);
    CHECK(result->get_header_value("X-Request-Id") == "client-id-42");
    json verdict = body_of(result);
    CHECK(verdict["schema"] == "imgjudge.verdict/2");
    CHECK(verdict["constitution"]["name"] == "strategy-2-fire");
    CHECK(verdict["decision"] == "unsafe");
    CHECK(verdict["violated_rules"] == json::array({"fire"}));

    // The log line of that request: id, constitution and its hash, decision, status, timings.
    const json logged = server.wait_for_log([](const json& l) { return is_request_with_id(l, "client-id-42"); }, 5s);
    REQUIRE(logged.is_object());
    CHECK(logged["endpoint"] == "/v1/judge");
    CHECK(logged["status"] == 200);
    CHECK(logged["decision"] == "unsafe");
    CHECK(logged["constitution"]["name"] == "strategy-2-fire");
    CHECK(logged["constitution"]["hash"] == verdict["constitution"]["hash"]);
    CHECK(logged["timings_ms"]["total"].get<double>() > 0);
    CHECK(logged["timings_ms"].contains("queue"));
    CHECK(logged["duration_ms"].get<double>() >= logged["timings_ms"]["total"].get<double>());

    httplib::MultipartFormDataItems form = {{"image", rocket, "rocket.jpg", "image/jpeg"},
                                            {"constitution", "imgjudge-default", "", ""}};
    result = client.Post("/v1/judge", form);
    REQUIRE(result);
    REQUIRE(result->status == 200);
    verdict = body_of(result);
    CHECK(verdict["constitution"]["name"] == "imgjudge-default");
    CHECK(verdict["decision"] == "safe");
    // A generated request id when the client sends none.
    CHECK_FALSE(result->get_header_value("X-Request-Id").empty());

    // Strategy 2 switched off for this request only: the fire is no longer found.
    result = post_image(client, "/v1/judge?locator=false", rocket);
    REQUIRE(result->status == 200);
    verdict = body_of(result);
    CHECK(verdict["decision"] != "unsafe");
    CHECK(verdict["notes"].dump().find("strategy 2 off (ablation)") != std::string::npos);
    // ... and the server's own Judge is untouched by it.
    result = post_image(client, "/v1/judge", rocket);
    CHECK(body_of(result)["decision"] == "unsafe");
  }

  SECTION("judge: every argument error is a JSON error with its status") {
    struct Case {
      std::string target;
      int status;
      std::string code;
    };
    for (const Case& c : std::vector<Case>{
             {"/v1/judge?constitution=no-such", 404, "not_found"},
             {"/v1/judge?dedline_ms=100", 400, "invalid_argument"},
             {"/v1/judge?deadline_ms=soon", 400, "invalid_argument"},
             {"/v1/judge?deadline_ms=0", 400, "invalid_argument"},
             {"/v1/judge?deadline_ms=99999999999", 400, "invalid_argument"},
             {"/v1/judge?cascade=maybe", 400, "invalid_argument"},
             {"/v1/judge?constitution=a&constitution=b", 400, "invalid_argument"},
             {"/v1/no-such-endpoint", 404, "not_found"},
         }) {
      INFO(c.target);
      const auto result = post_image(client, c.target, rocket);
      REQUIRE(result);
      CHECK(result->status == c.status);
      CHECK(error_code_of(result) == c.code);
    }
    auto result = client.Get("/v1/judge");
    REQUIRE(result);
    CHECK(result->status == 405);
    CHECK(result->get_header_value("Allow") == "POST");
    CHECK(error_code_of(result) == "method_not_allowed");

    result = post_image(client, "/v1/judge", "");
    CHECK(result->status == 400);
    CHECK(error_code_of(result) == "invalid_argument");
    result = post_image(client, "/v1/judge", read_file(kSource + "/examples/images/LICENSES.md"));
    CHECK(result->status == 400);
    CHECK(error_code_of(result) == "invalid_image");
    // curl -d / --data-binary without a content type: form-urlencoded, refused with the command that works.
    for (const std::size_t size : {std::size_t{100}, rocket.size()}) {
      result = client.Post("/v1/judge", rocket.substr(0, size), "application/x-www-form-urlencoded");
      REQUIRE(result);
      CHECK(result->status == 400);
      CHECK(error_code_of(result) == "invalid_argument");
      CHECK(body_of(result)["error"]["message"].get<std::string>().find("--data-binary") != std::string::npos);
    }
    httplib::MultipartFormDataItems no_image = {{"constitution", "strategy-2-fire", "", ""}};
    result = client.Post("/v1/judge", no_image);
    CHECK(result->status == 400);
    CHECK(body_of(result)["error"]["message"] == "the multipart form has no 'image' part");
    httplib::MultipartFormDataItems unknown_field = {{"image", rocket, "r.jpg", "image/jpeg"}, {"colour", "red", "", ""}};
    result = client.Post("/v1/judge", unknown_field);
    CHECK(result->status == 400);
    CHECK(body_of(result)["error"]["message"].get<std::string>().find("unknown parameter 'colour'") != std::string::npos);
  }

  SECTION("score: the score command's document") {
    auto result = post_image(client, "/v1/score?statement=A%20gun%20is%20visible%20in%20the%20image.", rocket);
    REQUIRE(result);
    REQUIRE(result->status == 200);
    json document = body_of(result);
    CHECK(document["schema"] == "imgjudge.score/1");
    REQUIRE(document["questions"].size() == 1);
    CHECK(document["questions"][0]["statement"] == "A gun is visible in the image.");
    CHECK(document["questions"][0]["decision"].is_string());
    CHECK(document["image"]["width"] == 640);
    CHECK(document["constitution"].is_null());
    CHECK(document["timings_ms"].contains("queue"));

    // As a rule asks (tests/data/score/fire-constitution.toml): its chain, with strategy 2's evidence.
    httplib::MultipartFormDataItems form = {{"image", rocket, "rocket.jpg", "image/jpeg"},
                                            {"constitution", "strategy-2-fire", "", ""},
                                            {"rule", "fire", "", ""}};
    result = client.Post("/v1/score", form);
    REQUIRE(result->status == 200);
    document = body_of(result);
    CHECK(document["rule"] == "fire");
    CHECK(document["constitution"]["name"] == "strategy-2-fire");
    CHECK(document["questions"].dump().find("\"region\":{\"action\":\"erase\"") != std::string::npos);

    form = {{"image", rocket, "rocket.jpg", "image/jpeg"},
            {"questions", "# two statements\nA cat is visible.\n{\"statement\": \"Fire is visible.\", \"objects\": [\"fire\"]}\n", "", ""}};
    result = client.Post("/v1/score", form);
    REQUIRE(result->status == 200);
    CHECK(body_of(result)["questions"].size() == 2);

    for (const std::string& target : {std::string("/v1/score"), std::string("/v1/score?rule=no-such"),
                                      std::string("/v1/score?statement=x&template=no%20placeholder"),
                                      std::string("/v1/score?statement=x&answer_spellings=some")}) {
      INFO(target);
      result = post_image(client, target, rocket);
      CHECK(result->status == 400);
      CHECK(error_code_of(result) == "invalid_argument");
    }
    form = {{"image", rocket, "rocket.jpg", "image/jpeg"}, {"questions", "{\"statement\": 3}\n", "", ""}};
    result = client.Post("/v1/score", form);
    CHECK(result->status == 400);
    CHECK(body_of(result)["error"]["message"] == "questions:1: missing string key \"statement\"");
  }

  SECTION("metrics: requests by endpoint and status, stage latencies, verdicts, queue, model load") {
    for (int i = 0; i < 3; ++i) REQUIRE(post_image(client, "/v1/judge", rocket)->status == 200);
    REQUIRE(post_image(client, "/v1/judge?constitution=no-such", rocket)->status == 404);
    const std::string page = metrics_page(server);
    INFO(page);
    CHECK(metric(page, "imgjudge_http_requests_total{endpoint=\"/v1/judge\",status=\"200\"}") == 3.0);
    CHECK(metric(page, "imgjudge_http_requests_total{endpoint=\"/v1/judge\",status=\"404\"}") == 1.0);
    CHECK(metric(page, "imgjudge_http_request_duration_seconds_count{endpoint=\"/v1/judge\"}") == 4.0);
    CHECK(metric(page, "imgjudge_images_judged_total{decision=\"unsafe\"}") == 3.0);
    for (const char* stage : {"queue", "decode", "relevance", "prepare", "scoring", "region", "locate", "reasoning", "total"}) {
      CHECK(metric(page, std::string("imgjudge_stage_duration_seconds_bucket{stage=\"") + stage + "\",le=\"+Inf\"}") == 3.0);
    }
    CHECK(metric(page, "imgjudge_queue_depth") == 0.0);
    CHECK(metric(page, "imgjudge_queue_capacity") == 16.0);
    CHECK(metric(page, "imgjudge_workers") == 1.0);
    CHECK(metric(page, "imgjudge_ready") == 1.0);
    CHECK(metric(page, "imgjudge_model_load_seconds") >= 0.0);
    CHECK(page.find("imgjudge_constitution_info{name=\"strategy-2-fire\",version=\"1\",hash=\"sha256:") != std::string::npos);
    // Unknown paths share one label: a client cannot grow the series.
    REQUIRE(client.Get("/x/1")->status == 404);
    REQUIRE(client.Get("/x/2")->status == 404);
    CHECK(metric(metrics_page(server), "imgjudge_http_requests_total{endpoint=\"other\",status=\"404\"}") == 2.0);
  }
}

TEST_CASE("serve: hostile images and oversized bodies are refused, the server stays up", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 0), "--constitution", kFireConstitution,
                        "--max-body-mb", "1"});
  auto client = server.client();
  int refused = 0;
  for (const auto& entry : fs::directory_iterator(kSource + "/tests/data/hostile/images")) {
    if (entry.path().extension() == ".cpp") continue;
    INFO(entry.path().string());
    const auto result = post_image(client, "/v1/judge", read_file(entry.path().string()));
    REQUIRE(result);
    if (result->status == 200) {
      CHECK(body_of(result)["schema"] == "imgjudge.verdict/2");  // a file that is hostile only in parts
      continue;
    }
    ++refused;
    const std::string code = error_code_of(result);
    CHECK(((result->status == 400 && (code == "invalid_image" || code == "invalid_argument")) ||
           (result->status == 413 && code == "limit_exceeded")));
  }
  CHECK(refused >= 20);

  // A body over --max-body-mb: 413, raw and multipart.
  const std::string big(std::size_t{1} << 21, 'x');
  auto result = post_image(client, "/v1/judge", big);
  REQUIRE(result);
  CHECK(result->status == 413);
  CHECK(error_code_of(result) == "limit_exceeded");
  httplib::MultipartFormDataItems form = {{"image", big, "big.png", "image/png"}};
  result = client.Post("/v1/judge", form);
  REQUIRE(result);
  CHECK(result->status == 413);
  // An image whose pixels pass the decoder's limits: 413 too.
  result = post_image(client, "/v1/judge", read_file(kSource + "/tests/data/hostile/images/png_huge_dimensions.png"));
  CHECK(result->status == 413);
  CHECK(error_code_of(result) == "limit_exceeded");

  // Still serving, and still right.
  CHECK(client.Get("/healthz")->status == 200);
  result = post_image(client, "/v1/judge", read_file(kRocket));
  REQUIRE(result->status == 200);
  CHECK(body_of(result)["decision"] == "unsafe");
}

TEST_CASE("serve: a burst over the queue gets 429s, every admitted request is answered", "[serve]") {
  Scratch scratch;
  // One worker, two waiting: three requests admitted at once; each takes 250 ms (one encode, relevance off).
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 250), "--constitution", kFireConstitution,
                        "--no-relevance", "--workers", "1", "--queue", "2"});
  const std::string rocket = read_file(kRocket);
  constexpr int kClients = 10;
  std::vector<int> statuses(kClients, 0);
  std::vector<std::string> retry_after(kClients), codes(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto client = server.client();
      const auto result = post_image(client, "/v1/judge", rocket);
      if (!result) return;  // status stays 0: counted as a failure below
      statuses[i] = result->status;
      retry_after[i] = result->get_header_value("Retry-After");
      const json body = json::parse(result->body, nullptr, false);
      if (result->status == 200) {
        codes[i] = body.value("decision", "");
      } else if (body.contains("error")) {
        codes[i] = body["error"].value("code", "");
      }
    });
  }
  for (auto& t : clients) t.join();
  int ok = 0, overloaded = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << statuses[i] << " " << codes[i]);
    if (statuses[i] == 200) {
      ++ok;
      CHECK(codes[i] == "unsafe");
    } else {
      REQUIRE(statuses[i] == 429);
      ++overloaded;
      CHECK(codes[i] == "overloaded");
      CHECK(std::stoi(retry_after[i]) >= 1);
    }
  }
  CHECK(ok >= 3);
  CHECK(overloaded >= 1);
  CHECK(ok + overloaded == kClients);
  const std::string page = metrics_page(server);
  CHECK(metric(page, "imgjudge_http_requests_total{endpoint=\"/v1/judge\",status=\"200\"}") == double(ok));
  CHECK(metric(page, "imgjudge_http_requests_total{endpoint=\"/v1/judge\",status=\"429\"}") == double(overloaded));
  CHECK(metric(page, "imgjudge_queue_depth") == 0.0);
  CHECK(metric(page, "imgjudge_workers_busy") == 0.0);
  CHECK(server.log_lines("request").size() >= std::size_t(kClients));
}

TEST_CASE("serve: deadlines, counted from arrival, are 504s", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 300), "--constitution", kFireConstitution,
                        "--no-relevance", "--workers", "1", "--default-deadline-ms", "150"});
  const std::string rocket = read_file(kRocket);
  auto client = server.client();

  // The default deadline (150 ms) is shorter than the 300 ms encode: 504, and promptly.
  auto started = Clock::now();
  auto result = post_image(client, "/v1/judge", rocket);
  REQUIRE(result);
  CHECK(result->status == 504);
  CHECK(error_code_of(result) == "deadline_exceeded");
  CHECK(Clock::now() - started < 290ms);
  // A request's own deadline_ms overrides it.
  result = post_image(client, "/v1/judge?deadline_ms=5000", rocket);
  REQUIRE(result->status == 200);
  result = post_image(client, "/v1/score?statement=Fire%20is%20visible.&deadline_ms=20", rocket);
  CHECK(result->status == 504);

  // Time spent waiting in the queue counts: behind a 300 ms request, 100 ms run out before a worker is free.
  std::thread first([&] {
    auto other = server.client();
    CHECK(post_image(other, "/v1/judge?deadline_ms=5000", rocket)->status == 200);
  });
  std::this_thread::sleep_for(60ms);
  started = Clock::now();
  result = post_image(client, "/v1/judge?deadline_ms=100", rocket);
  first.join();
  REQUIRE(result);
  CHECK(result->status == 504);
  const json logged = server.wait_for_log(
      [&](const json& l) { return is_request_with_id(l, result->get_header_value("X-Request-Id")); }, 5s);
  REQUIRE(logged.is_object());
  CHECK(logged["error"]["code"] == "deadline_exceeded");
  CHECK(logged["timings_ms"]["queue"].get<double>() >= 150);  // it waited for the first request's worker
}

TEST_CASE("serve: a client that goes away cancels its work", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 3000), "--constitution", kFireConstitution,
                        "--no-relevance", "--workers", "1", "--default-deadline-ms", "0"});
  const std::string rocket = read_file(kRocket);
  // A raw connection: send the request, wait until its work runs, hang up.
  const int socket_fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(socket_fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(server.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  const std::string request = "POST /v1/judge HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: goes-away\r\n"
                              "Content-Type: image/jpeg\r\nContent-Length: " +
                              std::to_string(rocket.size()) + "\r\n\r\n" + rocket;
  REQUIRE(send(socket_fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size()));
  // Wait until a worker runs it, then hang up.
  for (int i = 0; i < 200 && metric(metrics_page(server), "imgjudge_workers_busy") != 1.0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(metric(metrics_page(server), "imgjudge_workers_busy") == 1.0);
  const auto closed_at = Clock::now();
  close(socket_fd);

  const json logged = server.wait_for_log([](const json& l) { return is_request_with_id(l, "goes-away"); }, 10s);
  REQUIRE(logged.is_object());
  CHECK(logged["status"] == 499);
  CHECK(logged["error"]["code"] == "cancelled");
  CHECK(Clock::now() - closed_at < 1500ms);  // cancelled, not run for its 3 s
  CHECK(logged["duration_ms"].get<double>() < 2500);
  const std::string page = metrics_page(server);
  CHECK(metric(page, "imgjudge_workers_busy") == 0.0);
  CHECK(metric(page, "imgjudge_http_requests_total{endpoint=\"/v1/judge\",status=\"499\"}") == 1.0);
  CHECK(server.client().Get("/healthz")->status == 200);
}

TEST_CASE("serve: SIGHUP reloads the constitutions, a bad file is rejected and the old one kept", "[serve]") {
  Scratch scratch;
  const std::string original = read_file(kFireConstitution);
  const std::string path = scratch.file("policy.toml", original);
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 0), "--constitution", path});
  auto client = server.client();
  const auto served = [&] {
    const auto result = client.Get("/v1/constitutions");
    REQUIRE(result);
    return body_of(result)["constitutions"][0];
  };
  const json before = served();
  CHECK(before["version"] == "1");

  // Requests keep coming during both reloads: none may fail.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, failed{0};
  std::thread traffic([&] {
    auto c = server.client();
    const std::string rocket = read_file(kRocket);
    while (!stop) {
      const auto result = post_image(c, "/v1/judge", rocket);
      (result && result->status == 200 ? answered : failed)++;
    }
  });

  const std::string changed = std::regex_replace(original, std::regex("version = \"1\""), "version = \"2\"");
  REQUIRE(changed != original);
  write_file(path, changed);
  server.signal(SIGHUP);
  json reload = server.wait_for_log([](const json& l) { return l.value("event", "") == "reload"; }, 10s);
  REQUIRE(reload.is_object());
  CHECK(reload["result"] == "reloaded");
  CHECK(reload["version"] == "2");
  const json after = served();
  CHECK(after["version"] == "2");
  CHECK(after["hash"] != before["hash"]);
  CHECK(after["hash"] == reload["hash"]);

  write_file(path, "schema_version = 1\nname = \"broken\"\n[[rules]]\nid = 3\n");
  server.signal(SIGHUP);
  reload = server.wait_for_log([](const json& l) { return l.value("event", "") == "reload"; }, 10s, 1);
  REQUIRE(reload.is_object());
  CHECK(reload["result"] == "rejected");
  CHECK(reload["level"] == "error");
  CHECK(reload["error"]["code"] == "invalid_constitution");
  CHECK(reload["error"]["message"].get<std::string>().find(path) != std::string::npos);
  CHECK(reload["version"] == "2");  // what stays in service
  CHECK(served()["hash"] == after["hash"]);

  std::this_thread::sleep_for(100ms);
  stop = true;
  traffic.join();
  CHECK(failed == 0);
  CHECK(answered > 0);
  const json verdict = body_of(post_image(client, "/v1/judge", read_file(kRocket)));
  CHECK(verdict["constitution"]["version"] == "2");
  const std::string page = metrics_page(server);
  CHECK(metric(page, "imgjudge_constitution_reloads_total{result=\"ok\"}") == 1.0);
  CHECK(metric(page, "imgjudge_constitution_reloads_total{result=\"rejected\"}") == 1.0);
}

TEST_CASE("serve: SIGTERM lets in-flight work finish, then exits 0", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 300), "--constitution", kFireConstitution,
                        "--no-relevance", "--grace-seconds", "10"});
  std::optional<int> status;
  std::string decision;
  std::thread request([&] {
    auto client = server.client();
    const auto result = post_image(client, "/v1/judge", read_file(kRocket));
    if (result) {
      status = result->status;
      decision = json::parse(result->body, nullptr, false).value("decision", "");
    }
  });
  // A keep-alive connection that sits idle must not hold the exit back for its timeout.
  auto idle = server.client();
  idle.set_keep_alive(true);
  REQUIRE(idle.Get("/healthz")->status == 200);
  for (int i = 0; i < 200 && metric(metrics_page(server), "imgjudge_workers_busy") != 1.0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  server.signal(SIGTERM);
  REQUIRE(server.wait_for_log([](const json& l) { return l.value("phase", "") == "draining"; }, 5s).is_object());
  // No new connections once draining.
  auto late = server.client();
  late.set_connection_timeout(1s);
  CHECK_FALSE(late.Get("/healthz"));
  request.join();
  const auto answered = Clock::now();
  CHECK(status == 200);
  CHECK(decision == "unsafe");
  CHECK(server.wait_exit(10s) == 0);
  CHECK(Clock::now() - answered < 2s);  // not the 5 s keep-alive timeout of the idle connection
  const json stopped = server.wait_for_log([](const json& l) { return l.value("phase", "") == "stopped"; }, 1s);
  REQUIRE(stopped.is_object());
  CHECK(stopped["cancelled"] == 0);
}

TEST_CASE("serve: SIGTERM cancels work that outlasts the grace period, answered 503, exit 0", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 20000), "--constitution",
                        kFireConstitution, "--no-relevance", "--grace-seconds", "0", "--default-deadline-ms", "0"});
  std::optional<int> status;
  std::string code;
  std::thread request([&] {
    auto client = server.client();
    const auto result = post_image(client, "/v1/judge", read_file(kRocket));
    if (result) {
      status = result->status;
      const json body = json::parse(result->body, nullptr, false);
      if (body.contains("error")) code = body["error"].value("code", "");
    }
  });
  for (int i = 0; i < 200 && metric(metrics_page(server), "imgjudge_workers_busy") != 1.0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  const auto signalled = Clock::now();
  server.signal(SIGTERM);
  request.join();
  CHECK(status == 503);
  CHECK(code == "shutting_down");
  CHECK(server.wait_exit(5s) == 0);
  CHECK(Clock::now() - signalled < 3s);
  const json stopped = server.wait_for_log([](const json& l) { return l.value("phase", "") == "stopped"; }, 1s);
  REQUIRE(stopped.is_object());
  CHECK(stopped["cancelled"] == 1);
}

TEST_CASE("serve: a second SIGTERM during the drain exits at once with status 1", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 20000), "--constitution",
                        kFireConstitution, "--no-relevance", "--grace-seconds", "60", "--default-deadline-ms", "0"});
  std::thread request([&] {
    auto client = server.client();
    post_image(client, "/v1/judge", read_file(kRocket));  // never answered: the process is gone first
  });
  for (int i = 0; i < 200 && metric(metrics_page(server), "imgjudge_workers_busy") != 1.0; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  server.signal(SIGTERM);
  REQUIRE(server.wait_for_log([](const json& l) { return l.value("phase", "") == "draining"; }, 5s).is_object());
  const auto signalled = Clock::now();
  server.signal(SIGTERM);
  CHECK(server.wait_exit(5s) == 1);
  CHECK(Clock::now() - signalled < 2s);
  request.join();
}

TEST_CASE("serve: alive but not ready while loading, SIGTERM then exits at once", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 0, 20000), "--constitution",
                        kFireConstitution},
                       ServerProcess::Wait::Listening);
  auto client = server.client();
  CHECK(client.Get("/healthz")->status == 200);
  auto result = client.Get("/readyz");
  REQUIRE(result);
  CHECK(result->status == 503);
  CHECK(error_code_of(result) == "not_ready");
  result = post_image(client, "/v1/judge", read_file(kRocket));
  CHECK(result->status == 503);
  CHECK(error_code_of(result) == "not_ready");
  CHECK(client.Get("/v1/constitutions")->status == 503);
  CHECK(metric(metrics_page(server), "imgjudge_ready") == 0.0);
  server.signal(SIGTERM);
  CHECK(server.wait_exit(5s) == 0);
}

TEST_CASE("serve: models or constitutions that cannot be loaded exit 2, saying why", "[serve]") {
  Scratch scratch;
  ServerProcess server({"--backend", "scripted", "--script", script(scratch, 0), "--constitution",
                        kSource + "/tests/data/constitutions/duplicate_id.toml"},
                       ServerProcess::Wait::Listening);
  CHECK(server.wait_exit(10s) == 2);
  const json failed = server.wait_for_log([](const json& l) { return l.value("event", "") == "load_failed"; }, 1s);
  REQUIRE(failed.is_object());
  CHECK(failed["error"]["code"] == "invalid_constitution");
  CHECK(failed["error"]["message"].get<std::string>().find("duplicate rule id 'gore'") != std::string::npos);
}

TEST_CASE("serve: an address in use is an io error at start, exit 2", "[serve]") {
  Scratch scratch;
  const std::string answers = script(scratch, 0);
  ServerProcess first({"--backend", "scripted", "--script", answers});
  ServerProcess second({"--backend", "scripted", "--script", answers}, ServerProcess::Wait::Exit,
                       "127.0.0.1:" + std::to_string(first.port()));
  CHECK(second.wait_exit(10s) == 2);
  const json said = second.wait_for_log([](const json& l) { return l.value("event", "") == "text"; }, 1s);
  REQUIRE(said.is_object());
  CHECK_THAT(said["text"].get<std::string>(),
             Catch::Matchers::Contains("imgjudge serve: error [io]: cannot listen on 127.0.0.1:" +
                                       std::to_string(first.port())));
  CHECK(first.client().Get("/healthz")->status == 200);
}

TEST_CASE("serve: a random-weight Qwen2-VL and CLIP behind the same endpoints", "[serve][random]") {
  const std::string models = IMGJUDGE_TEST_MODELS_DIR;
  if (!fs::exists(models + "/qwen2-vl/config.json") || !fs::exists(models + "/clip/config.json")) {
    FAIL("no random-weight models in " << models << " (ctest runs cli.make_random_qwen2_vl and cli.make_random_clip first)");
  }
  ServerProcess server({"--model", models + "/qwen2-vl", "--relevance-model", models + "/clip", "--dtype", "float32",
                        "--threads", "1", "--constitution", kSource + "/benchmarks/constitution-14x3.toml",
                        "--reasoning-tokens", "4"});
  auto client = server.client(60s);
  auto result = post_image(client, "/v1/judge?relevance=false&cascade=false", read_file(kCoffee));
  REQUIRE(result);
  REQUIRE(result->status == 200);
  const json verdict = body_of(result);
  CHECK(verdict["schema"] == "imgjudge.verdict/2");
  CHECK(verdict["models"]["vlm"].get<std::string>().rfind("qwen2_vl:", 0) == 0);
  CHECK(verdict["stats"]["questions_scored"].get<int>() > 0);
  result = post_image(client, "/v1/score?statement=A%20cat%20is%20visible%20in%20the%20image.", read_file(kCoffee));
  REQUIRE(result->status == 200);
  const json document = body_of(result);
  CHECK(document["model"].get<std::string>().rfind("qwen2_vl:", 0) == 0);
  const double score = document["questions"][0]["score"];
  CHECK((score >= 0 && score <= 1));
  // The hostile corpus' pixel bomb never reaches the model.
  result = post_image(client, "/v1/judge", read_file(kSource + "/tests/data/hostile/images/png_huge_dimensions.png"));
  CHECK(result->status == 413);
  CHECK(metric(metrics_page(server), "imgjudge_model_load_seconds") > 0.0);
  server.signal(SIGTERM);
  CHECK(server.wait_exit(10s) == 0);
}
