// The C API (capi/imgjudge.h) over the C++ API.
//
// Every entry point is noexcept in effect: its body runs inside guarded(),
// which maps imgjudge::Error to its code, std::bad_alloc to OUT_OF_MEMORY and
// anything else to INTERNAL, and records the message for the calling thread.
// Handles are plain structs holding the C++ value; nothing here is clever.
#include "imgjudge.h"

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/judge.hpp"
#include "imgjudge/verdict.hpp"
#include "imgjudge/version.hpp"

// The C status values are pinned to the C++ error codes.
#define IMGJUDGE_PIN(c_status, cxx_code)                                             \
  static_assert(static_cast<int>(c_status) == static_cast<int>(imgjudge::ErrorCode::cxx_code), \
                #c_status " must equal imgjudge::ErrorCode::" #cxx_code)
IMGJUDGE_PIN(IMGJUDGE_INVALID_ARGUMENT, InvalidArgument);
IMGJUDGE_PIN(IMGJUDGE_INVALID_CONSTITUTION, InvalidConstitution);
IMGJUDGE_PIN(IMGJUDGE_INVALID_IMAGE, InvalidImage);
IMGJUDGE_PIN(IMGJUDGE_LIMIT_EXCEEDED, LimitExceeded);
IMGJUDGE_PIN(IMGJUDGE_INVALID_MODEL, InvalidModel);
IMGJUDGE_PIN(IMGJUDGE_UNSUPPORTED, Unsupported);
IMGJUDGE_PIN(IMGJUDGE_IO, Io);
IMGJUDGE_PIN(IMGJUDGE_DEADLINE_EXCEEDED, DeadlineExceeded);
IMGJUDGE_PIN(IMGJUDGE_CANCELLED, Cancelled);
IMGJUDGE_PIN(IMGJUDGE_OUT_OF_MEMORY, OutOfMemory);
IMGJUDGE_PIN(IMGJUDGE_BACKEND, Backend);
IMGJUDGE_PIN(IMGJUDGE_INTERNAL, Internal);
#undef IMGJUDGE_PIN

// ---------------------------------------------------------------------------
// Handles

struct imgjudge_constitution {
  imgjudge::Constitution value;
};

struct imgjudge_judge {
  imgjudge::Judge value;
};

// The models' parts are shared_ptrs: a Judge made from them holds its own
// references, so the handle and the judges may be freed in any order.
struct imgjudge_models {
  imgjudge::Models value;
};

struct imgjudge_verdict {
  explicit imgjudge_verdict(imgjudge::Verdict v) : value(std::move(v)) {}
  imgjudge::Verdict value;
  // The JSON is built on first request; call_once keeps that thread-safe on an
  // otherwise immutable handle.
  mutable std::once_flag json_once;
  mutable std::string json;
};

struct imgjudge_cancel_token {
  imgjudge::CancellationToken value;
};

namespace {

using imgjudge::ErrorCode;

// ---------------------------------------------------------------------------
// Per-thread last error

struct LastError {
  imgjudge_status code = IMGJUDGE_OK;
  std::string message;
  // Used when even storing the message failed (out of memory).
  const char* fallback = nullptr;
};

LastError& last_error() noexcept {
  thread_local LastError error;
  return error;
}

imgjudge_status record_failure(imgjudge_status code, const char* message) noexcept {
  LastError& error = last_error();
  error.code = code;
  try {
    error.message = message;
    error.fallback = nullptr;
  } catch (...) {
    error.message.clear();
    error.fallback = "out of memory while recording the error message";
  }
  return code;
}

imgjudge_status status_of(ErrorCode code) noexcept {
  const int value = static_cast<int>(code);
  if (value < IMGJUDGE_INVALID_ARGUMENT || value > IMGJUDGE_INTERNAL) return IMGJUDGE_INTERNAL;
  return static_cast<imgjudge_status>(value);
}

/// Runs `body(function)`, turning every exception into a status and a per-thread message.
template <typename Body>
imgjudge_status guarded(const char* function, Body&& body) noexcept {
  try {
    body(function);
    return IMGJUDGE_OK;
  } catch (const imgjudge::Error& e) {
    return record_failure(status_of(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return record_failure(IMGJUDGE_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    std::string message;
    try {
      message = std::string("internal error (please report): ") + e.what();
    } catch (...) {
      return record_failure(IMGJUDGE_INTERNAL, "internal error (please report)");
    }
    return record_failure(IMGJUDGE_INTERNAL, message.c_str());
  } catch (...) {
    return record_failure(IMGJUDGE_INTERNAL, "internal error (please report): unknown exception");
  }
}

[[noreturn]] void throw_invalid_argument(const char* function, const std::string& what) {
  throw imgjudge::Error(ErrorCode::InvalidArgument, std::string(function) + ": " + what);
}

/// Every required pointer argument goes through this: NULL is an error, never a crash.
template <typename T>
void require(const T* pointer, const char* function, const char* name) {
  if (pointer == nullptr) throw_invalid_argument(function, std::string("`") + name + "` is NULL");
}

template <typename T>
void clear_out(T** out) noexcept {
  if (out != nullptr) *out = nullptr;
}

// ---------------------------------------------------------------------------
// Options

// Versions of each options layout this library understands. Version N reads
// exactly the fields that layout N declares; later fields keep their defaults.
constexpr unsigned int kOldestJudgeOptionsVersion = 1;
constexpr unsigned int kOldestCallOptionsVersion = 1;

/// `field` names the version as the caller wrote it, e.g. "options->version".
void check_version(const char* function, const char* field, unsigned int version,
                   unsigned int oldest, unsigned int newest) {
  if (version < oldest || version > newest) {
    throw_invalid_argument(
        function, std::string(field) + " is " + std::to_string(version) +
                      " but this library (" + imgjudge::version() + ") reads versions " +
                      std::to_string(oldest) + " to " + std::to_string(newest) +
                      "; initialise options with their _INIT macro or *_options_init()");
  }
}

std::string string_or(const char* value, const std::string& fallback) {
  return value != nullptr ? std::string(value) : fallback;
}

struct JudgeSetup {
  imgjudge::ModelConfig models;
  imgjudge::JudgeOptions judge;
};

JudgeSetup judge_setup_from(const imgjudge_judge_options* options, const char* function) {
  JudgeSetup setup;
  if (options == nullptr) return setup;
  check_version(function, "options->version", options->version, kOldestJudgeOptionsVersion,
                IMGJUDGE_JUDGE_OPTIONS_VERSION);

  imgjudge::ModelConfig& models = setup.models;
  models.backend = string_or(options->backend, models.backend);
  models.model_dir = string_or(options->model_dir, models.model_dir);
  models.relevance_model_dir = string_or(options->relevance_model_dir, models.relevance_model_dir);
  models.script_path = string_or(options->script_path, models.script_path);
  models.device = string_or(options->device, models.device);
  models.dtype = string_or(options->dtype, models.dtype);
  if (options->threads < 0 || options->threads > imgjudge::kMaxThreads) {
    throw_invalid_argument(function, "options->threads is " + std::to_string(options->threads) +
                                         "; use 0 for all cores or a count up to " +
                                         std::to_string(imgjudge::kMaxThreads));
  }
  models.threads = options->threads;

  imgjudge::JudgeOptions& judge = setup.judge;
  judge.relevance = options->relevance != 0;
  judge.debias = options->debias != 0;
  judge.chains = options->chains != 0;
  judge.cascade = options->cascade != 0;
  judge.early_exit = options->early_exit != 0;

  imgjudge::ImageLimits& limits = judge.decode.limits;
  if (options->max_image_bytes != 0) {
    if (options->max_image_bytes > SIZE_MAX) {
      throw_invalid_argument(function, "options->max_image_bytes does not fit in size_t");
    }
    limits.max_encoded_bytes = static_cast<std::size_t>(options->max_image_bytes);
  }
  const auto dimension = [&](std::uint32_t value, int& target, const char* name) {
    if (value == 0) return;
    if (value > static_cast<std::uint32_t>(INT_MAX)) {
      throw_invalid_argument(function, std::string("options->") + name + " is " +
                                           std::to_string(value) + ", more than INT_MAX");
    }
    target = static_cast<int>(value);
  };
  dimension(options->max_image_width, limits.max_width, "max_image_width");
  dimension(options->max_image_height, limits.max_height, "max_image_height");
  // Fields of layout 2 and later: an older caller's struct does not have them.
  if (options->version >= 2) {
    models.locator_model_dir = string_or(options->locator_model_dir, models.locator_model_dir);
    judge.locator = options->locator != 0;
    if (options->reasoning_tokens < 0) {
      throw_invalid_argument(function, "options->reasoning_tokens is " + std::to_string(options->reasoning_tokens) +
                                           "; use 0 for the default or a positive budget");
    }
    if (options->reasoning_tokens > 0) judge.reasoning_limits.max_new_tokens = options->reasoning_tokens;
  }
  if (options->version >= 3) {
    if (options->image_memory_mb > imgjudge::kMaxImageMemoryMb) {
      throw_invalid_argument(function, "options->image_memory_mb is " + std::to_string(options->image_memory_mb) +
                                           ", more than " + std::to_string(imgjudge::kMaxImageMemoryMb));
    }
    models.image_memory_mb = options->image_memory_mb;
  }
  if (options->max_image_pixels != 0) limits.max_pixels = options->max_image_pixels;
  return setup;
}

imgjudge::CallOptions call_options_from(const imgjudge_call_options* call, const char* function) {
  imgjudge::CallOptions options;
  if (call == nullptr) return options;
  check_version(function, "call->version", call->version, kOldestCallOptionsVersion,
                IMGJUDGE_CALL_OPTIONS_VERSION);
  if (call->deadline_ms < 0) {
    throw_invalid_argument(function, "call->deadline_ms is " + std::to_string(call->deadline_ms) +
                                         "; use 0 for no deadline or a positive time limit");
  }
  // Beyond ~100 years the deadline would overflow steady_clock; it means "none".
  constexpr std::int64_t kNoDeadlineBeyondMs = 100LL * 365 * 24 * 3600 * 1000;
  if (call->deadline_ms > 0 && call->deadline_ms < kNoDeadlineBeyondMs) {
    options.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(call->deadline_ms);
  }
  if (call->cancel != nullptr) options.cancel = call->cancel->value;
  return options;
}

/// Raw pixels obey the judge's width/height/pixel limits too: one policy for
/// every way an image enters.
void check_rgb_limits(const imgjudge::ImageLimits& limits, int width, int height,
                      const char* function) {
  if (width <= 0 || height <= 0) {
    throw_invalid_argument(function, "width and height must be positive, got " +
                                         std::to_string(width) + "x" + std::to_string(height));
  }
  const auto pixels = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
  if (width > limits.max_width || height > limits.max_height || pixels > limits.max_pixels) {
    throw imgjudge::Error(
        ErrorCode::LimitExceeded,
        std::string(function) + ": image of " + std::to_string(width) + "x" +
            std::to_string(height) + " pixels exceeds the limits (max " +
            std::to_string(limits.max_width) + "x" + std::to_string(limits.max_height) + ", " +
            std::to_string(limits.max_pixels) + " pixels)");
  }
}

imgjudge_verdict* new_verdict(imgjudge::Verdict verdict) {
  return new imgjudge_verdict(std::move(verdict));
}

}  // namespace

// ---------------------------------------------------------------------------
// Version and errors

extern "C" {

const char* imgjudge_version(void) { return imgjudge::version(); }

unsigned int imgjudge_version_number(void) { return IMGJUDGE_VERSION_NUMBER; }

const char* imgjudge_status_name(int status) {
  if (status == IMGJUDGE_OK) return "ok";
  if (status < IMGJUDGE_INVALID_ARGUMENT || status > IMGJUDGE_INTERNAL) return "unknown";
  return imgjudge::error_code_name(static_cast<ErrorCode>(status));
}

const char* imgjudge_last_error_message(void) {
  const LastError& error = last_error();
  return error.fallback != nullptr ? error.fallback : error.message.c_str();
}

imgjudge_status imgjudge_last_error_code(void) { return last_error().code; }

void imgjudge_last_error_clear(void) {
  LastError& error = last_error();
  error.code = IMGJUDGE_OK;
  error.message.clear();
  error.fallback = nullptr;
}

// ---------------------------------------------------------------------------
// Constitution

imgjudge_status imgjudge_constitution_load_file(imgjudge_constitution** out, const char* path) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(path, fn, "path");
    *out = new imgjudge_constitution{imgjudge::Constitution::from_file(path)};
  });
}

imgjudge_status imgjudge_constitution_load_string(imgjudge_constitution** out, const char* toml,
                                                  size_t length, const char* source_name) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(toml, fn, "toml");
    // Checked before copying: a length past the caller's buffer (SIZE_MAX, a
    // strlen gone wrong) must not become a huge allocation or a read of it.
    if (length > imgjudge::kMaxConstitutionBytes) {
      throw imgjudge::Error(imgjudge::ErrorCode::LimitExceeded,
                            std::string(fn) + ": length is " + std::to_string(length) + " bytes; a constitution is at most " +
                                std::to_string(imgjudge::kMaxConstitutionBytes));
    }
    *out = new imgjudge_constitution{imgjudge::Constitution::from_string(
        std::string(toml, length), string_or(source_name, "<string>"))};
  });
}

imgjudge_status imgjudge_constitution_load_default(imgjudge_constitution** out) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    *out = new imgjudge_constitution{imgjudge::Constitution::builtin_default()};
  });
}

void imgjudge_constitution_free(imgjudge_constitution* constitution) { delete constitution; }

imgjudge_status imgjudge_constitution_rule_count(size_t* out_count,
                                                 const imgjudge_constitution* constitution) {
  if (out_count != nullptr) *out_count = 0;
  return guarded(__func__, [&](const char* fn) {
    require(out_count, fn, "out_count");
    require(constitution, fn, "constitution");
    *out_count = constitution->value.rules.size();
  });
}

imgjudge_status imgjudge_constitution_rule_id(const char** out_id,
                                              const imgjudge_constitution* constitution,
                                              size_t index) {
  clear_out(out_id);
  return guarded(__func__, [&](const char* fn) {
    require(out_id, fn, "out_id");
    require(constitution, fn, "constitution");
    const auto& rules = constitution->value.rules;
    if (index >= rules.size()) {
      throw_invalid_argument(fn, "index " + std::to_string(index) +
                                           " is out of range (the constitution has " +
                                           std::to_string(rules.size()) + " rules)");
    }
    *out_id = rules[index].id.c_str();
  });
}

imgjudge_status imgjudge_constitution_hash(const char** out_hash,
                                           const imgjudge_constitution* constitution) {
  clear_out(out_hash);
  return guarded(__func__, [&](const char* fn) {
    require(out_hash, fn, "out_hash");
    require(constitution, fn, "constitution");
    *out_hash = constitution->value.hash.c_str();
  });
}

// ---------------------------------------------------------------------------
// Options

imgjudge_status imgjudge_judge_options_init(imgjudge_judge_options* options, unsigned int version) {
  return guarded(__func__, [&](const char* fn) {
    require(options, fn, "options");
    check_version(fn, "version", version, kOldestJudgeOptionsVersion,
                  IMGJUDGE_JUDGE_OPTIONS_VERSION);
    // A caller of an older layout has a smaller struct: write only its fields.
    const imgjudge_judge_options defaults IMGJUDGE_JUDGE_OPTIONS_INIT;
    const std::size_t size = version == 1   ? offsetof(imgjudge_judge_options, locator_model_dir)
                             : version == 2 ? offsetof(imgjudge_judge_options, image_memory_mb)
                                            : sizeof(imgjudge_judge_options);
    std::memcpy(options, &defaults, size);
    options->version = version;
  });
}

imgjudge_status imgjudge_call_options_init(imgjudge_call_options* options, unsigned int version) {
  return guarded(__func__, [&](const char* fn) {
    require(options, fn, "options");
    check_version(fn, "version", version, kOldestCallOptionsVersion,
                  IMGJUDGE_CALL_OPTIONS_VERSION);
    *options = imgjudge_call_options IMGJUDGE_CALL_OPTIONS_INIT;
    options->version = version;
  });
}

// ---------------------------------------------------------------------------
// Judge

imgjudge_status imgjudge_judge_create(imgjudge_judge** out, const imgjudge_constitution* constitution,
                                      const imgjudge_judge_options* options) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(constitution, fn, "constitution");
    JudgeSetup setup = judge_setup_from(options, fn);
    imgjudge::Models models = imgjudge::load_models(setup.models);
    *out = new imgjudge_judge{
        imgjudge::Judge(constitution->value, std::move(models), std::move(setup.judge))};
  });
}

void imgjudge_judge_free(imgjudge_judge* judge) { delete judge; }

imgjudge_status imgjudge_models_load(imgjudge_models** out, const imgjudge_models_options* options) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    imgjudge::ModelConfig config;
    if (options != nullptr) {
      check_version(fn, "options->version", options->version, 1, IMGJUDGE_MODELS_OPTIONS_VERSION);
      config.backend = string_or(options->backend, config.backend);
      config.model_dir = string_or(options->model_dir, config.model_dir);
      config.relevance_model_dir = string_or(options->relevance_model_dir, config.relevance_model_dir);
      config.locator_model_dir = string_or(options->locator_model_dir, config.locator_model_dir);
      config.script_path = string_or(options->script_path, config.script_path);
      config.device = string_or(options->device, config.device);
      config.dtype = string_or(options->dtype, config.dtype);
      if (options->threads < 0 || options->threads > imgjudge::kMaxThreads) {
        throw_invalid_argument(fn, "options->threads is " + std::to_string(options->threads) +
                                       "; use 0 for all cores or a count up to " + std::to_string(imgjudge::kMaxThreads));
      }
      config.threads = options->threads;
      if (options->image_memory_mb > imgjudge::kMaxImageMemoryMb) {
        throw_invalid_argument(fn, "options->image_memory_mb is " + std::to_string(options->image_memory_mb) +
                                       ", more than " + std::to_string(imgjudge::kMaxImageMemoryMb));
      }
      config.image_memory_mb = options->image_memory_mb;
    }
    *out = new imgjudge_models{imgjudge::load_models(config)};
  });
}

void imgjudge_models_free(imgjudge_models* models) { delete models; }

imgjudge_status imgjudge_judge_create_with_models(imgjudge_judge** out, const imgjudge_constitution* constitution,
                                                  const imgjudge_models* models, const imgjudge_judge_options* options) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(constitution, fn, "constitution");
    require(models, fn, "models");
    if (options != nullptr) {
      // A model field here would be silently ignored: the models are loaded already.
      const auto refuse = [&](bool set, const char* field) {
        if (set) {
          throw_invalid_argument(fn, std::string("options->") + field +
                                         " is set, but the models are loaded already: give it to imgjudge_models_load");
        }
      };
      refuse(options->version >= 1 && options->backend != nullptr, "backend");
      refuse(options->version >= 1 && options->model_dir != nullptr, "model_dir");
      refuse(options->version >= 1 && options->relevance_model_dir != nullptr, "relevance_model_dir");
      refuse(options->version >= 1 && options->script_path != nullptr, "script_path");
      refuse(options->version >= 1 && options->device != nullptr, "device");
      refuse(options->version >= 1 && options->dtype != nullptr, "dtype");
      refuse(options->version >= 1 && options->threads != 0, "threads");
      refuse(options->version >= 2 && options->locator_model_dir != nullptr, "locator_model_dir");
      refuse(options->version >= 3 && options->image_memory_mb != 0, "image_memory_mb");
    }
    JudgeSetup setup = judge_setup_from(options, fn);
    *out = new imgjudge_judge{imgjudge::Judge(constitution->value, models->value, std::move(setup.judge))};
  });
}

imgjudge_status imgjudge_judge_bytes(imgjudge_verdict** out, const imgjudge_judge* judge,
                                     const void* bytes, size_t size,
                                     const imgjudge_call_options* call) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(judge, fn, "judge");
    require(bytes, fn, "bytes");
    if (size == 0) throw_invalid_argument(fn, "`size` is 0 (no image bytes)");
    const imgjudge::CallOptions call_options = call_options_from(call, fn);
    *out = new_verdict(judge->value.judge_bytes(bytes, size, call_options));
  });
}

imgjudge_status imgjudge_judge_file(imgjudge_verdict** out, const imgjudge_judge* judge,
                                    const char* path, const imgjudge_call_options* call) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(judge, fn, "judge");
    require(path, fn, "path");
    const imgjudge::CallOptions call_options = call_options_from(call, fn);
    *out = new_verdict(judge->value.judge_file(path, call_options));
  });
}

imgjudge_status imgjudge_judge_rgb(imgjudge_verdict** out, const imgjudge_judge* judge,
                                   const uint8_t* pixels, int width, int height, size_t stride,
                                   const imgjudge_call_options* call) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    require(judge, fn, "judge");
    require(pixels, fn, "pixels");
    check_rgb_limits(judge->value.options().decode.limits, width, height, fn);
    const imgjudge::CallOptions call_options = call_options_from(call, fn);
    const imgjudge::Image image = imgjudge::Image::from_rgb(pixels, width, height, stride);
    *out = new_verdict(judge->value.judge(image, call_options));
  });
}

// ---------------------------------------------------------------------------
// Verdict

void imgjudge_verdict_free(imgjudge_verdict* verdict) { delete verdict; }

imgjudge_status imgjudge_verdict_decision(imgjudge_decision* out_decision,
                                          const imgjudge_verdict* verdict) {
  // Unsafe until proven otherwise: an unchecked failure must not read as "safe".
  if (out_decision != nullptr) *out_decision = IMGJUDGE_DECISION_UNSAFE;
  return guarded(__func__, [&](const char* fn) {
    require(out_decision, fn, "out_decision");
    require(verdict, fn, "verdict");
    switch (verdict->value.decision) {
      case imgjudge::Decision::Safe: *out_decision = IMGJUDGE_DECISION_SAFE; break;
      case imgjudge::Decision::Review: *out_decision = IMGJUDGE_DECISION_REVIEW; break;
      case imgjudge::Decision::Unsafe: *out_decision = IMGJUDGE_DECISION_UNSAFE; break;
    }
  });
}

imgjudge_status imgjudge_verdict_unsafe(int* out_unsafe, const imgjudge_verdict* verdict) {
  if (out_unsafe != nullptr) *out_unsafe = 1;
  return guarded(__func__, [&](const char* fn) {
    require(out_unsafe, fn, "out_unsafe");
    require(verdict, fn, "verdict");
    *out_unsafe = verdict->value.unsafe() ? 1 : 0;
  });
}

imgjudge_status imgjudge_verdict_violated_rule_count(size_t* out_count,
                                                     const imgjudge_verdict* verdict) {
  if (out_count != nullptr) *out_count = 0;
  return guarded(__func__, [&](const char* fn) {
    require(out_count, fn, "out_count");
    require(verdict, fn, "verdict");
    *out_count = verdict->value.violated_rules.size();
  });
}

imgjudge_status imgjudge_verdict_review_rule_count(size_t* out_count, const imgjudge_verdict* verdict) {
  if (out_count != nullptr) *out_count = 0;
  return guarded(__func__, [&](const char* fn) {
    require(out_count, fn, "out_count");
    require(verdict, fn, "verdict");
    *out_count = verdict->value.review_rules.size();
  });
}

imgjudge_status imgjudge_verdict_review_rule_id(const char** out_id, const imgjudge_verdict* verdict,
                                                size_t index) {
  clear_out(out_id);
  return guarded(__func__, [&](const char* fn) {
    require(out_id, fn, "out_id");
    require(verdict, fn, "verdict");
    const auto& review = verdict->value.review_rules;
    if (index >= review.size()) {
      throw_invalid_argument(fn, "index " + std::to_string(index) + " is out of range (the verdict has " +
                                     std::to_string(review.size()) + " rules that need review)");
    }
    *out_id = review[index].c_str();
  });
}

imgjudge_status imgjudge_verdict_violated_rule_id(const char** out_id,
                                                  const imgjudge_verdict* verdict, size_t index) {
  clear_out(out_id);
  return guarded(__func__, [&](const char* fn) {
    require(out_id, fn, "out_id");
    require(verdict, fn, "verdict");
    const auto& violated = verdict->value.violated_rules;
    if (index >= violated.size()) {
      throw_invalid_argument(fn, "index " + std::to_string(index) +
                                           " is out of range (the verdict has " +
                                           std::to_string(violated.size()) + " violated rules)");
    }
    *out_id = violated[index].c_str();
  });
}

imgjudge_status imgjudge_verdict_json(const char** out_json, size_t* out_length,
                                      const imgjudge_verdict* verdict) {
  clear_out(out_json);
  if (out_length != nullptr) *out_length = 0;
  return guarded(__func__, [&](const char* fn) {
    require(out_json, fn, "out_json");
    require(verdict, fn, "verdict");
    // If to_json throws, call_once lets a later call try again.
    std::call_once(verdict->json_once, [&] { verdict->json = verdict->value.to_json(); });
    *out_json = verdict->json.c_str();
    if (out_length != nullptr) *out_length = verdict->json.size();
  });
}

// ---------------------------------------------------------------------------
// Cancellation

imgjudge_status imgjudge_cancel_token_create(imgjudge_cancel_token** out) {
  clear_out(out);
  return guarded(__func__, [&](const char* fn) {
    require(out, fn, "out");
    *out = new imgjudge_cancel_token{};
  });
}

imgjudge_status imgjudge_cancel_token_cancel(imgjudge_cancel_token* token) {
  return guarded(__func__, [&](const char* fn) {
    require(token, fn, "token");
    token->value.cancel();
  });
}

imgjudge_status imgjudge_cancel_token_is_cancelled(int* out_cancelled,
                                                   const imgjudge_cancel_token* token) {
  if (out_cancelled != nullptr) *out_cancelled = 0;
  return guarded(__func__, [&](const char* fn) {
    require(out_cancelled, fn, "out_cancelled");
    require(token, fn, "token");
    *out_cancelled = token->value.cancelled() ? 1 : 0;
  });
}

void imgjudge_cancel_token_free(imgjudge_cancel_token* token) { delete token; }

}  // extern "C"
