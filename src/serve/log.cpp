#include "serve/log.hpp"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <mutex>

#include <fmt/format.h>

namespace imgjudge::serve {
namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03d}Z", text, static_cast<int>(ms));
}

}  // namespace

void log_event(const char* level, const char* event, nlohmann::json fields) noexcept {
  static std::mutex mutex;
  try {
    // Ordered: ts, level and event lead every line for a person reading it.
    nlohmann::ordered_json line = {{"ts", utc_now()}, {"level", level}, {"event", event}};
    if (fields.is_object()) {
      for (auto& [key, value] : fields.items()) line[key] = std::move(value);
    }
    // Replace, not throw, on invalid UTF-8 (a file name or message quoting client bytes).
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text += '\n';
    std::lock_guard lock(mutex);
    for (std::size_t written = 0; written < text.size();) {
      const ssize_t n = ::write(STDERR_FILENO, text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // stderr closed or full: nothing better to do than drop the line
      written += static_cast<std::size_t>(n);
    }
  } catch (...) {
    // Out of memory formatting a log line: dropping it beats failing the request.
  }
}

}  // namespace imgjudge::serve
