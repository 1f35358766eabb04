#include "imgjudge/error.hpp"
#include "imgjudge/version.hpp"

namespace imgjudge {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid_argument";
    case ErrorCode::InvalidConstitution: return "invalid_constitution";
    case ErrorCode::InvalidImage: return "invalid_image";
    case ErrorCode::LimitExceeded: return "limit_exceeded";
    case ErrorCode::InvalidModel: return "invalid_model";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Io: return "io";
    case ErrorCode::DeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::OutOfMemory: return "out_of_memory";
    case ErrorCode::Backend: return "backend";
    case ErrorCode::Internal: return "internal";
  }
  return "unknown";
}

const char* version() noexcept { return IMGJUDGE_VERSION_STRING; }

}  // namespace imgjudge
