// Times the components of a Qwen2-VL / Qwen2.5-VL forward pass one by one, for
// benchmarks/: vision tower, prefill of the image prefix, one batched scoring
// pass over the shared prefix, and greedy decode steps. Also counts the FLOPs
// of each (matrix products and attention; norms and activations are ignored),
// so a benchmark can report achieved GFLOP/s. Torch-free header.
#pragma once

#include <cstdint>
#include <string>

#include "imgjudge/image.hpp"

namespace imgjudge::devtools {

struct ComponentTiming {
  double seconds = 0;  ///< Median over the repetitions.
  double flops = 0;    ///< Per run.
  std::int64_t tokens = 0;  ///< Patches (vision) or tokens processed (text).
  double gflops() const { return seconds > 0 ? flops / seconds / 1e9 : 0; }
};

struct QwenVlComponents {
  std::int64_t hidden_size = 0, intermediate_size = 0;         ///< LM widths (for GEMM probes).
  std::int64_t vision_width = 0, vision_intermediate = 0;      ///< ViT widths.
  std::int64_t image_tokens = 0, prefix_tokens = 0;
  ComponentTiming vision;    ///< pixel_values -> merged image features
  ComponentTiming prefill;   ///< the prefix (system turn + image + question head) through the decoder
  ComponentTiming scoring;   ///< `batch` questions of `question_tokens` over the shared prefix
  ComponentTiming decode;    ///< one greedy step (batch 1) after the prefix
};

struct ComponentRequest {
  std::string model_dir;
  std::string dtype = "bfloat16";
  int batch = 42;
  /// Text tokens of the shared prefix after the image: the question template's
  /// head ("Is the following content visible ... Statement:"), which the Judge
  /// keeps in the prefix.
  int head_tokens = 20;
  /// Tokens each question adds after the prefix: its statement and the
  /// closing "<|im_end|>\n<|im_start|>assistant\n".
  int question_tokens = 14;
  int repetitions = 3;
};

/// Loads the model and times each component on `image` (preprocessed as the
/// model's preprocessor_config.json says). Prompt tokens other than the image
/// span are fixed ordinary ids: costs depend on lengths, not on the text.
QwenVlComponents probe_qwen_vl_components(const ComponentRequest& request, const Image& image);

}  // namespace imgjudge::devtools
