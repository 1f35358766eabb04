// One-line progress bar on stderr for the CLI commands; drawn only when stderr is a
// terminal, so logs and pipes stay clean.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <string>

#include <fmt/core.h>

namespace imgjudge::cli {

class Progress {
 public:
  Progress(std::size_t total, bool enabled) : total_(total), enabled_(enabled && total > 1 && isatty(2)) {}
  void update(std::size_t done, const std::string& label) const {
    if (!enabled_) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / total_);
    fmt::print(stderr, "\r[{}{}] {}/{} {:<40.40}", std::string(filled, '#'), std::string(width - filled, ' '),
               done, total_, label);
    std::fflush(stderr);
  }
  void finish() const {
    if (enabled_) fmt::print(stderr, "\r{:<90}\r", "");
  }

 private:
  std::size_t total_;
  bool enabled_;
};

}  // namespace imgjudge::cli
