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

std::vector<std::string> VisionLanguageModel::generate_batch(const ImageContext* image,
                                                             const std::vector<std::vector<ChatTurn>>& conversations,
                                                             const GenerateLimits& limits,
                                                             const CallContext& call) const {
  std::vector<std::string> texts;
  texts.reserve(conversations.size());
  for (const auto& turns : conversations) {
    call.check();
    texts.push_back(generate(image, turns, limits, call));
  }
  return texts;
}

}  // namespace imgjudge
