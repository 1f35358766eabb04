// What a language model family provides below the backend seam: a decoder,
// its tokenizer and chat template, and (for vision-language families) the image
// processor, vision tower and projector that turn an image into the rows of
// its placeholder tokens. backends/torch/vlm.cpp builds the one
// VisionLanguageModel (shared prefix, packed scoring, generation) on it; a
// family overrides only what is its own:
//
//   encode_image  image processor -> vision tower -> projector   (vision families)
//   positions     1-D RoPE by default; M-RoPE for Qwen2-VL
//
// The chat is rendered by the folder's chat template (tokenizer/chat_template),
// encoded as the HF processor encodes it, and each image item's placeholder
// token is repeated once per row of that image's features.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/image.hpp"
#include "models/decoder.hpp"
#include "runtime/device.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace imgjudge::models {

/// One image as the language model sees it.
struct EncodedImage {
  /// [tokens, hidden] in the decoder's dtype: the rows that replace the image's
  /// placeholder run, in order.
  at::Tensor features;
  /// M-RoPE families: the grid of those rows (frames, rows, columns of merged
  /// patches); unused by 1-D families.
  std::int64_t grid_t = 1, grid_h = 0, grid_w = 0;
  std::int64_t tokens() const { return features.defined() ? features.size(0) : 0; }
};

/// What encoding one image will take, known from its size and the processor
/// config alone (before any pixel is resized): the budget check of
/// backends/torch/vlm.cpp turns it into bytes.
struct ImageFootprint {
  std::int64_t pixel_values = 0;         ///< Floats of the processor's output (all tiles).
  std::int64_t vision_tokens = 0;        ///< Positions through the vision tower (all tiles).
  std::int64_t vision_hidden = 0;        ///< Its width...
  std::int64_t vision_intermediate = 0;  ///< ...and MLP width.
  std::int64_t lm_tokens = 0;            ///< Image tokens in the prompt (an upper bound).
};

/// The decoder positions of a prompt.
struct PromptPositions {
  at::Tensor ids;          ///< [R, 1, T] int64: R = 1, or 3 for M-RoPE.
  std::int64_t delta = 0;  ///< A text token at index p >= T continues at position p + delta (every row).
};

/// How a family loads a model folder.
struct LoadOptions {
  runtime::ExecutionTarget target;  ///< dtype, device, linear-layer format.
  /// Also the tokenizer, chat template and image processor, which judging
  /// needs. False loads the network alone (golden fixtures are bare folders).
  bool with_processors = true;
};

class MultimodalLM {
 public:
  /// What every family has.
  struct Parts {
    std::string model_type;  ///< config.json "model_type", e.g. "qwen2_vl".
    std::string model_dir;
    std::unique_ptr<const Decoder> decoder;
    std::optional<tokenizer::Tokenizer> tokenizer;  ///< Absent when loaded without processors.
    std::optional<tokenizer::ChatTemplate> chat;
    /// The id that stands for one row of image features (-1: text-only).
    std::int64_t image_token_id = -1;
    /// Ids that end an assistant turn (generation stops there).
    std::vector<std::int32_t> stop_token_ids;
  };

  explicit MultimodalLM(Parts parts);
  /// `parts` with `decoder` in it (for families that build the decoder in
  /// their constructor's initializer list).
  static Parts with_decoder(Parts parts, std::unique_ptr<const Decoder> decoder);
  virtual ~MultimodalLM() = default;
  MultimodalLM(const MultimodalLM&) = delete;
  MultimodalLM& operator=(const MultimodalLM&) = delete;

  const std::string& model_type() const { return parts_.model_type; }
  const std::string& model_dir() const { return parts_.model_dir; }
  const Decoder& decoder() const { return *parts_.decoder; }
  /// Error(InvalidArgument) when the model was loaded without processors.
  const tokenizer::Tokenizer& tokenizer() const;
  const tokenizer::ChatTemplate& chat_template() const;
  std::int64_t image_token_id() const { return parts_.image_token_id; }
  const std::vector<std::int32_t>& stop_token_ids() const { return parts_.stop_token_ids; }

  /// False for text-only language models (encode_image throws Error(Unsupported)).
  virtual bool has_vision() const { return false; }

  /// The image through the family's processor, vision tower and projector.
  virtual EncodedImage encode_image(const Image& image, const CallContext* call) const;

  /// What encode_image(image) will hold at its peak, from the image's size;
  /// nullopt for text-only models.
  virtual std::optional<ImageFootprint> image_footprint(const Image& image) const;

  /// Token ids of `messages` rendered by the chat template (with the generation
  /// prompt when asked) and encoded as the family's processor does; the k-th
  /// image item becomes images[k]->tokens() image tokens. Error(InvalidArgument)
  /// when the image items and `images` disagree.
  std::vector<std::int64_t> render(const std::vector<tokenizer::ChatMessage>& messages,
                                   const std::vector<const EncodedImage*>& images, bool add_generation_prompt) const;

  /// The token ids of `spelling` as the first words of the assistant's
  /// answer; scoring reads the probability of the first. Default: the
  /// tokenizer's encoding of the text alone, without special tokens.
  virtual std::vector<std::int32_t> answer_tokens(const std::string& spelling) const;

  /// Decoder positions of `ids` (the k-th image-token run is images[k]).
  /// Default: 1-D, 0..T-1.
  virtual PromptPositions positions(const std::vector<std::int64_t>& ids,
                                    const std::vector<const EncodedImage*>& images) const;

  /// Embeddings [1, T, hidden]: the token embeddings with the image-token rows
  /// replaced, in order, by the images' features. Error(InvalidArgument) when
  /// the counts differ.
  at::Tensor embed(const std::vector<std::int64_t>& ids, const std::vector<const EncodedImage*>& images) const;

 protected:
  /// Checks that the image-token runs of `ids` have exactly the images' token
  /// counts, in order; returns each run's first index.
  std::vector<std::int64_t> image_runs(const std::vector<std::int64_t>& ids,
                                       const std::vector<const EncodedImage*>& images) const;

 private:
  Parts parts_;
};

/// The ids that end an assistant turn for a folder's tokenizer: its EOS, the
/// eos_token_id(s) of config.json and generation_config.json, and the chat
/// turn terminators it has (<|im_end|>, <|eot_id|>, <|end|>, <|endoftext|>).
std::vector<std::int32_t> turn_end_token_ids(const tokenizer::Tokenizer& tokenizer, const std::string& model_dir);

/// A text-only language model of any Text family in the family table (its
/// chat template must be in the folder): generation and scoring without
/// images, for the constitution tools.
std::shared_ptr<const MultimodalLM> load_text_lm(const std::string& dir, const LoadOptions& options);

}  // namespace imgjudge::models
