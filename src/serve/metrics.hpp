// The metrics of `imgjudge serve`, rendered in the Prometheus text exposition
// format (version 0.0.4) for GET /metrics. Thread-safe: every HTTP thread
// records into one Metrics.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace imgjudge::serve {

/// Cumulative histogram with fixed bucket bounds, in seconds.
class Histogram {
 public:
  /// Bounds from 5 ms to 2 minutes: a judged image takes from milliseconds
  /// (scripted, or every rule skipped) to minutes (a large model on a CPU).
  static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                     1,     2.5,  5,     10,   30,  60,  120};
  void observe(double seconds);
  /// `name`_bucket / _sum / _count lines with `labels` (already formatted, may be empty).
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::uint64_t, kBounds.size()> counts_{};  // per bucket, not cumulative
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

/// What the server knows at the time of a scrape (not accumulated).
struct MetricsSnapshot {
  bool ready = false;
  bool draining = false;
  std::size_t queue_depth = 0;
  std::size_t queue_capacity = 0;
  int workers = 0;
  int workers_busy = 0;
  int in_flight = 0;  ///< Model requests admitted and not yet answered.
  double model_load_seconds = 0;
  struct Constitution {
    std::string name, version, hash;
  };
  std::vector<Constitution> constitutions;
};

class Metrics {
 public:
  /// One answered HTTP request. `endpoint` is a route ("/v1/judge") or "other":
  /// the label never carries a client's path, so its cardinality stays bounded.
  void record_request(const std::string& endpoint, int status, double seconds);
  /// One stage of a judged image ("queue", "decode", "relevance", "prepare",
  /// "scoring", "region", "locate", "reasoning", "total").
  void record_stage(const std::string& stage, double seconds);
  /// A verdict given ("safe", "unsafe", "review").
  void record_verdict(const std::string& decision);
  /// A constitution file reloaded (ok) or rejected and kept as it was.
  void record_reload(bool ok);

  /// The whole exposition, with `now`'s gauges.
  std::string render(const MetricsSnapshot& now) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> request_seconds_;
  std::map<std::string, Histogram> stage_seconds_;
  std::map<std::string, std::uint64_t> verdicts_;
  std::uint64_t reloads_ok_ = 0, reloads_rejected_ = 0;
};

/// `text` as a Prometheus label value: backslash, double quote and newline escaped.
std::string prometheus_label_value(const std::string& text);

}  // namespace imgjudge::serve
