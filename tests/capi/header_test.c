/* The C header test: capi/imgjudge.h must compile as strict C99
 * (-std=c99 -pedantic -Werror -Wall -Wextra, see CMakeLists.txt), be
 * self-contained (it is included first) and idempotent (included twice), and
 * its _INIT macros must name every field (-Wextra warns on missing ones).
 * Running it checks that a C program links against libimgjudge and starts. */
#include "imgjudge.h"
#include "imgjudge.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "header_test: FAILED: %s\n", what);
    ++failures;
  }
}

int main(void) {
  imgjudge_judge_options judge_options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  imgjudge_call_options call_options = IMGJUDGE_CALL_OPTIONS_INIT;
  imgjudge_judge_options initialised;
  imgjudge_constitution *constitution = NULL;
  imgjudge_status status;

  check(judge_options.version == IMGJUDGE_JUDGE_OPTIONS_VERSION, "judge options version");
  check(judge_options.relevance == 1 && judge_options.early_exit == 1, "stages on by default");
  check(call_options.version == IMGJUDGE_CALL_OPTIONS_VERSION && call_options.cancel == NULL,
        "call options defaults");

  check(imgjudge_judge_options_init(&initialised, IMGJUDGE_JUDGE_OPTIONS_VERSION) == IMGJUDGE_OK,
        "imgjudge_judge_options_init");
  check(initialised.version == judge_options.version && initialised.backend == NULL &&
            initialised.threads == 0 && initialised.relevance == 1 && initialised.debias == 1 &&
            initialised.chains == 1 && initialised.cascade == 1 && initialised.early_exit == 1 &&
            initialised.max_image_bytes == 0 && initialised.max_image_pixels == 0,
        "imgjudge_judge_options_init equals IMGJUDGE_JUDGE_OPTIONS_INIT");

  check(strcmp(imgjudge_version(), IMGJUDGE_VERSION_STRING) == 0, "runtime version string");
  check(imgjudge_version_number() == IMGJUDGE_VERSION_NUMBER, "runtime version number");
  check(strcmp(imgjudge_status_name(IMGJUDGE_INVALID_IMAGE), "invalid_image") == 0, "status name");

  status = imgjudge_constitution_load_file(&constitution, NULL);
  check(status == IMGJUDGE_INVALID_ARGUMENT, "NULL path is IMGJUDGE_INVALID_ARGUMENT");
  check(constitution == NULL, "out-param is NULL after a failure");
  check(strstr(imgjudge_last_error_message(), "path") != NULL, "message names the argument");
  imgjudge_constitution_free(constitution); /* NULL: a no-op */

  if (failures == 0) printf("header_test: ok (imgjudge %s)\n", imgjudge_version());
  return failures == 0 ? 0 : 1;
}
