// Admission control of `imgjudge serve`: a bounded queue in front of a fixed
// number of judging workers. An HTTP thread submits a job and waits for it
// (watching its client meanwhile); a full queue refuses the job at once, so
// overload becomes a 429 instead of an ever longer wait.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace imgjudge::serve {

/// One unit of model work and its completion. The submitter owns it (shared
/// with the queue); `work` runs on a worker and must not throw (it records its
/// own result, errors included).
class Job {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Job(std::function<void()> work) : work_(std::move(work)) {}

  /// Waits until the job has run or `timeout` passes; true when it has run.
  bool wait_for(std::chrono::milliseconds timeout);
  bool done() const;

  Clock::time_point submitted_at() const noexcept { return submitted_at_; }
  /// When a worker took it (submitted_at until then): the queue wait is the difference.
  Clock::time_point started_at() const;

 private:
  friend class WorkQueue;
  void run();

  std::function<void()> work_;
  Clock::time_point submitted_at_ = Clock::now();
  Clock::time_point started_at_ = submitted_at_;
  mutable std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
};

class WorkQueue {
 public:
  /// `workers` threads (>= 1) take jobs in submission order; at most `capacity`
  /// jobs (>= 0) wait for one.
  WorkQueue(int workers, std::size_t capacity);
  /// Runs every job still waiting, then joins the workers.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  /// Queues `job`, or returns false (leaving it unrun) when `capacity` jobs already wait.
  bool try_submit(const std::shared_ptr<Job>& job);

  std::size_t waiting() const;    ///< Jobs queued, not yet taken by a worker.
  int busy() const noexcept { return busy_.load(); }  ///< Workers running a job.
  int workers() const noexcept { return static_cast<int>(threads_.size()); }
  std::size_t capacity() const noexcept { return capacity_; }
  /// Mean seconds a job took on a worker (exponentially weighted; 0 before the first).
  double mean_job_seconds() const;

 private:
  void work();

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::atomic<int> busy_{0};
  double mean_job_seconds_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace imgjudge::serve
