#include "backends/torch/vlm.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "imgjudge/error.hpp"
#include "util/json.hpp"

namespace imgjudge::backends::torch {

using models::KvCache;
using TokenIds = std::vector<std::int64_t>;

namespace {

// Most tokens one packed scoring pass takes; longer question lists run in
// chunks, each still sharing the prefix KV cache. Bounds the activations (the
// MLP's [tokens, intermediate]: 37 MiB at Qwen2-VL-2B's width in float32) and
// the packed rows' own attention scores, which grow with tokens squared
// ([KV, G x tokens, tokens]: 48 MiB). A few hundred tokens already run the
// GEMMs near full speed.
constexpr std::size_t kMaxBatchTokens = 1024;

// Question heads kept per image (one per distinct question template in practice).
constexpr std::size_t kMaxQuestionHeads = 4;

// A cached question head is reused for a batch it does not fully cover when it
// leaves at most this many more common tokens per row to recompute; a new head
// costs a prefill of its tokens plus a copy of the prefix KV cache.
constexpr std::size_t kHeadReuseSlack = 4;

// How many leading tokens all `prompts` share, leaving each at least its last
// token to score.
std::size_t common_head_length(const std::vector<TokenIds>& prompts) {
  std::size_t common = prompts.front().size() - 1;
  for (const TokenIds& p : prompts) {
    std::size_t n = 0;
    while (n < common && n + 1 < p.size() && p[n] == prompts.front()[n]) ++n;
    common = n;
  }
  return common;
}

bool starts_with(const TokenIds& ids, const TokenIds& head) {
  return ids.size() >= head.size() && std::equal(head.begin(), head.end(), ids.begin());
}

// [R, 1, T] positions of text tokens `start + j` (j < T) after a prefix whose
// delta is `delta`: every M-RoPE row equal, as for any text after the image.
at::Tensor text_positions(const std::vector<std::int64_t>& indices, std::int64_t delta, std::int64_t rows) {
  const auto count = static_cast<std::int64_t>(indices.size());
  return (at::tensor(indices, at::kLong) + delta).view({1, 1, count}).expand({rows, 1, count}).contiguous();
}

// A score computed from a NaN must never read as "uncertain" (which a rule
// passes): it is an error of the call, and the caller decides.
void require_finite(const at::Tensor& values, const char* what) {
  if (!at::isfinite(values).all().item<bool>()) {
    throw Error(ErrorCode::Backend, fmt::format("the model produced non-finite {} (NaN or infinity)", what));
  }
}

}  // namespace

// A prefilled prompt head shared by many continuations.
struct MultimodalJudge::Prefix {
  TokenIds ids;
  KvCache cache;                // batch 1, read-only once built
  std::int64_t rope_delta = 0;  // a token at index p after the prefix has position p + rope_delta
  std::int64_t rope_rows = 1;   // rows of the position ids (3 for M-RoPE)
};

class MultimodalJudge::Context final : public ImageContext {
 public:
  models::EncodedImage image;
  Prefix prefix;  // the question prompt through the image's last token

  // `prefix` extended by the text every question of a batch starts with (the
  // template head "... Statement:"), built by the first score() call that
  // needs it and reused by later rounds.
  mutable std::mutex heads_mutex;
  mutable std::vector<std::shared_ptr<const Prefix>> question_heads;  // oldest first
};

MultimodalJudge::MultimodalJudge(std::shared_ptr<const models::MultimodalLM> model, std::string dtype_label,
                                 std::uint64_t image_memory_budget)
    : model_(std::move(model)), dtype_label_(std::move(dtype_label)), image_memory_budget_(image_memory_budget) {
  model_->tokenizer();  // judging needs the tokenizer and chat template: fail at load, not per image
  model_->chat_template();
  check_image_tokens();
  self_check();
}

// A folder whose image token is not in the vocabulary, or whose tokenizer does
// not know the template's image placeholder, would fail every image later;
// rendering one question with a one-row image finds both now.
void MultimodalJudge::check_image_tokens() const {
  if (!model_->has_vision()) return;
  const std::int64_t vocab = model_->decoder().config().vocab_size;
  const std::int64_t image_token = model_->image_token_id();
  if (image_token < 0 || image_token >= vocab) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}/config.json: the image token id {} is outside the vocabulary (vocab_size {})",
                            model_->model_dir(), image_token, vocab));
  }
  c10::InferenceMode guard;
  models::EncodedImage one_row;
  one_row.features = at::zeros({1, 1});
  one_row.grid_h = one_row.grid_w = 1;
  std::vector<std::int64_t> ids;
  try {
    Context probe;
    probe.image = one_row;
    ids = model_->render(question_chat(&probe, "?"), {&probe.image}, /*add_generation_prompt=*/true);
  } catch (const Error& e) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the chat template and tokenizer cannot place an image: {}", model_->model_dir(), e.what()));
  }
  if (std::count(ids.begin(), ids.end(), image_token) != 1) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the tokenizer does not encode the chat template's image placeholder as token {} "
                            "(tokenizer.json lacks the vision tokens, or config.json names the wrong id)",
                            model_->model_dir(), image_token));
  }
  for (std::int64_t id : ids) {
    if (id < 0 || id >= vocab) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: the tokenizer gives token id {}, outside the model's vocabulary (vocab_size {} in "
                              "config.json)",
                              model_->model_dir(), id, vocab));
    }
  }
}

// NaN weights or a config that makes the rotary embedding non-finite give
// NaN logits for every input; a judge built on them would leave every item
// uncertain and pass every image. One short question at load finds them: over
// an image when the model has a vision tower, so NaN vision weights are found
// here too, not per image (unless the image memory budget is below a 28x28 image's).
//
// The same question is the warm-up: the first image after load would
// otherwise pay the kernels' first-call setup (oneDNN primitives, the thread
// pool) and the page faults of the tensor cache's first activation blocks,
// 20-30% of a warm image. An image of a common upload size (448 square, the
// benchmark's first size) makes load pay them instead, where it is measured
// and reported.
namespace {

// A smooth colour gradient, side x side: an all-constant image is a degenerate input.
Image warm_up_image(int side) {
  std::vector<std::uint8_t> pixels(std::size_t(side) * side * 3);
  for (int y = 0; y < side; ++y) {
    for (int x = 0; x < side; ++x) {
      std::uint8_t* pixel = &pixels[(std::size_t(y) * side + x) * 3];
      pixel[0] = std::uint8_t(x * 255 / (side - 1));
      pixel[1] = std::uint8_t(y * 255 / (side - 1));
      pixel[2] = 128;
    }
  }
  return Image::from_rgb(pixels.data(), side, side, std::size_t(side) * 3);
}

}  // namespace

void MultimodalJudge::self_check() const {
  const Question question{"the sky is blue", "Is the sky blue? Answer \"Yes\" or \"No\"."};
  try {
    std::shared_ptr<const ImageContext> image;
    if (model_->has_vision()) {
      // 448 square unless the image memory budget is smaller than that takes;
      // then the largest halving that fits (the vision tower still runs), or none.
      for (int side = 448; side >= 28 && !image; side /= 2) {
        const Image warm_up = warm_up_image(side);
        if (image_memory_budget_ == 0 || image_memory_bytes(warm_up) <= image_memory_budget_) {
          image = prepare(warm_up, CallContext{});
        }
      }
    }
    score(image.get(), {question}, AnswerWords{}, CallContext{});
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Backend) throw;
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the load self-check failed ({}); the weights or config.json are corrupt", model_id(),
                            e.what()));
  }
}

std::string MultimodalJudge::model_id() const {
  return fmt::format("{}:{} ({})", model_->model_type(), model_->model_dir(), dtype_label_);
}

Capabilities MultimodalJudge::capabilities() const {
  Capabilities caps;
  caps.generate = true;
  caps.score_without_image = true;
  caps.images = model_->has_vision();
  return caps;
}

const MultimodalJudge::Context* MultimodalJudge::as_context(const ImageContext* image) const {
  if (image == nullptr) return nullptr;
  const auto* context = dynamic_cast<const Context*>(image);
  if (context == nullptr) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("the image context was not prepared by {}", model_id()));
  }
  return context;
}

const models::EncodedImage& MultimodalJudge::encoded_image(const ImageContext* image) const {
  const Context* context = as_context(image);
  if (context == nullptr) throw Error(ErrorCode::InvalidArgument, "encoded_image: no image context");
  return context->image;
}

std::vector<tokenizer::ChatMessage> MultimodalJudge::question_chat(const Context* context,
                                                                   const std::string& question) const {
  tokenizer::ChatMessage user{"user", {}};
  if (context != nullptr) user.content.push_back(tokenizer::ChatContent::image());
  user.content.push_back(tokenizer::ChatContent::make_text(question));
  return {user};
}

TokenIds MultimodalJudge::question_ids(const ImageContext* image, const std::string& question_prompt) const {
  const Context* context = as_context(image);
  std::vector<const models::EncodedImage*> images;
  if (context != nullptr) images.push_back(&context->image);
  return model_->render(question_chat(context, question_prompt), images, /*add_generation_prompt=*/true);
}

std::uint64_t MultimodalJudge::image_memory_bytes(const Image& image) const {
  const std::optional<models::ImageFootprint> f = model_->image_footprint(image);
  if (!f) return 0;
  const models::DecoderConfig& lm = model_->decoder().config();
  const auto element = static_cast<std::uint64_t>(at::elementSize(model_->decoder().dtype()));
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0)); };
  // A ViT block holds the residual, its norm, q/k/v, the attention output and
  // the MLP's two intermediate tensors at once: tokens x (6 D + 2 I).
  const std::uint64_t vision = u(f->vision_tokens) * (6 * u(f->vision_hidden) + 2 * u(f->vision_intermediate)) * element;
  // A decoder layer over the prefix: residual, norm, q/k/v and output (~4 H)
  // and the gated MLP's gate, up and product (3 I); attention scores are blocked.
  const std::uint64_t prefill = u(f->lm_tokens) * (4 * u(lm.hidden_size) + 3 * u(lm.intermediate_size)) * element;
  const std::uint64_t kv_cache =
      u(f->lm_tokens) * u(lm.num_layers) * 2 * u(lm.num_kv_heads) * u(lm.head_dim) * element;
  // The prefix cache plus one question head's copy of it (extend()).
  return u(f->pixel_values) * 4 + std::max(vision, prefill) + 2 * kv_cache;
}

std::shared_ptr<const ImageContext> MultimodalJudge::prepare(const Image& image, const CallContext& call) const {
  c10::InferenceMode guard;
  if (image_memory_budget_ > 0) {
    const std::uint64_t need = image_memory_bytes(image);
    if (need > image_memory_budget_) {
      throw Error(ErrorCode::LimitExceeded,
                  fmt::format("a {}x{} image would take about {} MiB in {} (the image memory budget is {} MiB; "
                              "raise image_memory_mb / --image-memory-mb, or lower max_pixels in "
                              "preprocessor_config.json)",
                              image.width, image.height, (need + (1u << 20) - 1) >> 20, model_id(),
                              image_memory_budget_ >> 20));
    }
  }
  auto context = std::make_shared<Context>();
  context->image = model_->encode_image(image, &call);
  // Everything up to the image's last token is the same for every question.
  const TokenIds ids = question_ids(context.get(), "?");
  const auto last = std::find(ids.rbegin(), ids.rend(), model_->image_token_id());
  if (last == ids.rend()) throw Error(ErrorCode::Internal, "the question prompt has no image tokens");
  context->prefix = prefill(TokenIds(ids.begin(), last.base()), {&context->image}, call);
  return context;
}

MultimodalJudge::Prefix MultimodalJudge::prefill(TokenIds ids, const std::vector<const models::EncodedImage*>& images,
                                                 const CallContext& call) const {
  Prefix prefix;
  prefix.ids = std::move(ids);
  if (prefix.ids.empty()) return prefix;
  const models::PromptPositions positions = model_->positions(prefix.ids, images);
  prefix.rope_delta = positions.delta;
  prefix.rope_rows = positions.ids.size(0);
  models::DecoderInput input;
  input.embeds = model_->embed(prefix.ids, images);
  input.position_ids = positions.ids;
  input.cache = &prefix.cache;
  input.cache_only = true;  // a prefix's own outputs are never read
  input.call = &call;
  model_->decoder().forward(input);
  return prefix;
}

std::vector<double> MultimodalJudge::score(const ImageContext* image, const std::vector<Question>& questions,
                                           const AnswerWords& answers, const CallContext& call) const {
  c10::InferenceMode guard;
  if (questions.empty()) return {};
  const Context* context = as_context(image);
  std::vector<TokenIds> prompts;
  for (const Question& q : questions) prompts.push_back(question_ids(context, q.prompt));

  // Every row continues one batch-1 prefix: the image prefix extended by the
  // question head the rows share, or for m0 (no image) the shared text head.
  const std::shared_ptr<const Prefix> prefix =
      context != nullptr
          ? question_head(*context, prompts, call)
          : std::make_shared<const Prefix>(prefill(
                TokenIds(prompts.front().begin(),
                         prompts.front().begin() + static_cast<std::ptrdiff_t>(common_head_length(prompts))),
                {}, call));
  std::vector<TokenIds> continuations;
  for (const TokenIds& p : prompts) {
    if (p.size() <= prefix->ids.size() || !starts_with(p, prefix->ids)) {
      throw Error(ErrorCode::Internal, "a question prompt does not start with the shared prefix");
    }
    continuations.emplace_back(p.begin() + static_cast<std::ptrdiff_t>(prefix->ids.size()), p.end());
  }
  const TokenIds yes = answer_token_ids(answers.yes, answers.spellings);
  const TokenIds no = answer_token_ids(answers.no, answers.spellings);
  TokenIds answer_order = yes;
  answer_order.insert(answer_order.end(), no.begin(), no.end());
  const at::Tensor answer_columns = at::tensor(answer_order, at::kLong);  // [Y+N]: yes ids, then no ids
  const auto yes_count = static_cast<std::int64_t>(yes.size());
  std::vector<double> scores;
  for (std::size_t start = 0, stop = 0; start < continuations.size(); start = stop) {
    // Rows [start, stop): as many as fit the token budget, at least one.
    std::size_t tokens = continuations[start].size();
    for (stop = start + 1; stop < continuations.size(); ++stop) {
      if (tokens + continuations[stop].size() > kMaxBatchTokens) break;
      tokens += continuations[stop].size();
    }
    const at::Tensor hidden = last_hidden(*prefix, {continuations.begin() + static_cast<std::ptrdiff_t>(start),
                                                    continuations.begin() + static_cast<std::ptrdiff_t>(stop)},
                                          static_cast<std::int64_t>(prefix->ids.size()), nullptr, call);  // [B, H]
    // P(yes) / (P(yes) + P(no)) = sigmoid(logsumexp(yes) - logsumexp(no)): no full softmax, so
    // the LM head only needs the answer tokens' rows: [B, H] x [Y+N, H]^T instead of x [V, H]^T.
    const at::Tensor logits = model_->decoder().logits_for(hidden, answer_columns);  // [B, Y+N] float32
    const at::Tensor p_yes = at::logsumexp(logits.narrow(1, 0, yes_count), 1);
    const at::Tensor p_no = at::logsumexp(logits.narrow(1, yes_count, logits.size(1) - yes_count), 1);
    const at::Tensor ratio = at::sigmoid((p_yes - p_no).to(at::kDouble));
    require_finite(logits, "answer-token logits");
    for (std::int64_t b = 0; b < ratio.size(0); ++b) scores.push_back(ratio[b].item<double>());
  }
  return scores;
}

// The prompt of `turns` as the chat template renders it, the image (if any)
// opening the first user turn, ready for the assistant's next turn.
TokenIds MultimodalJudge::conversation_ids(const Context* context, const std::vector<ChatTurn>& turns) const {
  if (turns.empty()) throw Error(ErrorCode::InvalidArgument, "generate: no chat turns");
  std::vector<tokenizer::ChatMessage> messages;
  bool image_placed = context == nullptr;
  for (const ChatTurn& turn : turns) {
    tokenizer::ChatMessage message;
    message.role = turn.role == ChatTurn::Role::System ? "system"
                   : turn.role == ChatTurn::Role::User ? "user"
                                                       : "assistant";
    if (!image_placed && turn.role == ChatTurn::Role::User) {
      message.content.push_back(tokenizer::ChatContent::image());  // the image opens the first user turn
      image_placed = true;
    }
    message.content.push_back(tokenizer::ChatContent::make_text(turn.text));
    messages.push_back(std::move(message));
  }
  if (!image_placed) throw Error(ErrorCode::InvalidArgument, "generate: an image needs a user turn");
  std::vector<const models::EncodedImage*> images;
  if (context != nullptr) images.push_back(&context->image);
  return model_->render(messages, images, /*add_generation_prompt=*/true);
}

// Whether the text of `generated` has reached a stop of `limits` (a stop
// string, or the end of its first JSON object): decoding stops after this token.
bool MultimodalJudge::text_stop_reached(const std::vector<std::int32_t>& generated, const GenerateLimits& limits) const {
  if (limits.stop.empty() && !limits.stop_after_json_object) return false;
  const std::string text = model_->tokenizer().decode(generated, true);
  for (const std::string& stop : limits.stop) {
    if (!stop.empty() && text.find(stop) != std::string::npos) return true;
  }
  return limits.stop_after_json_object && util::json_object_end(text).has_value();
}

// The text of `generated`, ending before the first stop string or after the
// '}' closing the first JSON object (whichever comes first).
std::string MultimodalJudge::generated_text(const std::vector<std::int32_t>& generated,
                                            const GenerateLimits& limits) const {
  const std::string text = model_->tokenizer().decode(generated, true);
  std::size_t end = text.size();
  for (const std::string& stop : limits.stop) {
    const std::size_t at = stop.empty() ? std::string::npos : text.find(stop);
    if (at != std::string::npos) end = std::min(end, at);
  }
  if (limits.stop_after_json_object) {
    if (const auto object_end = util::json_object_end(text)) end = std::min(end, *object_end);
  }
  return text.substr(0, end);
}

std::vector<std::int32_t> MultimodalJudge::generate_ids(const ImageContext* image, const std::vector<ChatTurn>& turns,
                                                        const GenerateLimits& limits, const CallContext& call) const {
  c10::InferenceMode guard;
  if (limits.max_new_tokens < 0) throw Error(ErrorCode::InvalidArgument, "generate: max_new_tokens < 0");
  const Context* context = as_context(image);
  std::vector<const models::EncodedImage*> images;
  if (context != nullptr) images.push_back(&context->image);
  const TokenIds ids = conversation_ids(context, turns);

  // Reuse the image prefix when the prompt starts with it (a single user turn
  // opening with the image); otherwise prefill this prompt's own head.
  Prefix own_head;
  const Prefix* prefix = nullptr;
  if (context != nullptr && ids.size() > context->prefix.ids.size() && starts_with(ids, context->prefix.ids)) {
    prefix = &context->prefix;
  } else {
    if (ids.back() == model_->image_token_id()) throw Error(ErrorCode::Internal, "a prompt ends with an image token");
    own_head = prefill(TokenIds(ids.begin(), ids.end() - 1), images, call);
    prefix = &own_head;
  }
  KvCache own;
  TokenIds pending(ids.begin() + static_cast<std::ptrdiff_t>(prefix->ids.size()), ids.end());
  auto position = static_cast<std::int64_t>(prefix->ids.size());
  const auto& stops = model_->stop_token_ids();
  std::vector<std::int32_t> generated;
  for (int step = 0; step < limits.max_new_tokens; ++step) {
    call.check();
    const at::Tensor logits = model_->decoder().logits(last_hidden(*prefix, {pending}, position, &own, call));  // [1, V]
    require_finite(logits, "next-token logits");
    position += static_cast<std::int64_t>(pending.size());
    const auto next = static_cast<std::int32_t>(logits[0].argmax().item<std::int64_t>());
    if (std::find(stops.begin(), stops.end(), next) != stops.end()) break;
    generated.push_back(next);
    pending = {next};
    if (text_stop_reached(generated, limits)) break;
  }
  return generated;
}

std::vector<std::vector<std::int32_t>> MultimodalJudge::generate_batch_ids(
    const ImageContext* image, const std::vector<std::vector<ChatTurn>>& conversations, const GenerateLimits& limits,
    const CallContext& call) const {
  c10::InferenceMode guard;
  if (limits.max_new_tokens < 0) throw Error(ErrorCode::InvalidArgument, "generate: max_new_tokens < 0");
  const Context* context = as_context(image);
  std::vector<TokenIds> prompts;
  for (const auto& turns : conversations) prompts.push_back(conversation_ids(context, turns));
  const std::size_t count = prompts.size();
  std::vector<std::vector<std::int32_t>> generated(count);
  if (count == 0 || limits.max_new_tokens == 0) return generated;

  // The prefix every row continues: the image prefix (computed once by
  // prepare(), shared by scoring) or, without an image, the text head the
  // prompts share. A conversation that does not start with the image prefix
  // (a system turn first), or a sliding-window model (its window counts
  // positions, which padding shifts), decodes one at a time.
  const bool all_after_image =
      context != nullptr && std::all_of(prompts.begin(), prompts.end(), [&](const TokenIds& p) {
        return p.size() > context->prefix.ids.size() && starts_with(p, context->prefix.ids);
      });
  if ((context != nullptr && !all_after_image) || !model_->decoder().config().sliding_window.empty()) {
    for (std::size_t r = 0; r < count; ++r) generated[r] = generate_ids(image, conversations[r], limits, call);
    return generated;
  }
  Prefix text_head;
  if (context == nullptr) {
    text_head = prefill(TokenIds(prompts.front().begin(),
                                 prompts.front().begin() + static_cast<std::ptrdiff_t>(common_head_length(prompts))),
                        {}, call);
  }
  if (text_head.ids.empty()) text_head.rope_rows = model_->decoder().config().rope.mrope_section.empty() ? 1 : 3;
  const Prefix& prefix = context != nullptr ? context->prefix : text_head;
  const auto start = static_cast<std::int64_t>(prefix.ids.size());
  std::vector<TokenIds> suffixes;
  std::int64_t longest = 0;
  for (const TokenIds& p : prompts) {
    suffixes.emplace_back(p.begin() + start, p.end());
    longest = std::max(longest, static_cast<std::int64_t>(suffixes.back().size()));
  }

  // 1. Prefill: the rows' suffixes packed into sequences of at most
  //    kMaxBatchTokens (a packed pass computes every row pair's scores, so
  //    one pass over many long rows would waste quadratic work), then each
  //    row's keys and values copied into one right-padded own cache, per
  //    layer [B, KV, longest, D], its padding hidden by key_padding [B, S].
  const models::DecoderConfig& config = model_->decoder().config();
  KvCache cache;
  at::Tensor hidden_rows;  // [B, H]: each row's final hidden state at its last token
  {
    std::vector<at::Tensor> hidden_parts;
    for (std::size_t first = 0, stop = 0; first < count; first = stop) {
      std::size_t tokens = suffixes[first].size();
      for (stop = first + 1; stop < count; ++stop) {
        if (tokens + suffixes[stop].size() > kMaxBatchTokens) break;
        tokens += suffixes[stop].size();
      }
      KvCache packed;  // per layer [1, KV, tokens, D]
      hidden_parts.push_back(last_hidden(prefix, {suffixes.begin() + static_cast<std::ptrdiff_t>(first),
                                                  suffixes.begin() + static_cast<std::ptrdiff_t>(stop)},
                                         start, &packed, call));
      if (cache.empty()) {
        for (std::size_t layer = 0; layer < packed.keys.size(); ++layer) {
          cache.keys.push_back(at::zeros({static_cast<std::int64_t>(count), config.num_kv_heads, longest, config.head_dim},
                                         packed.keys[layer].options()));
          cache.values.push_back(at::zeros_like(cache.keys.back()));
        }
      }
      std::int64_t offset = 0;
      for (std::size_t r = first; r < stop; ++r) {
        const auto length = static_cast<std::int64_t>(suffixes[r].size());
        for (std::size_t layer = 0; layer < packed.keys.size(); ++layer) {
          cache.keys[layer][static_cast<std::int64_t>(r)].narrow(1, 0, length).copy_(
              packed.keys[layer][0].narrow(1, offset, length));
          cache.values[layer][static_cast<std::int64_t>(r)].narrow(1, 0, length).copy_(
              packed.values[layer][0].narrow(1, offset, length));
        }
        offset += length;
      }
    }
    hidden_rows = at::cat(hidden_parts, 0);
  }
  std::vector<std::int64_t> lengths;
  for (const TokenIds& s : suffixes) lengths.push_back(static_cast<std::int64_t>(s.size()));
  at::Tensor key_padding =
      at::arange(longest, at::kLong).view({1, longest}) >= at::tensor(lengths, at::kLong).view({-1, 1});  // [B, S]

  // 2. Greedy decode: every unfinished row advances by one token per batched
  //    forward (the weights are read once per step for all rows); a row that
  //    reaches an end token, a stop or its budget leaves the batch.
  std::vector<std::size_t> active(count);  // batch row -> conversation
  for (std::size_t r = 0; r < count; ++r) active[r] = r;
  std::vector<std::int64_t> next_index(lengths);  // each row's next token index after the prefix
  for (std::int64_t& index : next_index) index += start;
  const auto& stops = model_->stop_token_ids();
  while (true) {
    call.check();
    const at::Tensor logits = model_->decoder().logits(hidden_rows);  // [B, V] float32
    require_finite(logits, "next-token logits");
    const at::Tensor argmax = logits.argmax(1);
    std::vector<std::int64_t> keep, next_tokens;  // batch rows that continue, and their new tokens
    for (std::size_t b = 0; b < active.size(); ++b) {
      const std::size_t r = active[b];
      const auto next = static_cast<std::int32_t>(argmax[static_cast<std::int64_t>(b)].item<std::int64_t>());
      if (std::find(stops.begin(), stops.end(), next) != stops.end()) continue;
      generated[r].push_back(next);
      if (static_cast<int>(generated[r].size()) >= limits.max_new_tokens || text_stop_reached(generated[r], limits)) {
        continue;
      }
      keep.push_back(static_cast<std::int64_t>(b));
      next_tokens.push_back(next);
    }
    if (keep.empty()) break;
    if (keep.size() < active.size()) {
      const at::Tensor rows = at::tensor(keep, at::kLong);
      for (std::size_t layer = 0; layer < cache.keys.size(); ++layer) {
        cache.keys[layer] = cache.keys[layer].index_select(0, rows);
        cache.values[layer] = cache.values[layer].index_select(0, rows);
      }
      key_padding = key_padding.index_select(0, rows);
      std::vector<std::size_t> still_active;
      std::vector<std::int64_t> still_next;
      for (std::int64_t b : keep) {
        still_active.push_back(active[static_cast<std::size_t>(b)]);
        still_next.push_back(next_index[static_cast<std::size_t>(b)]);
      }
      active = std::move(still_active);
      next_index = std::move(still_next);
    }
    const auto batch = static_cast<std::int64_t>(active.size());
    models::DecoderInput input;
    input.embeds = model_->decoder().embed(at::tensor(next_tokens, at::kLong).view({batch, 1}));
    // [R, B, 1]: each row at its own position; text after the prefix, so every M-RoPE row equal.
    input.position_ids = (at::tensor(next_index, at::kLong) + prefix.rope_delta)
                             .view({1, batch, 1})
                             .expand({prefix.rope_rows, batch, 1})
                             .contiguous();
    key_padding = at::cat({key_padding, at::zeros({batch, 1}, at::kBool)}, 1);
    input.key_padding = key_padding;
    input.shared_prefix = prefix.ids.empty() ? nullptr : &prefix.cache;
    input.cache = &cache;
    input.call = &call;
    hidden_rows = model_->decoder().forward(input).last_hidden.select(1, 0);  // [B, H]
    for (std::int64_t& index : next_index) ++index;
  }
  return generated;
}

std::string MultimodalJudge::generate(const ImageContext* image, const std::vector<ChatTurn>& turns,
                                      const GenerateLimits& limits, const CallContext& call) const {
  return generated_text(generate_ids(image, turns, limits, call), limits);
}

std::vector<std::string> MultimodalJudge::generate_batch(const ImageContext* image,
                                                         const std::vector<std::vector<ChatTurn>>& conversations,
                                                         const GenerateLimits& limits, const CallContext& call) const {
  std::vector<std::string> texts;
  for (const auto& ids : generate_batch_ids(image, conversations, limits, call)) {
    texts.push_back(generated_text(ids, limits));
  }
  return texts;
}

std::string MultimodalJudge::describe_answer_tokens(const AnswerWords& answers) const {
  auto list = [&](const std::string& word) {
    std::vector<std::string> items;
    for (std::int64_t id : answer_token_ids(word, answers.spellings)) {
      items.push_back(fmt::format("{} '{}'", id, model_->tokenizer().decode({static_cast<std::int32_t>(id)}, false)));
    }
    return fmt::format("[{}]", fmt::join(items, ", "));
  };
  return fmt::format("yes={} no={}", list(answers.yes), list(answers.no));
}

// The prefix a batch of image questions continues: the image prefix extended
// by the head all `prompts` share, so each row computes only its own
// statement and the closing template tokens. Heads are cached per image.
std::shared_ptr<const MultimodalJudge::Prefix> MultimodalJudge::question_head(const Context& context,
                                                                              const std::vector<TokenIds>& prompts,
                                                                              const CallContext& call) const {
  const std::size_t common = common_head_length(prompts);
  const TokenIds& first = prompts.front();
  if (common <= context.prefix.ids.size() || !starts_with(first, context.prefix.ids)) {
    // Nothing shared beyond the image: a non-owning pointer to the context's prefix.
    return std::shared_ptr<const Prefix>(std::shared_ptr<const Prefix>(), &context.prefix);
  }
  {
    std::lock_guard<std::mutex> lock(context.heads_mutex);
    std::shared_ptr<const Prefix> best;
    for (const auto& head : context.question_heads) {
      if (head->ids.size() > common || !starts_with(first, head->ids)) continue;  // then every prompt starts with it
      if (!best || head->ids.size() > best->ids.size()) best = head;
    }
    // A lone question gains nothing from a new head (it would compute the same tokens).
    if (best && (prompts.size() == 1 || best->ids.size() + kHeadReuseSlack >= common)) return best;
    if (prompts.size() == 1) return std::shared_ptr<const Prefix>(std::shared_ptr<const Prefix>(), &context.prefix);
  }
  // Built outside the lock: concurrent callers may both build it, and both results are equal.
  auto head = std::make_shared<const Prefix>(
      extend(context.prefix,
             TokenIds(first.begin() + static_cast<std::ptrdiff_t>(context.prefix.ids.size()),
                      first.begin() + static_cast<std::ptrdiff_t>(common)),
             call));
  std::lock_guard<std::mutex> lock(context.heads_mutex);
  if (context.question_heads.size() >= kMaxQuestionHeads) context.question_heads.erase(context.question_heads.begin());
  context.question_heads.push_back(head);
  return head;
}

// `base` followed by `tokens`, as one batch-1 prefix: the tokens run once over
// base's cache (keys and values only), and are joined to it (per layer
// [1, kv_heads, base + tokens, head_dim]).
MultimodalJudge::Prefix MultimodalJudge::extend(const Prefix& base, const TokenIds& tokens,
                                                const CallContext& call) const {
  KvCache added;
  const auto count = static_cast<std::int64_t>(tokens.size());
  const auto start = static_cast<std::int64_t>(base.ids.size());
  std::vector<std::int64_t> indices(tokens.size());
  for (std::int64_t j = 0; j < count; ++j) indices[static_cast<std::size_t>(j)] = start + j;
  models::DecoderInput input;
  input.embeds = model_->decoder().embed(at::tensor(tokens, at::kLong).view({1, count}));
  input.position_ids = text_positions(indices, base.rope_delta, base.rope_rows);
  input.shared_prefix = &base.cache;
  input.cache = &added;
  input.cache_only = true;
  input.call = &call;
  model_->decoder().forward(input);
  Prefix out;
  out.ids = base.ids;
  out.ids.insert(out.ids.end(), tokens.begin(), tokens.end());
  out.rope_delta = base.rope_delta;
  out.rope_rows = base.rope_rows;
  for (std::size_t layer = 0; layer < added.keys.size(); ++layer) {
    out.cache.keys.push_back(at::cat({base.cache.keys[layer], added.keys[layer]}, 2));
    out.cache.values.push_back(at::cat({base.cache.values[layer], added.values[layer]}, 2));
  }
  return out;
}

// Runs continuations after `prefix`, each starting at index `start`, as one
// packed sequence (no padding: a row attends to the prefix and its own earlier
// tokens) and returns the final hidden state [N, H] at each row's last token;
// the last layer computes only those N positions.
at::Tensor MultimodalJudge::last_hidden(const Prefix& prefix, const std::vector<TokenIds>& rows, std::int64_t start,
                                        KvCache* own, const CallContext& call) const {
  std::vector<std::int64_t> ids, segments, indices, last;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t j = 0; j < rows[r].size(); ++j) {
      ids.push_back(rows[r][j]);
      segments.push_back(static_cast<std::int64_t>(r));
      indices.push_back(start + static_cast<std::int64_t>(j));
    }
    last.push_back(static_cast<std::int64_t>(ids.size()) - 1);
  }
  const auto total = static_cast<std::int64_t>(ids.size());
  models::DecoderInput input;
  input.embeds = model_->decoder().embed(at::tensor(ids, at::kLong).view({1, total}));
  input.position_ids = text_positions(indices, prefix.rope_delta, prefix.rope_rows);
  if (rows.size() > 1) input.segments = at::tensor(segments, at::kLong);
  input.read_positions = at::tensor(last, at::kLong);
  input.shared_prefix = prefix.ids.empty() ? nullptr : &prefix.cache;
  input.cache = own;
  input.call = &call;
  return model_->decoder().forward(input).last_hidden[0];  // [N, H]
}

// Exact: the word's own token as written (its first token if the tokenizer
// splits it). Any: every single-token spelling among the word, its
// lower/upper-case-first variants, each with and without a leading space.
// Each spelling is tokenized as the family says an answer starts
// (MultimodalLM::answer_tokens).
TokenIds MultimodalJudge::answer_token_ids(const std::string& word, AnswerSpellings spellings) const {
  if (word.empty()) throw Error(ErrorCode::InvalidArgument, "answer word is empty");
  TokenIds ids;
  if (spellings == AnswerSpellings::Any) {
    std::string lower = word, upper = word;
    lower[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
    upper[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
    for (const std::string& s : {word, upper, lower}) {
      for (const std::string& spelling : {s, " " + s}) {
        const auto encoded = model_->answer_tokens(spelling);
        if (encoded.size() == 1 && std::find(ids.begin(), ids.end(), encoded[0]) == ids.end()) {
          ids.push_back(encoded[0]);
        }
      }
    }
  }
  if (ids.empty()) {
    const auto encoded = model_->answer_tokens(word);
    if (encoded.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("answer word '{}' encodes to no token", word));
    ids.push_back(encoded.front());
  }
  for (std::int64_t id : ids) {
    if (id >= model_->decoder().config().vocab_size) {
      throw Error(ErrorCode::InvalidModel, fmt::format("{}: answer token {} is outside the model vocabulary",
                                                       model_->model_dir(), id));
    }
  }
  return ids;
}

}  // namespace imgjudge::backends::torch
