// imgjudge: the Judge, the CLUE pipeline over a constitution and models.
#pragma once

#include "imgjudge/export.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/verdict.hpp"

namespace imgjudge {

/// Switches for the stages of the method (ablations). All on by default.
struct JudgeOptions {
  bool relevance = true;  ///< Relevance scanning (needs a RelevanceModel).
  bool debias = true;     ///< Strategies 1 and 2; off: accept iff M(x,c) > 0.5.
  bool locator = true;    ///< Strategy 2 (needs a Locator and items with object words).
  bool chains = true;     ///< Precondition chains; off: the objective text is one question.
  bool cascade = true;    ///< Cascaded reasoning (also needs the constitution's `cascade`).
  bool early_exit = true; ///< Stop a rule at its first rejected item.
  GenerateLimits reasoning_limits{512, {}};
  /// The answer words. Which of their tokens count (`spellings`) is the
  /// constitution's `[defaults] answer_spellings`: the Judge sets it from there.
  AnswerWords answers;
  DecodeOptions decode;  ///< Used by judge_bytes / judge_file.
};

/// Cancels the calls it is passed to. Copies share one flag. Thread-safe.
class CancellationToken {
 public:
  CancellationToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void cancel() noexcept { flag_->store(true); }
  bool cancelled() const noexcept { return flag_->load(); }
  std::shared_ptr<const std::atomic<bool>> flag() const { return flag_; }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

struct IMGJUDGE_API CallOptions {
  /// Absolute deadline; the call throws Error(DeadlineExceeded) once it passes.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::optional<CancellationToken> cancel;

  /// Convenience: a deadline `timeout` from now.
  static CallOptions with_timeout(std::chrono::milliseconds timeout);
};

/// One image's result in judge_batch: a verdict, or the error it raised.
struct BatchResult {
  std::optional<Verdict> verdict;
  std::optional<ErrorCode> error_code;
  std::string error_message;
};

/// Judges images against a constitution.
///
/// Construction does every image-independent step once: rule text embeddings,
/// the language prior m0 of every statement, prompt rendering. A Judge is
/// immutable afterwards; all methods are const and safe to call from many
/// threads at once. A failed call (bad image, deadline) leaves it usable.
class IMGJUDGE_API Judge {
 public:
  /// Throws Error(InvalidArgument) if models.vlm is null or the constitution
  /// has no rules. A stage that cannot run (relevance scanning without a
  /// relevance model, reasoning with a model that cannot generate) is switched
  /// off and named in every verdict's notes: the Judge degrades clearly, never silently.
  Judge(Constitution constitution, Models models, JudgeOptions options = {});
  ~Judge();
  Judge(Judge&&) noexcept;
  Judge& operator=(Judge&&) noexcept;
  Judge(const Judge&) = delete;
  Judge& operator=(const Judge&) = delete;

  Verdict judge(const Image& image, const CallOptions& call = {}) const;
  /// Decodes untrusted bytes with options().decode, then judges.
  Verdict judge_bytes(const void* bytes, std::size_t size, const CallOptions& call = {}) const;
  Verdict judge_file(const std::string& path, const CallOptions& call = {}) const;
  /// Judges each image; one image's error does not stop the others.
  std::vector<BatchResult> judge_batch(const std::vector<Image>& images,
                                       const CallOptions& call = {}) const;

  const Constitution& constitution() const noexcept;
  const JudgeOptions& options() const noexcept;
  /// m0 of a statement as cached at construction (NaN if unknown).
  double prior(const std::string& statement) const noexcept;

 private:
  struct IMGJUDGE_HIDDEN Impl;
  std::unique_ptr<const Impl> impl_;
};

}  // namespace imgjudge
