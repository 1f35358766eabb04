/*
 * imgjudge: zero-shot image-safety judging with multimodal LLMs (the CLUE method).
 *
 * The stable C API (docs/c-api.md, docs/api-stability.md). Pure C99; it
 * includes only <stddef.h> and <stdint.h> and can be used from C, C++, Rust,
 * Go or anything else with a C FFI.
 *
 * Conventions
 * -----------
 * - Names are imgjudge_<object>_<verb>. Objects are opaque handles created by a
 *   *_create / *_load_* function and released by the matching *_free.
 * - Functions that can fail return an ::imgjudge_status. Out-parameters come
 *   first. On failure every out-parameter that is a pointer to a handle, a
 *   string or a count is set to NULL / 0, and a message is stored for the
 *   calling thread (imgjudge_last_error_message()).
 * - NULL where an argument is required is never a crash: the call returns
 *   IMGJUDGE_INVALID_ARGUMENT and names the argument in the message.
 *   Options pointers (judge and call options) may be NULL, meaning "defaults".
 * - Freeing NULL is a no-op. Freeing a handle twice is undefined behaviour, as
 *   with free(): set your pointer to NULL after freeing it.
 * - No function throws, aborts or exits on bad input; C++ exceptions never
 *   cross this boundary.
 * - Strings are UTF-8 and NUL-terminated. A `const char *` returned by the
 *   library is owned by the library; the function documents how long it lives.
 *
 * Thread safety
 * -------------
 * - A constitution, a judge and a verdict are immutable once created: any
 *   number of threads may call the const functions on one handle at once.
 * - A handle must not be freed while another thread still uses it.
 * - A cancel token may be cancelled from any thread while a call uses it.
 * - The last-error message is per thread.
 *
 * Minimal use
 * -----------
 *     imgjudge_constitution *rules = NULL;
 *     imgjudge_judge *judge = NULL;
 *     imgjudge_verdict *verdict = NULL;
 *     imgjudge_judge_options options = IMGJUDGE_JUDGE_OPTIONS_INIT;
 *     options.model_dir = "/models/Qwen2-VL-2B-Instruct";
 *     if (imgjudge_constitution_load_file(&rules, "rules.toml") != IMGJUDGE_OK ||
 *         imgjudge_judge_create(&judge, rules, &options) != IMGJUDGE_OK ||
 *         imgjudge_judge_file(&verdict, judge, "photo.jpg", NULL) != IMGJUDGE_OK)
 *       fprintf(stderr, "imgjudge: %s\n", imgjudge_last_error_message());
 *     ...
 *     imgjudge_verdict_free(verdict);
 *     imgjudge_judge_free(judge);
 *     imgjudge_constitution_free(rules);
 */
#ifndef IMGJUDGE_H
#define IMGJUDGE_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define IMGJUDGE_EXTERN
#elif defined(__GNUC__)
#define IMGJUDGE_EXTERN __attribute__((visibility("default")))
#else
#define IMGJUDGE_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------ */

/** Version of the headers this program was compiled against (SemVer). The
 *  same values as <imgjudge/version.hpp>. */
#define IMGJUDGE_VERSION_MAJOR 0
#define IMGJUDGE_VERSION_MINOR 1
#define IMGJUDGE_VERSION_PATCH 0
#define IMGJUDGE_VERSION_STRING "0.1.0"
/** MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define IMGJUDGE_VERSION_NUMBER \
  (IMGJUDGE_VERSION_MAJOR * 10000 + IMGJUDGE_VERSION_MINOR * 100 + IMGJUDGE_VERSION_PATCH)

/** Version of the library loaded at run time, e.g. "0.1.0".
 *  @return A static string; never NULL. Thread-safe. */
IMGJUDGE_EXTERN const char *imgjudge_version(void);

/** IMGJUDGE_VERSION_NUMBER of the library loaded at run time. Compare it with
 *  the macro to detect a program running against another library version.
 *  Thread-safe. */
IMGJUDGE_EXTERN unsigned int imgjudge_version_number(void);

/* ---------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------ */

/** Result of every fallible call. The values are pinned (they never change
 *  meaning) and equal imgjudge::ErrorCode of the C++ API. New codes may be
 *  added in a minor release: treat unknown non-zero values as failures. */
typedef enum imgjudge_status {
  IMGJUDGE_OK = 0,                    /**< Success. */
  IMGJUDGE_INVALID_ARGUMENT = 1,      /**< API misuse: NULL argument, bad option value, wrong options version. */
  IMGJUDGE_INVALID_CONSTITUTION = 2,  /**< The constitution TOML is malformed or fails validation. */
  IMGJUDGE_INVALID_IMAGE = 3,         /**< Image bytes are corrupt, truncated or of an unknown format. */
  IMGJUDGE_LIMIT_EXCEEDED = 4,        /**< A configured limit (bytes, pixels, tokens) was exceeded. */
  IMGJUDGE_INVALID_MODEL = 5,         /**< A model folder is missing files, has bad headers or shapes. */
  IMGJUDGE_UNSUPPORTED = 6,           /**< A valid request this build or backend cannot serve. */
  IMGJUDGE_IO = 7,                    /**< A file could not be opened or read. */
  IMGJUDGE_DEADLINE_EXCEEDED = 8,     /**< The call's deadline passed before it finished. */
  IMGJUDGE_CANCELLED = 9,             /**< The call was cancelled through its cancel token. */
  IMGJUDGE_OUT_OF_MEMORY = 10,        /**< An allocation failed during the call. */
  IMGJUDGE_BACKEND = 11,              /**< The model backend failed (numerical or runtime error). */
  IMGJUDGE_INTERNAL = 12              /**< A bug in imgjudge; please report it with the message. */
} imgjudge_status;

/** Stable lower-case name of a status, e.g. "invalid_image" ("ok" for 0,
 *  "unknown" for a value this library does not define).
 *  @return A static string; never NULL. Thread-safe. */
IMGJUDGE_EXTERN const char *imgjudge_status_name(int status);

/** Message of the most recent failed call on the calling thread, naming what
 *  was wrong and where (file, line, column, argument). Successful calls do not
 *  change it. "" if no call on this thread has failed (or after
 *  imgjudge_last_error_clear()).
 *  @return Never NULL. Owned by the library; valid until the next imgjudge
 *  call on the same thread. Copy it if you need to keep it. */
IMGJUDGE_EXTERN const char *imgjudge_last_error_message(void);

/** Status of the most recent failed call on the calling thread, or IMGJUDGE_OK
 *  if none failed since the thread started or since imgjudge_last_error_clear(). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_last_error_code(void);

/** Resets the calling thread's last error to IMGJUDGE_OK and "". */
IMGJUDGE_EXTERN void imgjudge_last_error_clear(void);

/* ---------------------------------------------------------------------------
 * Opaque handles
 * ------------------------------------------------------------------------ */

/** A validated constitution (the safety rules). Immutable; thread-safe. */
typedef struct imgjudge_constitution imgjudge_constitution;
/** A judge: a constitution plus loaded models. Immutable; thread-safe. */
typedef struct imgjudge_judge imgjudge_judge;
/** Loaded models (the weights), shared by any number of judges. */
typedef struct imgjudge_models imgjudge_models;
/** The verdict on one image. Immutable; thread-safe. */
typedef struct imgjudge_verdict imgjudge_verdict;
/** Cancels the calls it is passed to. Thread-safe. */
typedef struct imgjudge_cancel_token imgjudge_cancel_token;

/* ---------------------------------------------------------------------------
 * Constitution
 * ------------------------------------------------------------------------ */

/** Reads and validates a constitution TOML file (docs/constitution-format.md).
 *  @param[out] out  Receives a new constitution; free it with
 *                   imgjudge_constitution_free(). NULL on failure.
 *  @param path      File path (UTF-8).
 *  @return IMGJUDGE_OK; IMGJUDGE_IO if the file cannot be read;
 *          IMGJUDGE_INVALID_CONSTITUTION with "path:line:column: what is wrong";
 *          IMGJUDGE_INVALID_ARGUMENT if out or path is NULL.
 *  Thread-safe. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_load_file(imgjudge_constitution **out,
                                                                const char *path);

/** Parses and validates a constitution from memory.
 *  @param[out] out     Receives a new constitution (free with imgjudge_constitution_free()).
 *  @param toml         The TOML text; need not be NUL-terminated.
 *  @param length       Its length in bytes.
 *  @param source_name  Name used in error messages and verdicts (e.g. a path or
 *                      "policy-v3"); NULL means "<string>".
 *  @return IMGJUDGE_OK; IMGJUDGE_INVALID_CONSTITUTION with
 *          "source_name:line:column: what is wrong"; IMGJUDGE_INVALID_ARGUMENT if
 *          out or toml is NULL.
 *  Thread-safe. The library keeps no reference to toml or source_name. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_load_string(imgjudge_constitution **out,
                                                                  const char *toml, size_t length,
                                                                  const char *source_name);

/** The default constitution bundled with imgjudge.
 *  @param[out] out  Receives a new constitution (free with imgjudge_constitution_free()). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_load_default(imgjudge_constitution **out);

/** Frees a constitution. NULL is a no-op. Judges created from it stay valid
 *  (a judge keeps its own copy). */
IMGJUDGE_EXTERN void imgjudge_constitution_free(imgjudge_constitution *constitution);

/** Number of rules.
 *  @param[out] out_count  Receives the count (0 on failure).
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for a NULL argument. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_rule_count(size_t *out_count,
                                                                 const imgjudge_constitution *constitution);

/** Id of the rule at `index` (0-based, in file order).
 *  @param[out] out_id  Receives the id, owned by the constitution and valid
 *                      until it is freed. NULL on failure.
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for a NULL argument or
 *          index >= rule count. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_rule_id(const char **out_id,
                                                              const imgjudge_constitution *constitution,
                                                              size_t index);

/** Content hash of the normalized constitution, "sha256:<64 hex digits>";
 *  independent of comments, key order and whitespace. Every verdict reports it.
 *  @param[out] out_hash  Receives the hash, owned by the constitution and valid
 *                        until it is freed. NULL on failure. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_constitution_hash(const char **out_hash,
                                                           const imgjudge_constitution *constitution);

/* ---------------------------------------------------------------------------
 * Judge options
 * ------------------------------------------------------------------------ */

/** The judge options layout this header describes (2 added the locator,
 *  the strategy-2 switch and the reasoning-token budget; 3 the image memory
 *  budget). */
#define IMGJUDGE_JUDGE_OPTIONS_VERSION 3

/** How to build a judge. Always initialise with IMGJUDGE_JUDGE_OPTIONS_INIT (or
 *  imgjudge_judge_options_init()), then set the fields you need: new fields are
 *  only ever appended, and `version` tells the library which fields exist, so a
 *  program compiled against an older header keeps working with a newer library.
 *
 *  String fields are borrowed for the duration of imgjudge_judge_create() only.
 *  NULL strings and 0 numbers mean "the default". */
typedef struct imgjudge_judge_options {
  unsigned int version;            /**< Must be IMGJUDGE_JUDGE_OPTIONS_VERSION (or an older version). */

  /* Models */
  const char *backend;             /**< "torch" (default) or "scripted" (deterministic, for tests). */
  const char *model_dir;           /**< Hugging Face folder of the multimodal LLM. */
  const char *relevance_model_dir; /**< Hugging Face folder of CLIP/SigLIP, or NULL for none. */
  const char *script_path;         /**< Scripted backend only: its answer script (TOML). */
  const char *device;              /**< "cpu" (default) or "cuda[:N]". */
  const char *dtype;               /**< "auto" (default), "float32", "bfloat16" or "int8" (int8 linear weights, CPU). */
  int threads;                     /**< Intra-op threads; 0 = all cores, else 1..1024. */

  /* Stages of the method (non-zero = on); all on by default. Switch off for ablations. */
  int relevance;                   /**< Relevance scanning; without a relevance model it is off and the verdicts say so. */
  int debias;                      /**< Debiasing strategies 1 and 2; off: accept iff score > 0.5. */
  int chains;                      /**< Precondition chains; off: one question per rule. */
  int cascade;                     /**< Cascaded reasoning for uncertain items. */
  int early_exit;                  /**< Stop a rule at its first rejected precondition. */

  /* Limits on images; 0 = default. All apply to imgjudge_judge_bytes / imgjudge_judge_file
   * (checked before any pixel buffer is allocated); width, height and pixels also apply
   * to imgjudge_judge_rgb. Exceeding one is IMGJUDGE_LIMIT_EXCEEDED. */
  uint64_t max_image_bytes;        /**< Encoded size; default 64 MiB. */
  uint32_t max_image_width;        /**< Default 16384. */
  uint32_t max_image_height;       /**< Default 16384. */
  uint64_t max_image_pixels;       /**< width * height; default 64 Mpx (decompression bombs). */

  /* Since version 2. */
  const char *locator_model_dir;   /**< Hugging Face folder of OWLv2/OWL-ViT for strategy 2, or NULL for none. */
  int locator;                     /**< Strategy 2, region removal (non-zero = on, the default). */
  int reasoning_tokens;            /**< Token budget of each cascaded-reasoning turn; 0 = the default (512). Must be >= 0. */

  /* Since version 3. */
  uint64_t image_memory_mb;        /**< Memory one image may take in the model (vision activations, its tokens'
                                        KV cache), estimated from its size before anything is allocated; an image
                                        over it fails alone with IMGJUDGE_LIMIT_EXCEEDED. 0 = the default: half
                                        the physical memory, at most 8192 MiB. */
} imgjudge_judge_options;

/** Initialiser with every default. */
#define IMGJUDGE_JUDGE_OPTIONS_INIT                                              \
  {                                                                              \
    IMGJUDGE_JUDGE_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 1, \
        1, 1, 1, 0, 0, 0, 0, NULL, 1, 0, 0                                       \
  }

/** Fills `options` with the defaults of layout `version`, for languages without
 *  C macros (the same as IMGJUDGE_JUDGE_OPTIONS_INIT).
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for NULL or an unknown version. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_options_init(imgjudge_judge_options *options,
                                                            unsigned int version);

/* ---------------------------------------------------------------------------
 * Judge
 * ------------------------------------------------------------------------ */

/** Creates a judge: loads the models and does every image-independent step once
 *  (rule embeddings, language priors, prompts). This can take seconds.
 *  @param[out] out      Receives the judge (free with imgjudge_judge_free()); NULL on failure.
 *  @param constitution  Copied; may be freed right after this call.
 *  @param options       NULL for defaults.
 *  @return IMGJUDGE_OK;
 *          IMGJUDGE_INVALID_ARGUMENT for a NULL out/constitution, a wrong options
 *          version, a bad option value or an unknown backend;
 *          IMGJUDGE_INVALID_MODEL / IMGJUDGE_IO / IMGJUDGE_UNSUPPORTED for model
 *          folders that are missing, broken or of an unsupported family;
 *          IMGJUDGE_BACKEND, IMGJUDGE_OUT_OF_MEMORY.
 *  Thread-safe. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_create(imgjudge_judge **out,
                                                      const imgjudge_constitution *constitution,
                                                      const imgjudge_judge_options *options);

/** Frees a judge and its models. NULL is a no-op. No call on it may be running.
 *  Verdicts it produced stay valid. */
IMGJUDGE_EXTERN void imgjudge_judge_free(imgjudge_judge *judge);

/* ---------------------------------------------------------------------------
 * Models loaded once, many judges
 * ------------------------------------------------------------------------ */

/** The models options layout this header describes. */
#define IMGJUDGE_MODELS_OPTIONS_VERSION 1

/** Which models to load and how to run them: the model fields of
 *  imgjudge_judge_options, on their own. Initialise with IMGJUDGE_MODELS_OPTIONS_INIT;
 *  NULL strings and 0 numbers mean the default. Strings are borrowed for the call. */
typedef struct imgjudge_models_options {
  unsigned int version;            /**< Must be IMGJUDGE_MODELS_OPTIONS_VERSION. */
  const char *backend;             /**< "torch" (default) or "scripted". */
  const char *model_dir;           /**< Hugging Face folder of the multimodal LLM. */
  const char *relevance_model_dir; /**< CLIP/SigLIP folder, or NULL. */
  const char *locator_model_dir;   /**< OWLv2/OWL-ViT folder for strategy 2, or NULL. */
  const char *script_path;         /**< Scripted backend only: its answer script. */
  const char *device;              /**< "cpu" (default) or "cuda[:N]". */
  const char *dtype;               /**< "auto" (default), "float32", "bfloat16" or "int8". */
  int threads;                     /**< Intra-op threads; 0 = all cores, else 1..1024. */
  uint64_t image_memory_mb;        /**< Memory one image may take in the model; 0 = the default. */
} imgjudge_models_options;

#define IMGJUDGE_MODELS_OPTIONS_INIT \
  { IMGJUDGE_MODELS_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0 }

/** Loads models once (seconds; the weights are copied into memory).
 *  @param[out] out  Receives the handle (free with imgjudge_models_free()); NULL on failure.
 *  @param options   NULL for defaults.
 *  @return as imgjudge_judge_create() for its model fields. Thread-safe. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_models_load(imgjudge_models **out, const imgjudge_models_options *options);

/** Releases this handle. Judges created from it keep the models alive (they are
 *  reference-counted), so freeing order does not matter. NULL is a no-op. */
IMGJUDGE_EXTERN void imgjudge_models_free(imgjudge_models *models);

/** Creates a judge over already loaded models: two constitutions over one
 *  2B model hold one copy of its weights. `options` carries the method's
 *  fields (stage switches, limits, reasoning budget); its model fields
 *  (backend, model_dir, relevance_model_dir, locator_model_dir, script_path,
 *  device, dtype, threads, image_memory_mb) must be unset, or the call is
 *  IMGJUDGE_INVALID_ARGUMENT naming the field. NULL options: the defaults. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_create_with_models(imgjudge_judge **out,
                                                                  const imgjudge_constitution *constitution,
                                                                  const imgjudge_models *models,
                                                                  const imgjudge_judge_options *options);

/** The call options layout this header describes. */
#define IMGJUDGE_CALL_OPTIONS_VERSION 1

/** Per-call deadline and cancellation. Initialise with IMGJUDGE_CALL_OPTIONS_INIT. */
typedef struct imgjudge_call_options {
  unsigned int version;                /**< Must be IMGJUDGE_CALL_OPTIONS_VERSION (or older). */
  int64_t deadline_ms;                 /**< Time limit in milliseconds from the start of the
                                            call; 0 = none; negative is invalid. On expiry the
                                            call returns IMGJUDGE_DEADLINE_EXCEEDED. */
  const imgjudge_cancel_token *cancel; /**< NULL = not cancellable. Borrowed for the call. */
} imgjudge_call_options;

/** Initialiser with every default (no deadline, no cancel token). */
#define IMGJUDGE_CALL_OPTIONS_INIT { IMGJUDGE_CALL_OPTIONS_VERSION, 0, NULL }

/** Fills `options` with the defaults of layout `version` (see
 *  imgjudge_judge_options_init()). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_call_options_init(imgjudge_call_options *options,
                                                           unsigned int version);

/** Judges encoded image bytes (JPEG, PNG, WebP or GIF, sniffed from the bytes).
 *  The bytes are untrusted: limits from the judge options apply before any
 *  pixel buffer is allocated.
 *  @param[out] out  Receives the verdict (free with imgjudge_verdict_free()); NULL on failure.
 *  @param judge     The judge.
 *  @param bytes     The encoded image; borrowed for the call.
 *  @param size      Its length in bytes.
 *  @param call      NULL for no deadline and no cancellation.
 *  @return IMGJUDGE_OK; IMGJUDGE_INVALID_IMAGE; IMGJUDGE_LIMIT_EXCEEDED;
 *          IMGJUDGE_DEADLINE_EXCEEDED; IMGJUDGE_CANCELLED; IMGJUDGE_BACKEND;
 *          IMGJUDGE_INVALID_ARGUMENT (NULL argument, empty input, wrong call
 *          options version). The judge stays usable after any failure.
 *  Thread-safe: many threads may judge with one judge at once. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_bytes(imgjudge_verdict **out, const imgjudge_judge *judge,
                                                     const void *bytes, size_t size,
                                                     const imgjudge_call_options *call);

/** Reads an image file (at most max_image_bytes) and judges it, as
 *  imgjudge_judge_bytes(). Also IMGJUDGE_IO if the file cannot be read.
 *  Thread-safe. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_file(imgjudge_verdict **out, const imgjudge_judge *judge,
                                                    const char *path,
                                                    const imgjudge_call_options *call);

/** Judges decoded 8-bit RGB pixels (3 bytes per pixel, R first).
 *  @param pixels  height rows, each `stride` bytes apart; copied during the call.
 *  @param width   In pixels, > 0.
 *  @param height  In pixels, > 0.
 *  @param stride  Bytes from one row to the next, >= 3 * width.
 *  @return As imgjudge_judge_bytes(); IMGJUDGE_INVALID_ARGUMENT for bad sizes;
 *          IMGJUDGE_LIMIT_EXCEEDED beyond the judge's width, height or pixel limits.
 *  Thread-safe. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_judge_rgb(imgjudge_verdict **out, const imgjudge_judge *judge,
                                                   const uint8_t *pixels, int width, int height,
                                                   size_t stride, const imgjudge_call_options *call);

/* ---------------------------------------------------------------------------
 * Verdict
 * ------------------------------------------------------------------------ */

/** The decision on an image. */
typedef enum imgjudge_decision {
  IMGJUDGE_DECISION_SAFE = 0,   /**< No rule of the constitution is violated and none needs review. */
  IMGJUDGE_DECISION_UNSAFE = 1, /**< At least one rule is violated. */
  IMGJUDGE_DECISION_REVIEW = 2  /**< None is violated, but a rule stayed uncertain and its constitution
                                     says `uncertain = "review"`: route the image to a person. */
} imgjudge_decision;

/** Frees a verdict. NULL is a no-op. */
IMGJUDGE_EXTERN void imgjudge_verdict_free(imgjudge_verdict *verdict);

/** The decision.
 *  @param[out] out_decision  Receives it. Read it only if the call returned
 *                            IMGJUDGE_OK (it is set to UNSAFE on failure, so
 *                            that an unchecked error never reads as "safe").
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for a NULL argument. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_decision(imgjudge_decision *out_decision,
                                                          const imgjudge_verdict *verdict);

/** 1 if the image violates a rule, else 0 (set to 1 on failure, as above). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_unsafe(int *out_unsafe,
                                                        const imgjudge_verdict *verdict);

/** Number of violated rules.
 *  @param[out] out_count  Receives the count (0 on failure). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_violated_rule_count(size_t *out_count,
                                                                     const imgjudge_verdict *verdict);

/** Id of the violated rule at `index` (0-based, in constitution order).
 *  @param[out] out_id  Receives the id, owned by the verdict and valid until it
 *                      is freed; NULL on failure.
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for a NULL argument or an
 *          index >= the violated rule count. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_violated_rule_id(const char **out_id,
                                                                  const imgjudge_verdict *verdict,
                                                                  size_t index);

/** Number of rules that need review (decision IMGJUDGE_DECISION_REVIEW when
 *  no rule is violated).
 *  @param[out] out_count  Receives the count (0 on failure). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_review_rule_count(size_t *out_count,
                                                                   const imgjudge_verdict *verdict);

/** Id of the rule needing review at `index` (0-based, in constitution order);
 *  owned by the verdict. IMGJUDGE_INVALID_ARGUMENT for an index out of range. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_review_rule_id(const char **out_id,
                                                                const imgjudge_verdict *verdict,
                                                                size_t index);

/** The full verdict as one line of JSON, schema "imgjudge.verdict/2"
 *  (docs/verdict-json.md): per-rule relevance, per-precondition scores and
 *  priors, the stage that decided, rationales, timings, model ids and the
 *  constitution hash.
 *  @param[out] out_json    Receives the JSON, NUL-terminated, owned by the
 *                          verdict and valid until it is freed; NULL on failure.
 *  @param[out] out_length  Receives its length in bytes; may be NULL.
 *  Thread-safe (built once, on first use). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_verdict_json(const char **out_json, size_t *out_length,
                                                      const imgjudge_verdict *verdict);

/* ---------------------------------------------------------------------------
 * Cancellation
 * ------------------------------------------------------------------------ */

/** Creates a cancel token (not cancelled).
 *  @param[out] out  Receives it (free with imgjudge_cancel_token_free()). */
IMGJUDGE_EXTERN imgjudge_status imgjudge_cancel_token_create(imgjudge_cancel_token **out);

/** Cancels every call given this token, now or later: they return
 *  IMGJUDGE_CANCELLED at their next check (between model steps). Irreversible.
 *  Thread-safe: may be called from any thread while calls run.
 *  @return IMGJUDGE_OK, or IMGJUDGE_INVALID_ARGUMENT for NULL. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_cancel_token_cancel(imgjudge_cancel_token *token);

/** 1 if the token was cancelled, else 0. */
IMGJUDGE_EXTERN imgjudge_status imgjudge_cancel_token_is_cancelled(int *out_cancelled,
                                                                   const imgjudge_cancel_token *token);

/** Frees a token. NULL is a no-op. A call that was given the token keeps its
 *  own reference, so freeing during such a call is safe (it can then no longer
 *  be cancelled through this token). */
IMGJUDGE_EXTERN void imgjudge_cancel_token_free(imgjudge_cancel_token *token);

#ifdef __cplusplus
}
#endif

#endif /* IMGJUDGE_H */
