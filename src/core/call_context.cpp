#include "imgjudge/backend.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge {

bool CallContext::should_stop() const noexcept {
  if (cancelled_ && cancelled_->load(std::memory_order_relaxed)) return true;
  return deadline_ && Clock::now() >= *deadline_;
}

void CallContext::check() const {
  if (cancelled_ && cancelled_->load(std::memory_order_relaxed)) {
    throw Error(ErrorCode::Cancelled, "the call was cancelled");
  }
  if (deadline_ && Clock::now() >= *deadline_) {
    throw Error(ErrorCode::DeadlineExceeded, "the call's deadline passed before it finished");
  }
}

}  // namespace imgjudge
