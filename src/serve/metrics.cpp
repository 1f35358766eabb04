#include "serve/metrics.hpp"

#include <fmt/format.h>

namespace imgjudge::serve {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// Prometheus parses Go's float syntax: shortest round-trip form, "+Inf" for infinity.
std::string number(double value) { return fmt::format("{}", value); }

}  // namespace

std::string prometheus_label_value(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void Histogram::observe(double seconds) {
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++counts_[i];
      break;
    }
  }
  ++count_;
  sum_ += seconds;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string prefix = labels.empty() ? "" : labels + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, prefix, number(kBounds[i]), cumulative);
  }
  out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, prefix, count_);
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, number(sum_), name, braces, count_);
}

void Metrics::record_request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
  request_seconds_[endpoint].observe(seconds);
}

void Metrics::record_stage(const std::string& stage, double seconds) {
  std::lock_guard lock(mutex_);
  stage_seconds_[stage].observe(seconds);
}

void Metrics::record_verdict(const std::string& decision) {
  std::lock_guard lock(mutex_);
  ++verdicts_[decision];
}

void Metrics::record_reload(bool ok) {
  std::lock_guard lock(mutex_);
  ++(ok ? reloads_ok_ : reloads_rejected_);
}

std::string Metrics::render(const MetricsSnapshot& now) const {
  std::string out;
  std::lock_guard lock(mutex_);
  header(out, "imgjudge_http_requests_total", "counter",
         "HTTP requests answered, by endpoint and status (499: the client went away first).");
  for (const auto& [key, count] : requests_) {
    out += fmt::format("imgjudge_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n",
                       prometheus_label_value(key.first), key.second, count);
  }
  header(out, "imgjudge_http_request_duration_seconds", "histogram",
         "Time from a request's headers to its answer, by endpoint.");
  for (const auto& [endpoint, histogram] : request_seconds_) {
    histogram.render(out, "imgjudge_http_request_duration_seconds",
                     fmt::format("endpoint=\"{}\"", prometheus_label_value(endpoint)));
  }
  header(out, "imgjudge_stage_duration_seconds", "histogram",
         "Time of each stage of a judged image: queue (waiting for a worker) and the verdict's timings.");
  for (const auto& [stage, histogram] : stage_seconds_) {
    histogram.render(out, "imgjudge_stage_duration_seconds", fmt::format("stage=\"{}\"", prometheus_label_value(stage)));
  }
  header(out, "imgjudge_images_judged_total", "counter",
         "Verdicts given, by decision; rate() of it is the images judged per second.");
  for (const char* decision : {"safe", "unsafe", "review"}) {
    const auto it = verdicts_.find(decision);
    out += fmt::format("imgjudge_images_judged_total{{decision=\"{}\"}} {}\n", decision,
                       it == verdicts_.end() ? 0 : it->second);
  }
  header(out, "imgjudge_constitution_reloads_total", "counter",
         "Constitution files reloaded on SIGHUP: ok, or rejected (the previous one kept).");
  out += fmt::format("imgjudge_constitution_reloads_total{{result=\"ok\"}} {}\n", reloads_ok_);
  out += fmt::format("imgjudge_constitution_reloads_total{{result=\"rejected\"}} {}\n", reloads_rejected_);

  header(out, "imgjudge_ready", "gauge", "1 when the models and constitutions are loaded and the server is not shutting down.");
  out += fmt::format("imgjudge_ready {}\n", now.ready && !now.draining ? 1 : 0);
  header(out, "imgjudge_shutting_down", "gauge", "1 after SIGTERM, while in-flight work finishes.");
  out += fmt::format("imgjudge_shutting_down {}\n", now.draining ? 1 : 0);
  header(out, "imgjudge_queue_depth", "gauge", "Requests waiting for a judging worker.");
  out += fmt::format("imgjudge_queue_depth {}\n", now.queue_depth);
  header(out, "imgjudge_queue_capacity", "gauge", "Requests that may wait before new ones are refused with 429 (--queue).");
  out += fmt::format("imgjudge_queue_capacity {}\n", now.queue_capacity);
  header(out, "imgjudge_workers", "gauge", "Judging workers (--workers).");
  out += fmt::format("imgjudge_workers {}\n", now.workers);
  header(out, "imgjudge_workers_busy", "gauge", "Judging workers running a request.");
  out += fmt::format("imgjudge_workers_busy {}\n", now.workers_busy);
  header(out, "imgjudge_requests_in_flight", "gauge", "Model requests admitted and not yet answered.");
  out += fmt::format("imgjudge_requests_in_flight {}\n", now.in_flight);
  header(out, "imgjudge_model_load_seconds", "gauge", "Seconds the models took to load at start.");
  out += fmt::format("imgjudge_model_load_seconds {}\n", number(now.model_load_seconds));
  header(out, "imgjudge_constitution_info", "gauge", "The constitutions served: 1 per name, version and hash.");
  for (const auto& c : now.constitutions) {
    out += fmt::format("imgjudge_constitution_info{{name=\"{}\",version=\"{}\",hash=\"{}\"}} 1\n",
                       prometheus_label_value(c.name), prometheus_label_value(c.version),
                       prometheus_label_value(c.hash));
  }
  return out;
}

}  // namespace imgjudge::serve
