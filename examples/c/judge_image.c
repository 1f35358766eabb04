/* Judge image files from C with the imgjudge C API (capi/imgjudge.h).
 *
 *   judge_image (--model DIR | --script FILE) [--constitution FILE] [--json] IMAGE...
 *
 * --model      a Hugging Face model folder (the torch backend);
 * --script     an answer script for the deterministic scripted backend
 *              (examples/demo/scripted-answers.toml: no weights needed);
 * --constitution  the rules (default: the bundled default constitution).
 * Exit status: 0 all images safe, 1 some image unsafe, 2 an error. */
#include <imgjudge/imgjudge.h>

#include <stdio.h>
#include <string.h>

/* Prints what failed; the message comes from the library, per thread. */
static int report_failure(const char *what, imgjudge_status status) {
  fprintf(stderr, "judge_image: %s failed [%s]: %s\n", what, imgjudge_status_name(status),
          imgjudge_last_error_message());
  return 2;
}

static void print_verdict(const char *path, const imgjudge_verdict *verdict, int as_json) {
  imgjudge_decision decision = IMGJUDGE_DECISION_UNSAFE;
  size_t count = 0, i;
  if (as_json) {
    const char *json = NULL;
    if (imgjudge_verdict_json(&json, NULL, verdict) == IMGJUDGE_OK) printf("%s\n", json);
    return;
  }
  imgjudge_verdict_decision(&decision, verdict);
  imgjudge_verdict_violated_rule_count(&count, verdict);
  printf("%s: %s", path, decision == IMGJUDGE_DECISION_UNSAFE ? "UNSAFE" : "safe");
  for (i = 0; i < count; ++i) {
    const char *rule_id = NULL;
    if (imgjudge_verdict_violated_rule_id(&rule_id, verdict, i) == IMGJUDGE_OK)
      printf("%s%s", i == 0 ? " (violates " : ", ", rule_id);
  }
  printf("%s\n", count > 0 ? ")" : "");
}

int main(int argc, char **argv) {
  imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
  const char *constitution_path = NULL;
  imgjudge_constitution *constitution = NULL;
  imgjudge_judge *judge = NULL;
  imgjudge_status status;
  int as_json = 0, first_image = argc, any_unsafe = 0, exit_code = 0, i;

  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
      options.model_dir = argv[++i];
    } else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc) {
      options.backend = "scripted";
      options.script_path = argv[++i];
    } else if (strcmp(argv[i], "--constitution") == 0 && i + 1 < argc) {
      constitution_path = argv[++i];
    } else if (strcmp(argv[i], "--json") == 0) {
      as_json = 1;
    } else {
      first_image = i;
      break;
    }
  }
  if (first_image >= argc) {
    fprintf(stderr, "usage: %s (--model DIR | --script FILE) [--constitution FILE] [--json] IMAGE...\n",
            argv[0]);
    return 2;
  }

  status = constitution_path ? imgjudge_constitution_load_file(&constitution, constitution_path)
                             : imgjudge_constitution_load_default(&constitution);
  if (status != IMGJUDGE_OK) return report_failure("loading the constitution", status);

  /* Loads the models once; the judge may then be shared by many threads. */
  status = imgjudge_judge_create(&judge, constitution, &options);
  imgjudge_constitution_free(constitution); /* the judge keeps its own copy */
  if (status != IMGJUDGE_OK) return report_failure("creating the judge", status);

  for (i = first_image; i < argc; ++i) {
    imgjudge_verdict *verdict = NULL;
    status = imgjudge_judge_file(&verdict, judge, argv[i], NULL);
    if (status != IMGJUDGE_OK) {
      /* A bad image fails alone: the judge stays usable for the next one. */
      fprintf(stderr, "%s: error [%s]: %s\n", argv[i], imgjudge_status_name(status),
              imgjudge_last_error_message());
      exit_code = 2;
      continue;
    }
    print_verdict(argv[i], verdict, as_json);
    {
      int unsafe = 1;
      imgjudge_verdict_unsafe(&unsafe, verdict);
      any_unsafe |= unsafe;
    }
    imgjudge_verdict_free(verdict);
  }
  imgjudge_judge_free(judge);
  return exit_code != 0 ? exit_code : any_unsafe;
}
