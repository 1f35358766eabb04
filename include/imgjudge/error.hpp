// imgjudge: the one exception type of the C++ API.
//
// Every failure inside imgjudge is reported as imgjudge::Error with a stable
// ErrorCode (the same numbers as the C API's imgjudge_status) and a message
// that names what was wrong and where (file, line, column, tensor name, ...).
#pragma once

#include "imgjudge/export.hpp"

#include <stdexcept>
#include <string>

namespace imgjudge {

/// Error categories. Values are pinned: they equal the C API's status codes.
enum class ErrorCode : int {
  InvalidArgument = 1,      ///< API misuse: bad option value, null pointer, empty input.
  InvalidConstitution = 2,  ///< The constitution TOML is malformed or fails validation.
  InvalidImage = 3,         ///< Image bytes are corrupt, truncated or of an unknown format.
  LimitExceeded = 4,        ///< A configured limit (bytes, pixels, tokens) was exceeded.
  InvalidModel = 5,         ///< A model folder is missing files, has bad headers or shapes.
  Unsupported = 6,          ///< A valid request this build or backend cannot serve.
  Io = 7,                   ///< A file could not be opened or read.
  DeadlineExceeded = 8,     ///< The call's deadline passed before it finished.
  Cancelled = 9,            ///< The call was cancelled through its CancellationToken.
  OutOfMemory = 10,         ///< An allocation failed during the call.
  Backend = 11,             ///< The model backend failed (numerical or runtime error).
  Internal = 12,            ///< A bug in imgjudge; please report it.
};

/// Stable lower-case name of a code, e.g. "invalid_image".
IMGJUDGE_API const char* error_code_name(ErrorCode code) noexcept;

/// The single exception type thrown by imgjudge.
class IMGJUDGE_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace imgjudge
