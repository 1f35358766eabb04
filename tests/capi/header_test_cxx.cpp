// capi/imgjudge.h compiled as C++ with -pedantic -Werror: C++ programs use the C API too.
#include "imgjudge.h"

static_assert(IMGJUDGE_OK == 0 && IMGJUDGE_INTERNAL == 12, "status values are pinned");

int imgjudge_header_test_cxx_anchor() {
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  imgjudge_call_options call = IMGJUDGE_CALL_OPTIONS_INIT;
  return static_cast<int>(options.version + call.version);
}
