// The HTTP side of `imgjudge serve`: routes, request parsing, admission,
// errors, the per-request log line and metrics (docs/serve.md).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/verdict.hpp"
#include "serve/connection.hpp"
#include "serve/constitution_registry.hpp"
#include "serve/log.hpp"
#include "serve/metrics.hpp"
#include "serve/serve.hpp"
#include "serve/work_queue.hpp"
#include "tools/score_document.hpp"

namespace imgjudge::serve {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// How often a waiting request looks at its client: the delay between a client
// going away and its work being cancelled.
constexpr std::chrono::milliseconds kClientPollInterval{20};
// Status logged and counted for a request whose client went away before the
// answer (nginx's "client closed request"); nothing is sent.
constexpr int kClientClosedStatus = 499;
constexpr std::size_t kMaxRequestIdLength = 128;
constexpr std::size_t kMaxLoggedPathLength = 256;

double seconds_since(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

std::string utc_text(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// A failure answered to a client: the HTTP status and the body's code and message.
struct HttpError {
  int status;
  std::string code;
  std::string message;
};

// The library's error codes as HTTP statuses (docs/serve.md, "Errors").
int http_status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument:
    case ErrorCode::InvalidConstitution:
    case ErrorCode::InvalidImage:
    case ErrorCode::Unsupported:
      return 400;
    case ErrorCode::LimitExceeded:
      return 413;
    case ErrorCode::DeadlineExceeded:
      return 504;
    case ErrorCode::Cancelled:
    case ErrorCode::OutOfMemory:
      return 503;
    case ErrorCode::InvalidModel:
    case ErrorCode::Io:
    case ErrorCode::Backend:
    case ErrorCode::Internal:
      return 500;
  }
  return 500;
}

HttpError http_error_of(ErrorCode code, const std::string& message) {
  return {http_status_of(code), error_code_name(code), message};
}

std::string error_body(const std::string& code, const std::string& message) {
  return json{{"error", {{"code", code}, {"message", message}}}}.dump(-1, ' ', false,
                                                                      json::error_handler_t::replace);
}

// What the log line and the metrics of the request on this thread need to know;
// filled by the pre-routing handler and the route, read by the logger, which
// cpp-httplib calls on the same thread once the response is written.
struct RequestRecord {
  bool active = false;
  std::string id;
  std::string endpoint = "other";
  Clock::time_point started;
  bool client_gone = false;
  std::string connection;        // busy_connections key while its answer is not yet written
  int status = 0;                // as answered (499: the client went away)
  double duration_seconds = 0;   // from the headers to the final answer
  json fields = json::object();  // constitution, decision, error, timings ...
};

// A connection by its addresses (the server's local port is the same for all).
std::string connection_key(const std::string& local_address, const std::string& peer_address, int peer_port) {
  return local_address + " " + peer_address + " " + std::to_string(peer_port);
}
thread_local RequestRecord t_record;

const std::vector<std::string>& endpoints() {
  static const std::vector<std::string> names = {"/v1/judge", "/v1/score", "/v1/constitutions",
                                                 "/healthz",  "/readyz",   "/metrics"};
  return names;
}

// A client's request id, if it is one we can echo and log safely.
bool acceptable_request_id(const std::string& id) {
  return !id.empty() && id.size() <= kMaxRequestIdLength &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\'; });
}

// The parameters of a request: query parameters and the fields of a multipart
// form, one namespace. A parameter nobody reads is an error, not ignored: a typo
// ("dedline_ms") must not silently judge without the deadline the caller meant.
class RequestParams {
 public:
  RequestParams(const httplib::Request& req, const std::vector<std::string>& allowed, const char* file_part) {
    for (const auto& [name, value] : req.params) add(name, value, allowed);
    if (req.is_multipart_form_data()) {
      for (const auto& [name, part] : req.files) {
        if (file_part && name == file_part) continue;
        add(name, part.content, allowed);
      }
    }
  }

  std::optional<std::string> single(const std::string& name) const {
    const auto count = values_.count(name);
    if (count == 0) return std::nullopt;
    if (count > 1) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("parameter '{}' given {} times; it takes one value", name, count));
    }
    return values_.find(name)->second;
  }

  std::vector<std::string> all(const std::string& name) const {
    std::vector<std::string> out;
    const auto [first, last] = values_.equal_range(name);
    for (auto it = first; it != last; ++it) out.push_back(it->second);
    return out;
  }

  std::optional<bool> boolean(const std::string& name) const {
    const auto text = single(name);
    if (!text) return std::nullopt;
    if (*text == "true" || *text == "1" || *text == "on") return true;
    if (*text == "false" || *text == "0" || *text == "off") return false;
    throw Error(ErrorCode::InvalidArgument, fmt::format("parameter '{}' must be true or false, not '{}'", name, *text));
  }

 private:
  void add(const std::string& name, const std::string& value, const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string expected;
      for (const auto& a : allowed) expected += (expected.empty() ? "" : ", ") + a;
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("unknown parameter '{}' (expected: {})", name.substr(0, 64), expected));
    }
    values_.emplace(name, value);
  }

  std::multimap<std::string, std::string> values_;
};

const std::vector<std::string> kStageParams = {"relevance", "debias", "locator", "chains", "cascade", "early_exit"};

bool is_form_urlencoded(const httplib::Request& req) {
  return req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0;
}

// curl -d and --data-binary send application/x-www-form-urlencoded unless told
// otherwise (and -d strips the file's newlines): cpp-httplib would parse the image
// as form fields, so such a body is refused with the command that works.
const char* kFormUrlencodedRefused =
    "a form-urlencoded body cannot carry an image: send the raw bytes with a binary content type (curl "
    "--data-binary @FILE -H 'Content-Type: application/octet-stream') or multipart/form-data (curl -F "
    "image=@FILE)";

void refuse_form_urlencoded(const httplib::Request& req) {
  if (is_form_urlencoded(req)) throw Error(ErrorCode::InvalidArgument, kFormUrlencodedRefused);
}

// The image bytes of a request: the "image" part of a multipart form, or the raw body.
const std::string& image_bytes(const httplib::Request& req) {
  if (req.is_multipart_form_data()) {
    const auto count = req.files.count("image");
    if (count != 1) {
      throw Error(ErrorCode::InvalidArgument,
                  count == 0 ? "the multipart form has no 'image' part"
                             : fmt::format("the multipart form has {} 'image' parts; one image per request", count));
    }
    return req.files.find("image")->second.content;
  }
  if (req.body.empty()) {
    throw Error(ErrorCode::InvalidArgument,
                "no image: the request body is empty (send the image bytes, or multipart/form-data with an "
                "'image' part)");
  }
  return req.body;
}

}  // namespace

void parse_listen_address(const std::string& text, std::string& host, int& port) {
  std::string port_text;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw Error(ErrorCode::InvalidArgument, fmt::format("--listen: expected [IPv6]:PORT, not '{}'", text));
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--listen: expected HOST:PORT (or [IPv6]:PORT), not '{}'", text));
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(port_text.c_str(), &end, 10);
  if (host.empty() || port_text.empty() || *end != '\0' || errno == ERANGE || value < 0 || value > 65535) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--listen: expected HOST:PORT with a port 0..65535 (0: any free port), not '{}'", text));
  }
  port = static_cast<int>(value);
}

// cpp-httplib's server with two things its API does not offer: the listening
// backlog (0.11 listens with 5, so a burst of connections would wait for SYN
// retries instead of being answered, 429 included) and the bound socket.
class HttpServer : public httplib::Server {
 public:
  bool widen_backlog() {
    const int socket = svr_sock_;
    return socket >= 0 && ::listen(socket, SOMAXCONN) == 0;
  }
  // Closes the listening socket, whether or not the accept loop has started yet
  // (stop() does nothing before it has, and the loop would then never end).
  void stop_listening() {
    const int socket = svr_sock_.exchange(-1);
    if (socket >= 0) {
      ::shutdown(socket, SHUT_RDWR);
      ::close(socket);
    }
  }
};

// Model work in flight, registered so that shutdown can cancel what outlives the grace period.
struct InFlight {
  CancellationToken token;
  std::atomic<bool> cancelled_by_shutdown{false};
};

struct Server::Impl {
  ServeOptions options;
  HttpServer http;
  std::string host;
  int port = 0;
  std::thread listener;
  bool started = false;
  bool shut_down = false;
  std::mutex lifecycle_mutex;  // start / shutdown

  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::atomic<double> model_load_seconds{0};
  Models models;
  std::unique_ptr<ConstitutionRegistry> registry;  // set once by load(), before ready
  std::unique_ptr<WorkQueue> queue;
  Metrics metrics;

  std::mutex in_flight_mutex;
  std::condition_variable in_flight_changed;
  std::set<InFlight*> in_flight;

  // Connections with a request whose answer is not yet written (pre-routing to logger):
  // shutdown must not end their reading side before it is (see stop_reading_connections).
  std::mutex busy_mutex;
  std::multiset<std::string> busy_connections;
  std::atomic<bool> listener_done{false};

  std::atomic<std::uint64_t> next_request{0};
  std::string request_id_prefix;

  explicit Impl(ServeOptions o) : options(std::move(o)) {
    std::random_device entropy;
    request_id_prefix = fmt::format("{:08x}", entropy());
  }

  // ---------------------------------------------------------------- helpers

  void answer_error(httplib::Response& res, const HttpError& error) {
    res.status = error.status;
    res.set_content(error_body(error.code, error.message), "application/json");
    t_record.fields["error"] = {{"code", error.code}, {"message", error.message}};
  }

  void answer_json(httplib::Response& res, int status, const std::string& body) {
    res.status = status;
    res.set_content(body, "application/json");
  }

  // Model endpoints answer only while ready and not draining.
  std::optional<HttpError> unavailable() const {
    if (draining) return HttpError{503, "shutting_down", "the server is shutting down; retry on another instance"};
    if (!ready) return HttpError{503, "not_ready", "the server is still loading its models and constitutions"};
    return std::nullopt;
  }

  std::optional<Clock::time_point> deadline_of(const RequestParams& params, Clock::time_point arrived) const {
    if (const auto text = params.single("deadline_ms")) {
      char* end = nullptr;
      errno = 0;
      const long long ms = std::strtoll(text->c_str(), &end, 10);
      if (text->empty() || *end != '\0' || errno == ERANGE || ms < 1 || ms > kMaxDeadlineMs) {
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("parameter 'deadline_ms' must be a whole number of milliseconds in [1, {}], not '{}'",
                                kMaxDeadlineMs, text->substr(0, 64)));
      }
      return arrived + std::chrono::milliseconds(ms);
    }
    if (options.default_deadline.count() > 0) return arrived + options.default_deadline;
    return std::nullopt;
  }

  std::shared_ptr<const LoadedConstitution> constitution_of(const RequestParams& params) const {
    const std::string name = params.single("constitution").value_or("");
    auto entry = registry->find(name);
    if (!entry) {
      std::string names;
      for (const auto& e : registry->all()) names += (names.empty() ? "" : ", ") + e->constitution().name;
      throw HttpError{404, "not_found",
                      fmt::format("no constitution named '{}' (loaded: {})", name.substr(0, 128), names)};
    }
    t_record.fields["constitution"] = {{"name", entry->constitution().name},
                                       {"version", entry->constitution().version},
                                       {"hash", entry->constitution().hash}};
    return entry;
  }

  // Runs `work` on a judging worker and waits for it, watching the client:
  // a client that goes away cancels the work. Returns false (and answers) when
  // the queue is full or the server is draining. `work` gets the call's options.
  template <typename Work>
  bool run_on_worker(const httplib::Request& req, httplib::Response& res, std::optional<Clock::time_point> deadline,
                     Work& work, double& queue_ms, bool& cancelled_by_shutdown) {
    InFlight flight;
    CallOptions call;
    call.deadline = deadline;
    call.cancel = flight.token;
    auto job = std::make_shared<Job>([&work, call] { work(call); });
    {
      std::lock_guard lock(in_flight_mutex);
      if (draining) {
        answer_error(res, *unavailable());
        return false;
      }
      in_flight.insert(&flight);
    }
    struct Deregister {
      Impl& impl;
      InFlight* flight;
      ~Deregister() {
        {
          std::lock_guard lock(impl.in_flight_mutex);
          impl.in_flight.erase(flight);
        }
        impl.in_flight_changed.notify_all();
      }
    } deregister{*this, &flight};

    if (!queue->try_submit(job)) {
      // Retry-After: the time the work ahead of a retry would take, at the recent pace.
      const double per_job = queue->mean_job_seconds();
      const double ahead = static_cast<double>(queue->waiting() + static_cast<std::size_t>(queue->busy()));
      const long retry_after = std::clamp<long>(
          static_cast<long>(std::ceil(per_job * ahead / std::max(1, queue->workers()))), 1, 600);
      res.set_header("Retry-After", std::to_string(retry_after));
      answer_error(res, {429, "overloaded",
                         fmt::format("every worker is busy and {} requests already wait (--queue); retry after "
                                     "{} s",
                                     queue->capacity(), retry_after)});
      return false;
    }
    const int socket = find_connection_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
    while (!job->wait_for(kClientPollInterval)) {
      if (!t_record.client_gone && socket >= 0 && peer_has_closed(socket)) {
        t_record.client_gone = true;
        flight.token.cancel();
      }
    }
    queue_ms = ms_between(job->submitted_at(), job->started_at());
    cancelled_by_shutdown = flight.cancelled_by_shutdown;
    return true;
  }

  // The answer for a library error of model work, with the client's and shutdown's cancellations told apart.
  HttpError failure(ErrorCode code, const std::string& message, bool cancelled_by_shutdown) const {
    if (code == ErrorCode::Cancelled && t_record.client_gone) {
      return {kClientClosedStatus, error_code_name(code), "the client closed the connection; the work was cancelled"};
    }
    if (code == ErrorCode::Cancelled && cancelled_by_shutdown) {
      return {503, "shutting_down", "the server shut down before the work finished (grace period over); retry"};
    }
    return http_error_of(code, message);
  }

  // ---------------------------------------------------------------- routes

  void judge(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point arrived = t_record.started;
    if (const auto error = unavailable()) return answer_error(res, *error);
    refuse_form_urlencoded(req);
    std::vector<std::string> allowed = {"constitution", "deadline_ms"};
    allowed.insert(allowed.end(), kStageParams.begin(), kStageParams.end());
    const RequestParams params(req, allowed, "image");
    const std::string& bytes = image_bytes(req);
    const auto entry = constitution_of(params);
    StageSwitches switches = StageSwitches::of(options.judge);
    if (const auto v = params.boolean("relevance")) switches.relevance = *v;
    if (const auto v = params.boolean("debias")) switches.debias = *v;
    if (const auto v = params.boolean("locator")) switches.locator = *v;
    if (const auto v = params.boolean("chains")) switches.chains = *v;
    if (const auto v = params.boolean("cascade")) switches.cascade = *v;
    if (const auto v = params.boolean("early_exit")) switches.early_exit = *v;
    const auto deadline = deadline_of(params, arrived);

    std::optional<Verdict> verdict;
    std::optional<std::pair<ErrorCode, std::string>> error;
    auto work = [&](const CallOptions& call) {
      try {
        CallContext(call.deadline, call.cancel->flag()).check();  // expired or abandoned while queued
        verdict = entry->judge(switches)->judge_bytes(bytes.data(), bytes.size(), call);
      } catch (const Error& e) {
        error.emplace(e.code(), e.what());
      } catch (const std::bad_alloc&) {
        error.emplace(ErrorCode::OutOfMemory, "out of memory while judging the image");
      } catch (const std::exception& e) {
        error.emplace(ErrorCode::Internal, e.what());
      }
    };
    double queue_ms = 0;
    bool cancelled_by_shutdown = false;
    if (!run_on_worker(req, res, deadline, work, queue_ms, cancelled_by_shutdown)) return;
    metrics.record_stage("queue", queue_ms / 1000);
    if (!verdict) {
      t_record.fields["timings_ms"] = {{"queue", queue_ms}};
      return answer_error(res, failure(error->first, error->second, cancelled_by_shutdown));
    }
    const StageTimings& t = verdict->timings;
    const std::pair<const char*, double> stages[] = {
        {"decode", t.decode_ms},   {"relevance", t.relevance_ms}, {"prepare", t.prepare_ms},
        {"scoring", t.scoring_ms}, {"region", t.region_ms},       {"locate", t.locate_ms},
        {"reasoning", t.reasoning_ms}, {"total", t.total_ms}};
    json timings = {{"queue", queue_ms}};
    for (const auto& [stage, ms] : stages) {
      metrics.record_stage(stage, ms / 1000);
      timings[stage] = ms;
    }
    metrics.record_verdict(decision_name(verdict->decision));
    t_record.fields["decision"] = decision_name(verdict->decision);
    t_record.fields["image_hash"] = verdict->image_hash;
    t_record.fields["violated_rules"] = verdict->violated_rules;
    t_record.fields["timings_ms"] = timings;
    answer_json(res, 200, verdict->to_json());
  }

  void score(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point arrived = t_record.started;
    if (const auto error = unavailable()) return answer_error(res, *error);
    refuse_form_urlencoded(req);
    const RequestParams params(
        req, {"constitution", "rule", "questions", "statement", "template", "answer_spellings", "deadline_ms"},
        "image");
    const std::string& bytes = image_bytes(req);
    const auto deadline = deadline_of(params, arrived);

    // As `imgjudge score` resolves them: explicit parameters over the rule's, over the
    // constitution's defaults, over the library's.
    tools::ScoreSetup setup;
    const auto rule_id = params.single("rule");
    if (params.single("constitution") || rule_id) setup.constitution = constitution_of(params)->constitution();
    const Rule* rule = nullptr;
    if (rule_id) {
      rule = setup.constitution->find_rule(*rule_id);
      if (!rule) {
        throw Error(ErrorCode::InvalidArgument, fmt::format("rule: no rule '{}' in constitution '{}'",
                                                            rule_id->substr(0, 128), setup.constitution->name));
      }
      setup.rule_id = rule->id;
    }
    const auto& constitution = setup.constitution;
    setup.thresholds = rule ? rule->thresholds : constitution ? constitution->defaults : Thresholds{};
    setup.question_template = params.single("template").value_or(
        rule ? rule->questions.score : constitution ? constitution->questions.score : QuestionTemplates{}.score);
    if (setup.question_template.find("{statement}") == std::string::npos) {
      throw Error(ErrorCode::InvalidArgument, "parameter 'template' must contain the placeholder {statement}");
    }
    if (constitution) setup.answers.spellings = constitution->answer_spellings;
    if (const auto spellings = params.single("answer_spellings")) {
      if (*spellings != "exact" && *spellings != "any") {
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("parameter 'answer_spellings' must be exact or any, not '{}'", spellings->substr(0, 64)));
      }
      setup.answers.spellings = *spellings == "any" ? AnswerSpellings::Any : AnswerSpellings::Exact;
    }
    const auto questions = params.single("questions");
    const auto statements = params.all("statement");
    if (questions && !statements.empty()) {
      throw Error(ErrorCode::InvalidArgument, "give the statements as 'questions' or as 'statement' parameters, not both");
    }
    if (questions) {
      setup.statements = tools::parse_score_statements(*questions, "questions");
    } else if (!statements.empty()) {
      std::string lines;
      for (const auto& s : statements) {
        if (s.find('\n') != std::string::npos) {
          throw Error(ErrorCode::InvalidArgument, "a 'statement' parameter holds one line; send several as 'questions'");
        }
        lines += s + "\n";
      }
      setup.statements = tools::parse_score_statements(lines, "statement");
    } else if (rule) {
      setup.statements = tools::rule_statements(*rule);
    } else {
      throw Error(ErrorCode::InvalidArgument,
                  "no statements: give 'statement' (repeatable), 'questions' (the questions-file format) or 'rule'");
    }
    setup.locator_requested = !options.models.locator_model_dir.empty();

    std::optional<json> document;
    std::optional<std::pair<ErrorCode, std::string>> error;
    auto work = [&](const CallOptions& call) {
      try {
        const CallContext context(call.deadline, call.cancel->flag());
        context.check();
        const auto decode_started = Clock::now();
        const Image image = decode_image(bytes.data(), bytes.size());
        const double decode_ms = ms_between(decode_started, Clock::now());
        const tools::StatementScorer scorer(models, std::move(setup), context);
        document = scorer.score_image(image, json::object(), {{"decode", decode_ms}}, context);
      } catch (const Error& e) {
        error.emplace(e.code(), e.what());
      } catch (const std::bad_alloc&) {
        error.emplace(ErrorCode::OutOfMemory, "out of memory while scoring the image");
      } catch (const std::exception& e) {
        error.emplace(ErrorCode::Internal, e.what());
      }
    };
    double queue_ms = 0;
    bool cancelled_by_shutdown = false;
    if (!run_on_worker(req, res, deadline, work, queue_ms, cancelled_by_shutdown)) return;
    if (!document) {
      t_record.fields["timings_ms"] = {{"queue", queue_ms}};
      return answer_error(res, failure(error->first, error->second, cancelled_by_shutdown));
    }
    (*document)["timings_ms"]["queue"] = queue_ms;
    t_record.fields["timings_ms"] = (*document)["timings_ms"];
    t_record.fields["image_hash"] = (*document)["image"]["hash"];
    answer_json(res, 200, document->dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void constitutions(httplib::Response& res) {
    if (const auto error = unavailable(); error && !ready) return answer_error(res, *error);
    json list = json::array();
    for (const auto& entry : registry->all()) {
      const Constitution& c = entry->constitution();
      list.push_back({{"name", c.name},
                      {"version", c.version},
                      {"hash", c.hash},
                      {"description", c.description},
                      {"rules", c.rules.size()},
                      {"source", entry->path().empty() ? json("builtin") : json(entry->path())},
                      {"loaded_at", utc_text(entry->loaded_at())}});
    }
    json models_json = {{"vlm", models.vlm->model_id()},
                        {"relevance", models.relevance ? json(models.relevance->model_id()) : json(nullptr)},
                        {"locator", models.locator ? json(models.locator->model_id()) : json(nullptr)}};
    answer_json(res, 200,
                json{{"default", registry->find("")->constitution().name}, {"constitutions", list}, {"models", models_json}}
                    .dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void readyz(httplib::Response& res) {
    if (const auto error = unavailable()) return answer_error(res, *error);
    answer_json(res, 200, R"({"status":"ready"})");
  }

  void metrics_page(httplib::Response& res) {
    MetricsSnapshot now;
    now.ready = ready;
    now.draining = draining;
    if (ready) {  // the queue exists once loaded
      now.queue_depth = queue->waiting();
      now.queue_capacity = queue->capacity();
      now.workers = queue->workers();
      now.workers_busy = queue->busy();
    }
    {
      std::lock_guard lock(in_flight_mutex);
      now.in_flight = static_cast<int>(in_flight.size());
    }
    now.model_load_seconds = model_load_seconds;
    if (ready) {
      for (const auto& entry : registry->all()) {
        const Constitution& c = entry->constitution();
        now.constitutions.push_back({c.name, c.version, c.hash});
      }
    }
    res.status = 200;
    res.set_content(metrics.render(now), "text/plain; version=0.0.4; charset=utf-8");
  }

  // Every route through one wrapper: errors thrown while reading the request
  // become JSON errors with the right status, never a dropped connection.
  template <typename Route>
  httplib::Server::Handler guarded(Route route) {
    return [this, route](const httplib::Request& req, httplib::Response& res) {
      try {
        route(req, res);
      } catch (const HttpError& e) {
        answer_error(res, e);
      } catch (const Error& e) {
        answer_error(res, http_error_of(e.code(), e.what()));
      } catch (const std::bad_alloc&) {
        answer_error(res, http_error_of(ErrorCode::OutOfMemory, "out of memory"));
      } catch (const std::exception& e) {
        answer_error(res, http_error_of(ErrorCode::Internal, e.what()));
      }
    };
  }

  void install_routes() {
    http.Post("/v1/judge", guarded([this](const auto& req, auto& res) { judge(req, res); }));
    http.Post("/v1/score", guarded([this](const auto& req, auto& res) { score(req, res); }));
    http.Get("/v1/constitutions", guarded([this](const auto&, auto& res) { constitutions(res); }));
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/readyz", guarded([this](const auto&, auto& res) { readyz(res); }));
    http.Get("/metrics", guarded([this](const auto&, auto& res) { metrics_page(res); }));
    // A known endpoint asked with the wrong method: 405 and the method it takes.
    for (const auto& [path, method] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/judge", "POST"}, {"/v1/score", "POST"}, {"/v1/constitutions", "GET"},
             {"/healthz", "GET"}, {"/readyz", "GET"}, {"/metrics", "GET"}}) {
      auto refuse = [this, path = path, method = method](const httplib::Request& req, httplib::Response& res) {
        res.set_header("Allow", method);
        answer_error(res, {405, "method_not_allowed", fmt::format("{} takes {}, not {}", path, method, req.method)});
      };
      if (method == "POST") {
        http.Get(path, refuse);
      } else {
        http.Post(path, refuse);
      }
      http.Put(path, refuse);
      http.Delete(path, refuse);
      http.Patch(path, refuse);
    }

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_record = RequestRecord{};
      t_record.active = true;
      t_record.started = Clock::now();
      const std::string given = req.get_header_value("X-Request-Id");
      t_record.id = acceptable_request_id(given) ? given : fmt::format("{}-{}", request_id_prefix, ++next_request);
      res.set_header("X-Request-Id", t_record.id);
      const auto& names = endpoints();
      t_record.endpoint = std::find(names.begin(), names.end(), req.path) != names.end() ? req.path : "other";
      t_record.connection = connection_key(req.local_addr, req.remote_addr, req.remote_port);
      {
        std::lock_guard lock(busy_mutex);
        busy_connections.insert(t_record.connection);
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Answers cpp-httplib produced itself (404, 413, a malformed request) get the JSON error form too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
      HttpError error{res.status, "invalid_argument", fmt::format("HTTP {}", res.status)};
      if (res.status == 404) {
        error = {404, "not_found",
                 fmt::format("no endpoint {} {} (endpoints: POST /v1/judge, POST /v1/score, GET /v1/constitutions, "
                             "GET /healthz, GET /readyz, GET /metrics)",
                             req.method, req.path.substr(0, kMaxLoggedPathLength))};
      } else if (res.status == 413 && is_form_urlencoded(req)) {
        error = {400, "invalid_argument", kFormUrlencodedRefused};  // over cpp-httplib's 8 KiB form limit
      } else if (res.status == 413) {
        error = {413, "limit_exceeded",
                 fmt::format("the request body is over the limit of {} bytes (--max-body-mb)", options.max_body_bytes)};
      } else if (res.status == 414) {
        error = {414, "limit_exceeded", "the request line is too long"};
      } else if (res.status == 400) {
        error.message = "malformed HTTP request (request line, headers or multipart body)";
      } else if (res.status >= 500) {
        error.code = "internal";
      }
      answer_error(res, error);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr thrown) {
      std::string message = "unknown exception";
      try {
        if (thrown) std::rethrow_exception(thrown);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      answer_error(res, http_error_of(ErrorCode::Internal, message));
    });
    // Counted when the answer is final, just before it is written: a client that has its
    // answer finds it in /metrics. Logged once written.
    http.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
      const double seconds = t_record.active ? seconds_since(t_record.started) : 0;
      t_record.status = t_record.client_gone ? kClientClosedStatus : res.status;
      t_record.duration_seconds = seconds;
      metrics.record_request(t_record.endpoint, t_record.status, seconds);
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_request(req, res); });
  }

  void log_request(const httplib::Request& req, const httplib::Response& res) {
    RequestRecord record = std::move(t_record);
    t_record = RequestRecord{};
    if (record.active) {
      std::lock_guard lock(busy_mutex);
      if (const auto it = busy_connections.find(record.connection); it != busy_connections.end()) {
        busy_connections.erase(it);
      }
    }
    (void)res;  // status and duration as counted by the post-routing handler
    const double seconds = record.duration_seconds;
    const int status = record.status;
    if (!options.log_requests) return;
    json fields = {{"request_id", record.id},
                   {"method", req.method},
                   {"path", req.path.substr(0, kMaxLoggedPathLength)},
                   {"endpoint", record.endpoint},
                   {"status", status},
                   {"duration_ms", seconds * 1000},
                   {"remote", req.remote_addr},
                   {"content_length", std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10)}};
    for (auto& [key, value] : record.fields.items()) fields[key] = std::move(value);
    log_event(status >= 500 ? "error" : status >= 400 ? "warn" : "info", "request", std::move(fields));
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  const ServeOptions& o = impl_->options;
  if (o.workers < 1 || o.workers > 1024) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--workers must be 1..1024, not {}", o.workers));
  }
  if (o.queue > 100000) throw Error(ErrorCode::InvalidArgument, fmt::format("--queue must be 0..100000, not {}", o.queue));
  if (o.max_body_bytes == 0) throw Error(ErrorCode::InvalidArgument, "--max-body-mb must be at least 1");
  if (o.http_threads < 0 || o.http_threads > 4096) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--http-threads must be 0 (automatic) to 4096, not {}", o.http_threads));
  }
  if (o.default_deadline.count() < 0 || o.default_deadline.count() > kMaxDeadlineMs) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--default-deadline-ms must be 0 (none) to {}, not {}", kMaxDeadlineMs, o.default_deadline.count()));
  }
  if (o.grace.count() < 0) throw Error(ErrorCode::InvalidArgument, "--grace-seconds must be 0 or more");
  if (o.port < 0 || o.port > 65535) throw Error(ErrorCode::InvalidArgument, fmt::format("port {} is not 0..65535", o.port));

  Impl& impl = *impl_;
  const std::size_t threads =
      o.http_threads > 0 ? static_cast<std::size_t>(o.http_threads) : static_cast<std::size_t>(o.workers) + o.queue + 8;
  impl.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl.http.set_payload_max_length(o.max_body_bytes);
  // cpp-httplib writes the headers and the body of an answer separately: with Nagle's
  // algorithm on, the body then waits for the client's delayed ACK (40 ms on Linux).
  impl.http.set_tcp_nodelay(true);
  // cpp-httplib closes a keep-alive connection after 5 requests by default; a client
  // sending images back to back would reconnect that often.
  impl.http.set_keep_alive_max_count(100);
  // cpp-httplib's default options add SO_REUSEPORT, with which a second server on the same
  // address starts without an error and silently takes half the connections. SO_REUSEADDR
  // alone: a restart can bind at once, a second instance fails.
  impl.http.set_socket_options([](socket_t socket) {
    const int on = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  });
  impl.install_routes();
  impl.host = o.host;
  impl.port = o.port == 0 ? impl.http.bind_to_any_port(o.host) : (impl.http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (impl.port < 0) {
    throw Error(ErrorCode::Io, fmt::format("cannot listen on {}:{}: {} (in use, or not an address of this machine?)",
                                           o.host, o.port, std::strerror(errno)));
  }
  impl.http.widen_backlog();
}

Server::~Server() { shutdown(); }

const std::string& Server::host() const noexcept { return impl_->host; }
int Server::port() const noexcept { return impl_->port; }
bool Server::ready() const noexcept { return impl_->ready; }

void Server::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->started) return;
  impl_->started = true;
  impl_->listener = std::thread([this] {
    impl_->http.listen_after_bind();  // returns once every connection's thread has finished
    impl_->listener_done = true;
  });
  log_event("info", "listening",
            {{"address", impl_->host.find(':') != std::string::npos
                             ? fmt::format("[{}]:{}", impl_->host, impl_->port)
                             : fmt::format("{}:{}", impl_->host, impl_->port)},
             {"workers", impl_->options.workers},
             {"queue", impl_->options.queue},
             {"max_body_bytes", impl_->options.max_body_bytes}});
}

void Server::load() {
  Impl& impl = *impl_;
  const auto started = Clock::now();
  impl.models = load_models(impl.options.models);
  if (!impl.models.vlm) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("backend '{}' gave no vision-language model", impl.options.models.backend));
  }
  impl.model_load_seconds = seconds_since(started);
  impl.registry = std::make_unique<ConstitutionRegistry>(impl.options.constitution_files, impl.models, impl.options.judge);
  impl.queue = std::make_unique<WorkQueue>(impl.options.workers, impl.options.queue);
  json loaded = json::array();
  for (const auto& entry : impl.registry->all()) {
    const Constitution& c = entry->constitution();
    loaded.push_back({{"name", c.name}, {"version", c.version}, {"hash", c.hash}, {"rules", c.rules.size()},
                      {"source", entry->path().empty() ? "builtin" : entry->path()}});
  }
  impl.ready = true;
  log_event("info", "ready",
            {{"model_load_seconds", impl.model_load_seconds.load()},
             {"load_seconds", seconds_since(started)},
             {"vlm", impl.models.vlm->model_id()},
             {"relevance", impl.models.relevance ? json(impl.models.relevance->model_id()) : json(nullptr)},
             {"locator", impl.models.locator ? json(impl.models.locator->model_id()) : json(nullptr)},
             {"constitutions", loaded}});
}

std::vector<ReloadOutcome> Server::reload() {
  Impl& impl = *impl_;
  if (!impl.registry) {
    log_event("warn", "reload", {{"result", "skipped"}, {"reason", "the server is still loading"}});
    return {};
  }
  const auto started = Clock::now();
  std::vector<ReloadOutcome> outcomes = impl.registry->reload();
  for (const auto& outcome : outcomes) {
    if (outcome.path.empty()) continue;  // the bundled default
    impl.metrics.record_reload(outcome.ok);
    json fields = {{"file", outcome.path},
                   {"result", outcome.ok ? (outcome.changed ? "reloaded" : "unchanged") : "rejected"},
                   {"name", outcome.name},
                   {"version", outcome.version},
                   {"hash", outcome.hash},
                   {"seconds", seconds_since(started)}};
    if (!outcome.ok) {
      fields["error"] = {{"code", outcome.error_code}, {"message", outcome.error_message}};
      fields["kept"] = "the previous constitution stays in service";
    }
    log_event(outcome.ok ? "info" : "error", "reload", std::move(fields));
  }
  if (impl.options.constitution_files.empty()) {
    log_event("info", "reload", {{"result", "unchanged"}, {"reason", "serving the bundled default constitution"}});
  }
  return outcomes;
}

void Server::shutdown() {
  Impl& impl = *impl_;
  std::lock_guard lock(impl.lifecycle_mutex);
  if (impl.shut_down) return;
  impl.shut_down = true;
  const auto started = Clock::now();
  {
    std::lock_guard in_flight_lock(impl.in_flight_mutex);
    impl.draining = true;
  }
  std::size_t at_start = 0;
  {
    std::lock_guard in_flight_lock(impl.in_flight_mutex);
    at_start = impl.in_flight.size();
  }
  impl.http.stop_listening();  // no new connections; open ones get 503 for model work
  log_event("info", "shutdown", {{"phase", "draining"}, {"in_flight", at_start},
                                 {"grace_seconds", impl.options.grace.count() / 1000.0}});
  std::size_t cancelled = 0;
  {
    std::unique_lock in_flight_lock(impl.in_flight_mutex);
    if (!impl.in_flight_changed.wait_for(in_flight_lock, impl.options.grace, [&] { return impl.in_flight.empty(); })) {
      for (InFlight* flight : impl.in_flight) {
        flight->cancelled_by_shutdown = true;
        flight->token.cancel();
        ++cancelled;
      }
    }
    // Cancelled work stops at the backend's next check (between layers, decode steps).
    impl.in_flight_changed.wait(in_flight_lock, [&] { return impl.in_flight.empty(); });
  }
  // Every answer is decided. Connections idle between keep-alive requests would hold their
  // threads for the keep-alive timeout: end their reading side, each once its last answer is
  // written (not before: a request being judged watches its connection and would take that
  // for its client leaving, and cpp-httplib writes only to a socket that looks alive).
  if (impl.started) {
    const auto busy = [&impl](const std::string& local, const std::string& peer, int peer_port) {
      std::lock_guard busy_lock(impl.busy_mutex);
      return impl.busy_connections.count(connection_key(local, peer, peer_port)) > 0;
    };
    while (!impl.listener_done) {
      stop_reading_connections(impl.port, busy);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (impl.listener.joinable()) impl.listener.join();  // every connection's thread has finished
  impl.queue.reset();
  log_event("info", "shutdown", {{"phase", "stopped"}, {"cancelled", cancelled},
                                 {"seconds", seconds_since(started)}});
}

}  // namespace imgjudge::serve
