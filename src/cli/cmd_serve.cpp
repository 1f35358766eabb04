// `imgjudge serve`: the Judge as an HTTP service (docs/serve.md).
#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "serve/serve.hpp"

namespace imgjudge::cli {
namespace {

const char* kUsage = R"(usage: imgjudge serve [options]

Serves the Judge over HTTP: POST /v1/judge (an image's verdict), POST /v1/score
(the score command's document), GET /v1/constitutions, /healthz, /readyz and
/metrics (docs/serve.md). The models are loaded once and shared by a Judge per
constitution. Logs are JSON lines on stderr; the first says where it listens.
SIGTERM or SIGINT: stop accepting, let in-flight work finish within the grace
period, cancel the rest, exit 0. SIGHUP: reload the constitution files (a file
that fails to load is rejected and its previous version kept).

)";

const char* kServeHelp = R"(server:
  --listen HOST:PORT        address to listen on (default 127.0.0.1:8080; [::1]:8080 for IPv6;
                            port 0: any free port, named in the "listening" log line)
  --constitution FILE       a constitution to serve; repeat for several (a request names one by
                            its name; the first is the default; none: the bundled default)
  --workers N               images judged at once (default 1; each uses --threads cores)
  --queue N                 requests that may wait for a worker; beyond them: 429 (default 16)
  --max-body-mb N           largest request body; beyond it: 413 (default 32)
  --default-deadline-ms N   deadline of a request that sets no deadline_ms, counted from its
                            arrival (default 30000; 0: none)
  --grace-seconds N         after SIGTERM, how long in-flight work may take (default 10)
  --http-threads N          connections served at once (default workers + queue + 8)

stage switches (the server's defaults; a request may set its own, docs/serve.md):
  --no-relevance --no-debias --no-chains --no-cascade --no-early-exit --no-locator
  --reasoning-tokens N      token budget of each cascaded-reasoning turn (default 512)

exit status: 0 after SIGTERM/SIGINT, 2 usage error, address in use or models/constitutions
             that cannot be loaded
)";

// A whole number option in [min, max].
long long bounded(const Args& args, const std::string& name, long long fallback, long long min, long long max) {
  const auto text = args.value(name);
  if (!text) return fallback;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || errno == ERANGE || value < min || value > max) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--{} must be a whole number in [{}, {}], not '{}'", name, min, max, *text));
  }
  return value;
}

}  // namespace

int run_serve(const Argv& argv) {
  const Args args(argv,
                  joined(kModelOptions, {"constitution", "reasoning-tokens", "listen", "workers", "queue", "max-body-mb",
                                         "default-deadline-ms", "grace-seconds", "http-threads"}),
                  joined({"help"}, kMethodFlags));
  if (args.flag("help")) {
    fmt::print("{}{}{}", kUsage, kServeHelp, kModelOptionsHelp);
    return 0;
  }
  if (!args.positionals().empty()) {
    fmt::print(stderr, "imgjudge serve: unexpected argument '{}' (images come in requests)\n\n{}{}{}",
               one_line(args.positionals().front()), kUsage, kServeHelp, kModelOptionsHelp);
    return 2;
  }
  serve::ServeOptions options;
  serve::parse_listen_address(args.value_or("listen", "127.0.0.1:8080"), options.host, options.port);
  options.models = model_config_from(args);
  options.judge = judge_options_from(args);
  options.constitution_files = args.values("constitution");
  options.workers = static_cast<int>(bounded(args, "workers", options.workers, 1, 1024));
  options.queue = static_cast<std::size_t>(bounded(args, "queue", static_cast<long long>(options.queue), 0, 100000));
  options.max_body_bytes = static_cast<std::size_t>(bounded(args, "max-body-mb", 32, 1, 4096)) << 20;
  options.default_deadline =
      std::chrono::milliseconds(bounded(args, "default-deadline-ms", options.default_deadline.count(), 0,
                                        serve::kMaxDeadlineMs));
  options.grace = std::chrono::seconds(bounded(args, "grace-seconds", 10, 0, 3600));
  options.http_threads = static_cast<int>(bounded(args, "http-threads", 0, 0, 4096));
  return serve::run(options);
}

}  // namespace imgjudge::cli
