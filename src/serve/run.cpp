// `imgjudge serve` as a process: signals, loading, reloads and shutdown.
//
// SIGTERM, SIGINT and SIGHUP are blocked in every thread (the mask is set
// before the first thread starts, so HTTP, judging and libtorch threads
// inherit it) and taken by one thread with sigtimedwait(): no work ever runs
// inside a signal handler. That thread only posts events; the main thread acts
// on them in order.
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <ctime>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "imgjudge/error.hpp"
#include "serve/log.hpp"
#include "serve/serve.hpp"

namespace imgjudge::serve {
namespace {

enum class Event { Reload, Terminate };

class Events {
 public:
  void post(Event event) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
    }
    posted_.notify_one();
  }
  Event next() {
    std::unique_lock lock(mutex_);
    posted_.wait(lock, [this] { return !events_.empty(); });
    const Event event = events_.front();
    events_.pop_front();
    return event;
  }

 private:
  std::mutex mutex_;
  std::condition_variable posted_;
  std::deque<Event> events_;
};

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "signal";
  }
}

}  // namespace

int run(const ServeOptions& options) {
  // Writing to a connection its client has closed raises SIGPIPE (cpp-httplib 0.11
  // sends without MSG_NOSIGNAL); the write's error is what we want, not the process's death.
  signal(SIGPIPE, SIG_IGN);
  const sigset_t signals = handled_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Server server(options);  // binds: an address in use fails here, before anything loads
  server.start();

  Events events;
  std::atomic<bool> stop_watching{false};
  std::thread watcher([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    bool terminating = false;
    while (!stop_watching) {
      const int signal = sigtimedwait(&signals, nullptr, &tick);
      if (signal < 0) continue;  // EAGAIN (tick) or EINTR
      if (signal == SIGHUP) {
        log_event("info", "signal", {{"signal", "SIGHUP"}, {"action", "reload the constitution files"}});
        events.post(Event::Reload);
        continue;
      }
      if (!server.ready()) {
        // Still loading: nothing is in flight (model requests are refused until ready),
        // and loading cannot be interrupted, so leaving now loses nothing.
        log_event("info", "shutdown", {{"signal", signal_name(signal)}, {"phase", "exit while loading"}});
        std::_Exit(0);
      }
      if (terminating) {
        // A second SIGTERM/SIGINT (Ctrl-C twice): the operator does not want to wait.
        log_event("warn", "shutdown", {{"signal", signal_name(signal)}, {"phase", "exit now, not gracefully"}});
        std::_Exit(1);
      }
      terminating = true;
      log_event("info", "signal", {{"signal", signal_name(signal)}, {"action", "graceful shutdown"}});
      events.post(Event::Terminate);
    }
  });
  struct JoinWatcher {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinWatcher() {
      stop = true;
      thread.join();
    }
  } join_watcher{stop_watching, watcher};

  try {
    server.load();
  } catch (const Error& e) {
    log_event("error", "load_failed", {{"error", {{"code", error_code_name(e.code())}, {"message", e.what()}}}});
    server.shutdown();
    throw;
  }
  for (;;) {
    if (events.next() == Event::Terminate) break;
    server.reload();
  }
  server.shutdown();
  return 0;
}

}  // namespace imgjudge::serve
