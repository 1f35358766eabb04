/* A program built against an *installed* imgjudge (see run.sh): it includes
 * <imgjudge/imgjudge.h> from the install prefix and links -limgjudge only.
 * It judges one image with the scripted backend and prints the decision.
 *
 *   consumer SCRIPT IMAGE   ->  "IMAGE: safe" or "IMAGE: unsafe", exit 0; 2 on error */
#include <imgjudge/imgjudge.h>

#include <stdio.h>

int main(int argc, char **argv) {
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  imgjudge_constitution *constitution = NULL;
  imgjudge_judge *judge = NULL;
  imgjudge_verdict *verdict = NULL;
  int unsafe = 1, ok;

  if (argc != 3) {
    fprintf(stderr, "usage: %s SCRIPT IMAGE\n", argv[0]);
    return 2;
  }
  if (imgjudge_version_number() != IMGJUDGE_VERSION_NUMBER) {
    fprintf(stderr, "built against imgjudge %s but running with %s\n", IMGJUDGE_VERSION_STRING,
            imgjudge_version());
  }
  options.backend = "scripted";
  options.script_path = argv[1];
  ok = imgjudge_constitution_load_default(&constitution) == IMGJUDGE_OK &&
       imgjudge_judge_create(&judge, constitution, &options) == IMGJUDGE_OK &&
       imgjudge_judge_file(&verdict, judge, argv[2], NULL) == IMGJUDGE_OK &&
       imgjudge_verdict_unsafe(&unsafe, verdict) == IMGJUDGE_OK;
  if (ok) {
    printf("%s: %s (imgjudge %s)\n", argv[2], unsafe ? "unsafe" : "safe", imgjudge_version());
  } else {
    fprintf(stderr, "consumer: %s\n", imgjudge_last_error_message());
  }
  imgjudge_verdict_free(verdict);
  imgjudge_judge_free(judge);
  imgjudge_constitution_free(constitution);
  return ok ? 0 : 2;
}
