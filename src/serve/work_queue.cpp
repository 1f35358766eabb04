#include "serve/work_queue.hpp"

#include <stdexcept>

namespace imgjudge::serve {

bool Job::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return finished_.wait_for(lock, timeout, [this] { return done_; });
}

bool Job::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

Job::Clock::time_point Job::started_at() const {
  std::lock_guard lock(mutex_);
  return started_at_;
}

void Job::run() {
  {
    std::lock_guard lock(mutex_);
    started_at_ = Clock::now();
  }
  work_();
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  finished_.notify_all();
}

WorkQueue::WorkQueue(int workers, std::size_t capacity) : capacity_(capacity) {
  if (workers < 1) throw std::invalid_argument("WorkQueue needs at least one worker");
  threads_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
}

WorkQueue::~WorkQueue() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  available_.notify_all();
  for (auto& thread : threads_) thread.join();
}

bool WorkQueue::try_submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mutex_);
    // An idle worker takes a job at once: `capacity` bounds the jobs that would actually wait.
    const std::size_t idle = threads_.size() - static_cast<std::size_t>(busy_.load());
    if (stopping_ || queue_.size() >= capacity_ + idle) return false;
    queue_.push_back(job);
  }
  available_.notify_one();
  return true;
}

std::size_t WorkQueue::waiting() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

double WorkQueue::mean_job_seconds() const {
  std::lock_guard lock(mutex_);
  return mean_job_seconds_;
}

void WorkQueue::work() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      available_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every queued job has run
      job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    const auto started = Job::Clock::now();
    job->run();
    const double seconds = std::chrono::duration<double>(Job::Clock::now() - started).count();
    {
      std::lock_guard lock(mutex_);
      // Weighted towards recent jobs: Retry-After follows the load as it changes.
      mean_job_seconds_ = mean_job_seconds_ == 0 ? seconds : 0.8 * mean_job_seconds_ + 0.2 * seconds;
      --busy_;
    }
  }
}

}  // namespace imgjudge::serve
