// The VisionLanguageModel of every model family, over models::MultimodalLM.
//
// prepare() encodes the image once and prefills the prompt up to its last
// image token (the shared prefix). score() renders each question as the
// family's chat template does (one user turn: the image, then the question,
// then the generation prompt), extends the prefix once by the tokens every
// question of the batch shares (the template's head, cached per image), and
// runs the questions' own tokens packed into one sequence over it, the LM head
// only at each question's last token and only over the answer tokens.
// score(nullptr, ...) asks without any image tokens (m0) and shares the
// questions' common text head instead. generate() decodes greedily over the
// image prefix when the conversation starts with it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "models/multimodal.hpp"

namespace imgjudge::backends::torch {

class MultimodalJudge final : public VisionLanguageModel {
 public:
  /// `dtype_label` names the precision in model_id() ("float32", "int8", ...);
  /// `image_memory_budget` (bytes, 0 = unlimited) bounds image_memory_bytes()
  /// of every image prepare() accepts.
  MultimodalJudge(std::shared_ptr<const models::MultimodalLM> model, std::string dtype_label,
                  std::uint64_t image_memory_budget = 0);

  std::string model_id() const override;
  Capabilities capabilities() const override;
  std::shared_ptr<const ImageContext> prepare(const Image& image, const CallContext& call) const override;
  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords& answers, const CallContext& call) const override;
  std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns, const GenerateLimits& limits,
                       const CallContext& call) const override;
  /// All conversations decoded as one batch over the image prefix: each
  /// row's own tokens prefilled packed, then one batched forward per greedy
  /// step for the rows still running; equal to generate() per conversation.
  std::vector<std::string> generate_batch(const ImageContext* image,
                                          const std::vector<std::vector<ChatTurn>>& conversations,
                                          const GenerateLimits& limits, const CallContext& call) const override;
  std::string describe_answer_tokens(const AnswerWords& answers) const override;

  const models::MultimodalLM& model() const { return *model_; }

  /// The token ids score() feeds for `question_prompt` (with the image of
  /// `image`, or none when null): what transformers' processor gives for the
  /// same chat.
  std::vector<std::int64_t> question_ids(const ImageContext* image, const std::string& question_prompt) const;

  /// The image of a context this model prepared.
  const models::EncodedImage& encoded_image(const ImageContext* image) const;

  /// Estimated peak memory of preparing `image` (pixel values, the larger of
  /// the vision tower's and the prefix prefill's activations, the image
  /// tokens' KV cache and one question head's copy of it); 0 when the family
  /// cannot tell. From the image's size only: nothing is allocated.
  std::uint64_t image_memory_bytes(const Image& image) const;
  std::uint64_t image_memory_budget() const { return image_memory_budget_; }

  /// The ids generate() decodes (stop tokens excluded).
  std::vector<std::int32_t> generate_ids(const ImageContext* image, const std::vector<ChatTurn>& turns,
                                         const GenerateLimits& limits, const CallContext& call) const;

  /// The ids generate_batch() decodes, one list per conversation.
  std::vector<std::vector<std::int32_t>> generate_batch_ids(const ImageContext* image,
                                                            const std::vector<std::vector<ChatTurn>>& conversations,
                                                            const GenerateLimits& limits,
                                                            const CallContext& call) const;
  /// The token ids whose probabilities make P(word) at the first answer token.
  std::vector<std::int64_t> answer_token_ids(const std::string& word, AnswerSpellings spellings) const;

 private:
  struct Prefix;
  class Context;
  const Context* as_context(const ImageContext* image) const;
  void check_image_tokens() const;
  std::vector<std::int64_t> conversation_ids(const Context* context, const std::vector<ChatTurn>& turns) const;
  bool text_stop_reached(const std::vector<std::int32_t>& generated, const GenerateLimits& limits) const;
  std::string generated_text(const std::vector<std::int32_t>& generated, const GenerateLimits& limits) const;
  void self_check() const;
  std::vector<tokenizer::ChatMessage> question_chat(const Context* context, const std::string& question) const;
  Prefix prefill(std::vector<std::int64_t> ids, const std::vector<const models::EncodedImage*>& images,
                 const CallContext& call) const;
  std::shared_ptr<const Prefix> question_head(const Context& context, const std::vector<std::vector<std::int64_t>>& prompts,
                                              const CallContext& call) const;
  Prefix extend(const Prefix& base, const std::vector<std::int64_t>& tokens, const CallContext& call) const;
  at::Tensor last_hidden(const Prefix& prefix, const std::vector<std::vector<std::int64_t>>& rows, std::int64_t start,
                         models::KvCache* own, const CallContext& call) const;

  std::shared_ptr<const models::MultimodalLM> model_;
  std::string dtype_label_;
  std::uint64_t image_memory_budget_ = 0;
};

}  // namespace imgjudge::backends::torch
