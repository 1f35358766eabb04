// `imgjudge serve`: the Judge as an HTTP service (docs/serve.md).
//
// One set of models is loaded once and shared by a Judge per constitution;
// HTTP threads (cpp-httplib) parse requests and hand model work to a bounded
// queue in front of a fixed number of judging workers. Its own static library,
// linked by the CLI and the benchmarks, so libimgjudge.so never links an HTTP
// server.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/judge.hpp"
#include "serve/constitution_registry.hpp"

namespace imgjudge::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";  ///< Address to listen on ("0.0.0.0" or "::" for every interface).
  int port = 8080;                 ///< 0: any free port (the "listening" log line says which).
  ModelConfig models;
  JudgeOptions judge;              ///< The stage switches a request gets unless it sets its own.
  std::vector<std::string> constitution_files;  ///< Empty: the bundled default. The first is the default.
  int workers = 1;                 ///< Images judged at once.
  std::size_t queue = 16;          ///< Requests that may wait for a worker; one more is a 429.
  std::size_t max_body_bytes = 32u << 20;  ///< A larger request body is a 413.
  /// The deadline of a request that sets none (deadline_ms); 0: none. Counted
  /// from the request's arrival, so the time waiting in the queue is part of it.
  std::chrono::milliseconds default_deadline{30000};
  /// After SIGTERM: how long in-flight requests may take before they are cancelled.
  std::chrono::milliseconds grace{10000};
  int http_threads = 0;            ///< Connections served at once; 0: workers + queue + 8.
  bool log_requests = true;        ///< One log line per request (off: only the server's own events).
};

/// The largest deadline_ms a request may ask for (one hour).
inline constexpr long long kMaxDeadlineMs = 3600000;

/// Parses "HOST:PORT" or "[IPv6]:PORT". Error(InvalidArgument) names what is wrong.
void parse_listen_address(const std::string& text, std::string& host, int& port);

/// The server. Construction binds the socket; start() serves; load() loads
/// the models and constitutions (the server answers /healthz meanwhile, and
/// /readyz once loaded); shutdown() drains. Not copyable.
class Server {
 public:
  /// Validates `options` (Error(InvalidArgument)) and binds the listening
  /// socket (Error(Io) when the address cannot be bound).
  explicit Server(ServeOptions options);
  /// Shuts down (with the grace period) if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const std::string& host() const noexcept;
  int port() const noexcept;  ///< The bound port (the chosen one for port 0).

  /// Starts the HTTP threads. Returns at once.
  void start();
  /// Loads the models and every constitution, then reports ready. Throws
  /// imgjudge::Error when they cannot be loaded (the server stays not ready).
  void load();
  /// Reloads every constitution file; a file that fails keeps its previous
  /// version. Each outcome is logged and returned.
  std::vector<ReloadOutcome> reload();
  /// Stops accepting connections, answers model requests that arrive on open
  /// connections with 503, lets in-flight work finish for the grace period,
  /// cancels what is left (503), and joins every thread. Idempotent.
  void shutdown();
  bool ready() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// `imgjudge serve`: binds, serves, loads, then serves until SIGTERM or SIGINT
/// (graceful shutdown, exit status 0); SIGHUP reloads the constitution files.
/// Signals are taken by a sigwait thread, never handled inside a signal handler.
/// Returns the process exit status (2 when the models or constitutions cannot
/// be loaded); throws imgjudge::Error for bad options or an address in use.
int run(const ServeOptions& options);

}  // namespace imgjudge::serve
