// Checks shared by the C API fuzz targets.
#pragma once

#include "fuzz_support.hpp"
#include "imgjudge.h"

namespace imgjudge::fuzz {

/// A failing C call must name a real category and say why. IMGJUDGE_INTERNAL
/// means an exception other than imgjudge::Error crossed the C boundary: a bug.
inline void check_status(imgjudge_status status, const char* call) {
  if (status == IMGJUDGE_OK) return;
  if (status == IMGJUDGE_INTERNAL) fail(call, imgjudge_last_error_message());
  require(imgjudge_last_error_code() == status, "last_error_code != returned status");
  require(imgjudge_last_error_message()[0] != '\0', "failure without a message");
}

}  // namespace imgjudge::fuzz
