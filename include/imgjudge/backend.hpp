// imgjudge: the backend seam (extension tier, see docs/api-stability.md).
//
// The Judge decides *what to ask*; a backend decides *how to compute* it. A
// backend implements these interfaces; the Judge never sees tensors.
//
// Thread safety: every method is const and must be safe to call from many
// threads at once on one object (weights are shared, per-call state lives in
// the ImageContext or on the stack). The Judge relies on this.
#pragma once

#include "imgjudge/export.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgjudge/image.hpp"

namespace imgjudge {

/// Deadline and cancellation of one call, checked by backends between units of
/// work (layers, decode steps). check() throws Error(DeadlineExceeded/Cancelled).
class IMGJUDGE_API CallContext {
 public:
  using Clock = std::chrono::steady_clock;
  CallContext() = default;
  CallContext(std::optional<Clock::time_point> deadline,
              std::shared_ptr<const std::atomic<bool>> cancelled)
      : deadline_(deadline), cancelled_(std::move(cancelled)) {}

  /// Throws if the call was cancelled or its deadline has passed.
  void check() const;
  bool should_stop() const noexcept;

 private:
  std::optional<Clock::time_point> deadline_;
  std::shared_ptr<const std::atomic<bool>> cancelled_;
};

/// A unit vector in the joint image-text space of a relevance model.
using Embedding = std::vector<float>;

/// CLIP-like model used for relevance scanning.
class IMGJUDGE_API RelevanceModel {
 public:
  virtual ~RelevanceModel() = default;
  /// e.g. "clip:openai/clip-vit-base-patch16" (config path or name).
  virtual std::string model_id() const = 0;
  /// One L2-normalised embedding per text.
  virtual std::vector<Embedding> embed_texts(const std::vector<std::string>& texts,
                                             const CallContext& call) const = 0;
  /// L2-normalised embedding of the image.
  virtual Embedding embed_image(const Image& image, const CallContext& call) const = 0;
};

/// Per-image state of a VisionLanguageModel (encoded image, prefix KV cache).
/// Created by prepare(), used by score()/generate(), may be used concurrently
/// from several threads for reading.
class IMGJUDGE_API ImageContext {
 public:
  virtual ~ImageContext() = default;
};

/// One yes/no question about a precondition statement.
struct Question {
  std::string statement;  ///< The precondition statement c.
  std::string prompt;     ///< The full user prompt, the statement already in it.
};

/// Which tokens of an answer word count at the first answer token.
enum class AnswerSpellings {
  /// The word's own single token, exactly as written ("Yes"): the paper's
  /// M(x,c) = P("Yes") / (P("Yes") + P("No")), as CLUE and ShieldGemma compute it.
  Exact,
  /// Every single-token spelling of the word: as written, first letter upper
  /// and lower case, each with and without a leading space ("Yes", " Yes",
  /// "yes", " yes"); P(answer) is their sum.
  Any,
};
/// "exact" / "any".
IMGJUDGE_API const char* answer_spellings_name(AnswerSpellings spellings) noexcept;

/// Which answer words are read from the first answer token.
struct AnswerWords {
  std::string yes = "Yes";
  std::string no = "No";
  AnswerSpellings spellings = AnswerSpellings::Exact;
};

struct ChatTurn {
  enum class Role { System, User, Assistant };
  Role role = Role::User;
  std::string text;
};

struct GenerateLimits {
  int max_new_tokens = 256;
  std::vector<std::string> stop;  ///< Stop strings, in addition to the model's end tokens.
  /// Stop once the text has closed its first top-level JSON object: the '}'
  /// that brings the brace depth (counted outside double-quoted strings) back
  /// to 0. The text then ends at that '}'. For answers asked as JSON, so the
  /// model does not run on to the token budget after the object.
  bool stop_after_json_object = false;
};

/// Optional model behaviours, so the Judge degrades clearly, never silently.
struct Capabilities {
  bool generate = true;        ///< generate() works (needed for cascaded reasoning).
  bool score_without_image = true;  ///< score(nullptr, ...) works (needed for m0).
  bool images = true;          ///< prepare() works: false for a text-only language model (tools only).
};

/// A multimodal LLM asked yes/no questions about an image.
class IMGJUDGE_API VisionLanguageModel {
 public:
  virtual ~VisionLanguageModel() = default;
  virtual std::string model_id() const = 0;
  virtual Capabilities capabilities() const = 0;

  /// Encodes the image once (vision tower + prefill of the shared prompt prefix).
  virtual std::shared_ptr<const ImageContext> prepare(const Image& image,
                                                      const CallContext& call) const = 0;

  /// P(yes) / (P(yes) + P(no)) at the first answer token, one per question, in
  /// order. `image == nullptr` asks without any image (the language prior m0).
  virtual std::vector<double> score(const ImageContext* image,
                                    const std::vector<Question>& questions,
                                    const AnswerWords& answers,
                                    const CallContext& call) const = 0;

  /// Greedy generation of the next assistant turn after `turns`.
  virtual std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns,
                               const GenerateLimits& limits, const CallContext& call) const = 0;

  /// generate() for several conversations over the same image: one text per
  /// conversation, in order, each equal to what generate() gives for it alone
  /// (greedy). A backend that decodes the conversations as one batch (the
  /// torch backend: the image prefix once, every row advanced by one batched
  /// forward per step) overrides it; this default calls generate() for each.
  virtual std::vector<std::string> generate_batch(const ImageContext* image,
                                                  const std::vector<std::vector<ChatTurn>>& conversations,
                                                  const GenerateLimits& limits, const CallContext& call) const;

  /// Human-readable statement of the answer tokens used for `answers`, e.g.
  /// "yes=[9454 'Yes'] no=[2753 'No']"; reported in verdicts.
  virtual std::string describe_answer_tokens(const AnswerWords& answers) const = 0;
};

/// A detected region with its confidence in [0, 1].
struct Detection {
  Box box;  ///< In the pixels of the image given to Locator::prepare().
  float confidence = 0;
};

/// Text queries a Locator has embedded (an opaque, immutable handle).
class IMGJUDGE_API LocatorQueries {
 public:
  virtual ~LocatorQueries() = default;
  virtual std::size_t size() const = 0;  ///< How many phrases.
};

/// One image as a Locator has encoded it (an opaque, immutable handle).
class IMGJUDGE_API LocatorImage {
 public:
  virtual ~LocatorImage() = default;
};

/// Open-vocabulary object locator for CLUE strategy 2 (OWLv2, OWL-ViT). The
/// calls follow the cost: the phrases are embedded once (a Judge embeds every
/// object phrase of its constitution at construction), an image is encoded
/// once (only when one of its items needs strategy 2), and locating phrases
/// in an encoded image is cheap.
class IMGJUDGE_API Locator {
 public:
  virtual ~Locator() = default;
  virtual std::string model_id() const = 0;
  /// Embeds `phrases` (one text batch).
  virtual std::shared_ptr<const LocatorQueries> embed_queries(const std::vector<std::string>& phrases,
                                                              const CallContext& call) const = 0;
  /// Encodes the image (the expensive part: a ViT over the whole image).
  virtual std::shared_ptr<const LocatorImage> prepare(const Image& image, const CallContext& call) const = 0;
  /// For each index of `which` (into `queries`), the detections of that phrase
  /// whose confidence exceeds `min_confidence`, most confident first. A
  /// phrase's detections do not depend on the other phrases asked with it.
  virtual std::vector<std::vector<Detection>> locate(const LocatorImage& image, const LocatorQueries& queries,
                                                     const std::vector<std::size_t>& which, double min_confidence,
                                                     const CallContext& call) const = 0;
};

/// The models one Judge uses. Relevance and locator are optional.
struct Models {
  std::shared_ptr<const RelevanceModel> relevance;
  std::shared_ptr<const VisionLanguageModel> vlm;
  std::shared_ptr<const Locator> locator;
};

/// How to load models: `backend` picks the implementation by name.
struct ModelConfig {
  std::string backend = "torch";      ///< "torch" or "scripted".
  std::string model_dir;              ///< Hugging Face folder of the MLLM.
  std::string relevance_model_dir;    ///< Hugging Face folder of CLIP/SigLIP (optional).
  std::string locator_model_dir;      ///< Hugging Face folder of OWLv2/OWL-ViT for strategy 2 (optional).
  std::string script_path;            ///< Scripted backend: its answer script (TOML).
  std::string device = "cpu";         ///< "cpu" or "cuda[:N]".
  std::string dtype = "auto";         ///< "auto", "float32", "bfloat16", "int8" (int8 linear weights, CPU).
  int threads = 0;                    ///< Intra-op threads; 0 = all cores, at most kMaxThreads.
  /// Memory one image may take inside the model (vision activations, the
  /// image tokens' KV cache and activations), estimated from the image's size
  /// before anything is allocated; an image over it fails alone with
  /// Error(LimitExceeded). 0 = the default: half the physical memory, at most 8 GiB.
  std::uint64_t image_memory_mb = 0;
};

/// The most intra-op threads a ModelConfig may ask for: a bound well above any
/// CPU's cores, so a typo (100000) is an error instead of a hang creating threads.
inline constexpr int kMaxThreads = 1024;
/// The largest ModelConfig::image_memory_mb (1 PiB: no overflow in bytes).
inline constexpr std::uint64_t kMaxImageMemoryMb = std::uint64_t{1} << 30;

/// Loads the models named by `config`. Error(InvalidArgument) for an unknown
/// backend, a device, dtype or thread count that is not valid (whatever the
/// backend, so a typo is caught before it matters), or a folder the backend
/// would not use.
IMGJUDGE_API Models load_models(const ModelConfig& config);

/// Names of the backends compiled into this build, e.g. {"scripted", "torch"}.
IMGJUDGE_API std::vector<std::string> available_backends();

}  // namespace imgjudge
