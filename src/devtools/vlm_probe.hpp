// Times the components of judging one image with any vision-language family,
// through the engine the Judge runs (backends/torch/vlm.cpp): the vision
// tower (encode_image), the prefill of the image prefix (prepare minus the
// vision tower), one scoring pass of every question over the prefix, and a
// greedy decode step. Counts the FLOPs of each as run (matrix products and
// attention; norms and activations are ignored), so a benchmark can report
// achieved GFLOP/s beside the same-shape GEMM. Torch-free header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/image.hpp"

namespace imgjudge::devtools {

struct ComponentTiming {
  double seconds = 0;       ///< Median over the repetitions.
  double flops = 0;         ///< Per run.
  std::int64_t tokens = 0;  ///< Patches (vision) or tokens processed (text).
  double gflops() const { return seconds > 0 ? flops / seconds / 1e9 : 0; }
};

struct VlmComponents {
  std::string model_type;
  std::int64_t hidden_size = 0, intermediate_size = 0;     ///< LM widths (for GEMM probes).
  std::int64_t vision_width = 0, vision_intermediate = 0;  ///< Vision tower widths.
  std::int64_t image_tokens = 0;         ///< Rows of image features in the prompt.
  std::int64_t prefix_tokens = 0;        ///< The prompt through the image's last token.
  std::int64_t question_head_tokens = 0; ///< Text every question shares after the image (joins the prefix).
  double tokens_per_question = 0;        ///< Each question's own tokens.
  ComponentTiming vision;   ///< image processor + tower + projector
  ComponentTiming prefill;  ///< the image prefix through the decoder (prepare - vision)
  ComponentTiming scoring;  ///< every question in one score() call, the question head already cached
  ComponentTiming decode;   ///< one greedy step (batch 1) over the prefix
  ComponentTiming decode_batch;  ///< one greedy step of kDecodeBatchRows rows (generate_batch)
  /// Bytes of decoder weights one decode step reads (every layer's
  /// projections and the LM head): bytes / step seconds is the bandwidth used.
  double decoder_weight_bytes = 0;
  /// Reasoning-shaped generation of N conversations (kReasoningTokens tokens
  /// each): one generate() at a time against one generate_batch().
  struct ReasoningTiming {
    int conversations = 0;
    double sequential_seconds = 0, batched_seconds = 0;
  };
  std::vector<ReasoningTiming> reasoning;
};

/// Rows of the batched decode step the probe times.
inline constexpr int kDecodeBatchRows = 8;
/// Tokens each conversation of the reasoning timing generates.
inline constexpr int kReasoningTokens = 8;

/// Median wall-clock seconds of `repetitions` runs of `run`, after one
/// unmeasured warm-up run (oneDNN primitives, allocations).
double median_seconds(int repetitions, const std::function<void()>& run);

/// Loads `model_dir` in `dtype` and times each component on `image` with
/// `questions` (repetitions: median of that many runs after a warm-up).
VlmComponents probe_vlm_components(const std::string& model_dir, const std::string& dtype, const Image& image,
                                   const std::vector<Question>& questions, int repetitions = 3);

}  // namespace imgjudge::devtools
