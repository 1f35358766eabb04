#include "backends/torch/qwen2_vl_judge.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "imgjudge/error.hpp"
#include "models/qwen2_vl.hpp"
#include "runtime/device.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"
#include "util/files.hpp"

namespace imgjudge::backends::torch {
namespace {

using models::ImageGrid;
using models::KvCache;
using models::QwenVLModel;
using TokenIds = std::vector<std::int64_t>;

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

// A prefilled prompt head shared by many continuations.
struct Prefix {
  TokenIds ids;
  KvCache cache;            // batch 1, read-only once built
  std::int64_t rope_delta;  // a token at index p after the prefix has position p + rope_delta
};

class QwenImageContext final : public ImageContext {
 public:
  Prefix prefix;              // system turn + "<|im_start|>user\n<|vision_start|>...<|vision_end|>"
  at::Tensor image_features;  // [merged tokens, hidden], for prompts that cannot share the prefix
  ImageGrid grid;

  // `prefix` extended by the text every question of a batch starts with (the
  // template head "Is the following content visible ... Statement:"), built by
  // the first score() call that needs it and reused by later rounds.
  mutable std::mutex heads_mutex;
  mutable std::vector<std::shared_ptr<const Prefix>> question_heads;  // oldest first
};

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

struct AnswerIds {
  std::vector<std::int64_t> yes, no;
};

class QwenVLJudge final : public VisionLanguageModel {
 public:
  QwenVLJudge(const ModelConfig& config, runtime::ExecutionTarget target)
      : dir_(config.model_dir),
        model_(QwenVLModel::load(config.model_dir, target.dtype, target.device, target.linear_format)),
        tokenizer_(tokenizer::Tokenizer::load(config.model_dir)),
        dtype_label_(target.linear_format == runtime::LinearFormat::Int8 ? "int8"
                                                                          : runtime::dtype_label(target.dtype)) {
    const std::string processor_path = util::join_path(dir_, "preprocessor_config.json");
    if (util::file_exists(processor_path)) processor_ = models::QwenImageProcessorConfig::from_file(processor_path);
    const auto& vc = model_->config().vision;
    if (processor_.patch_size != vc.patch_size || processor_.merge_size != vc.spatial_merge_size ||
        processor_.temporal_patch_size != vc.temporal_patch_size) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: preprocessor_config.json patch/merge sizes disagree with config.json", dir_));
    }
    for (const char* name : {"<|im_end|>", "<|endoftext|>"}) {
      if (auto id = tokenizer_.token_to_id(name)) stop_ids_.push_back(*id);
    }
    if (stop_ids_.empty()) throw Error(ErrorCode::InvalidModel, dir_ + ": tokenizer has no <|im_end|> token");
  }

  std::string model_id() const override {
    const char* family = model_->config().family == models::QwenVLFamily::Qwen2VL ? "qwen2_vl" : "qwen2_5_vl";
    return fmt::format("{}:{} ({})", family, dir_, dtype_label_);
  }

  Capabilities capabilities() const override { return Capabilities{true, true}; }

  std::shared_ptr<const ImageContext> prepare(const Image& image, const CallContext& call) const override {
    c10::InferenceMode guard;
    auto context = std::make_shared<QwenImageContext>();
    const models::ProcessedImage processed = models::qwen_preprocess_image(image, processor_);
    context->grid = processed.grid;
    context->image_features = model_->encode_images(processed.pixel_values, {processed.grid}, &call);
    // The prompt head common to every question: everything up to <|vision_end|>.
    const TokenIds ids = prompt_ids({tokenizer::ChatContent::image(), tokenizer::ChatContent::make_text("?")},
                                    &processed.grid);
    const auto end = std::find(ids.begin(), ids.end(), model_->config().vision_end_token_id);
    if (end == ids.end()) throw Error(ErrorCode::Internal, "Qwen2-VL prompt has no <|vision_end|>");
    context->prefix = prefill(TokenIds(ids.begin(), end + 1), context->image_features, {processed.grid}, call);
    return context;
  }

  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords& answers, const CallContext& call) const override {
    c10::InferenceMode guard;
    if (questions.empty()) return {};
    const AnswerIds answer_ids = resolve_answers(answers);
    const QwenImageContext* context = as_context(image);
    std::vector<TokenIds> prompts;
    for (const Question& q : questions) prompts.push_back(question_prompt(q.prompt, context));

    // Every row continues one batch-1 prefix: the image prefix extended by the
    // question head the rows share, or for m0 (no image) the shared text head.
    std::shared_ptr<const Prefix> prefix =
        context != nullptr
            ? question_head(*context, prompts, call)
            : std::make_shared<const Prefix>(prefill(
                  TokenIds(prompts.front().begin(),
                           prompts.front().begin() + static_cast<std::ptrdiff_t>(common_head_length(prompts))),
                  at::Tensor(), {}, call));
    std::vector<TokenIds> continuations;
    for (const TokenIds& p : prompts) {
      if (p.size() <= prefix->ids.size() || !starts_with(p, prefix->ids)) {
        throw Error(ErrorCode::Internal, "Qwen2-VL question prompt does not start with the shared prefix");
      }
      continuations.emplace_back(p.begin() + static_cast<std::ptrdiff_t>(prefix->ids.size()), p.end());
    }
    TokenIds answer_order = answer_ids.yes;
    answer_order.insert(answer_order.end(), answer_ids.no.begin(), answer_ids.no.end());
    const at::Tensor answer_columns = at::tensor(answer_order, at::kLong);  // [Y+N]: yes ids, then no ids
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
      const auto yes_count = static_cast<std::int64_t>(answer_ids.yes.size());
      const at::Tensor yes = at::logsumexp(logits.narrow(1, 0, yes_count), 1);
      const at::Tensor no = at::logsumexp(logits.narrow(1, yes_count, logits.size(1) - yes_count), 1);
      const at::Tensor ratio = at::sigmoid((yes - no).to(at::kDouble));
      for (std::int64_t b = 0; b < ratio.size(0); ++b) scores.push_back(ratio[b].item<double>());
    }
    return scores;
  }

  std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns, const GenerateLimits& limits,
                       const CallContext& call) const override {
    c10::InferenceMode guard;
    if (turns.empty()) throw Error(ErrorCode::InvalidArgument, "generate: no chat turns");
    if (limits.max_new_tokens < 0) throw Error(ErrorCode::InvalidArgument, "generate: max_new_tokens < 0");
    const QwenImageContext* context = as_context(image);
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
    tokenizer::ChatTemplateOptions options;
    options.add_generation_prompt = true;
    const TokenIds ids = expand_images(tokenizer_.encode(tokenizer::render_qwen2_vl_chat(messages, options), false),
                                       context != nullptr ? &context->grid : nullptr);

    // Reuse the image prefix when the prompt starts with it (the default
    // system turn); otherwise prefill this prompt's own head.
    Prefix own_head;
    const Prefix* prefix = nullptr;
    if (context != nullptr && ids.size() > context->prefix.ids.size() &&
        std::equal(context->prefix.ids.begin(), context->prefix.ids.end(), ids.begin())) {
      prefix = &context->prefix;
    } else {
      own_head = prefill(TokenIds(ids.begin(), ids.end() - 1),
                         context != nullptr ? context->image_features : at::Tensor(),
                         context != nullptr ? std::vector<ImageGrid>{context->grid} : std::vector<ImageGrid>{}, call);
      prefix = &own_head;
    }
    KvCache own;
    TokenIds pending(ids.begin() + static_cast<std::ptrdiff_t>(prefix->ids.size()), ids.end());
    std::int64_t position = static_cast<std::int64_t>(prefix->ids.size());
    std::vector<std::int32_t> generated;
    for (int step = 0; step < limits.max_new_tokens; ++step) {
      call.check();
      const at::Tensor logits = model_->decoder().logits(last_hidden(*prefix, {pending}, position, &own, call));  // [1, V]
      position += static_cast<std::int64_t>(pending.size());
      const auto next = static_cast<std::int32_t>(logits[0].argmax().item<std::int64_t>());
      if (std::find(stop_ids_.begin(), stop_ids_.end(), next) != stop_ids_.end()) break;
      generated.push_back(next);
      pending = {next};
      if (!limits.stop.empty()) {
        const std::string text = tokenizer_.decode(generated, true);
        for (const std::string& stop : limits.stop) {
          const std::size_t at = stop.empty() ? std::string::npos : text.find(stop);
          if (at != std::string::npos) return text.substr(0, at);
        }
      }
    }
    return tokenizer_.decode(generated, true);
  }

  std::string describe_answer_tokens(const AnswerWords& answers) const override {
    const AnswerIds ids = resolve_answers(answers);
    auto list = [&](const std::vector<std::int64_t>& group) {
      std::vector<std::string> items;
      for (std::int64_t id : group) {
        items.push_back(fmt::format("{} '{}'", id, tokenizer_.decode({static_cast<std::int32_t>(id)}, false)));
      }
      return fmt::format("[{}]", fmt::join(items, ", "));
    };
    return fmt::format("yes={} no={}", list(ids.yes), list(ids.no));
  }

 private:
  const QwenImageContext* as_context(const ImageContext* image) const {
    if (image == nullptr) return nullptr;
    const auto* context = dynamic_cast<const QwenImageContext*>(image);
    if (context == nullptr) {
      throw Error(ErrorCode::InvalidArgument, "the image context was not prepared by this Qwen2-VL model");
    }
    return context;
  }

  // Token ids of a one-user-turn prompt (default system turn, generation
  // prompt), with the single <|image_pad|> expanded to the image's tokens.
  TokenIds prompt_ids(const std::vector<tokenizer::ChatContent>& content, const ImageGrid* grid) const {
    tokenizer::ChatTemplateOptions options;
    options.add_generation_prompt = true;
    const std::string text = tokenizer::render_qwen2_vl_chat({{"user", content}}, options);
    return expand_images(tokenizer_.encode(text, false), grid);
  }

  TokenIds question_prompt(const std::string& question, const QwenImageContext* context) const {
    std::vector<tokenizer::ChatContent> content;
    if (context != nullptr) content.push_back(tokenizer::ChatContent::image());
    content.push_back(tokenizer::ChatContent::make_text(question));
    return prompt_ids(content, context != nullptr ? &context->grid : nullptr);
  }

  TokenIds expand_images(const std::vector<std::int32_t>& ids, const ImageGrid* grid) const {
    const std::int64_t image_token = model_->config().image_token_id;
    const std::int64_t merge = model_->config().vision.spatial_merge_size;
    TokenIds out;
    for (std::int32_t id : ids) {
      if (id != image_token) {
        out.push_back(id);
        continue;
      }
      if (grid == nullptr) throw Error(ErrorCode::InvalidArgument, "the prompt has an image placeholder but no image");
      out.insert(out.end(), static_cast<std::size_t>(grid->patches() / (merge * merge)), image_token);
    }
    return out;
  }

  Prefix prefill(TokenIds ids, const at::Tensor& image_features, const std::vector<ImageGrid>& grids,
                 const CallContext& call) const {
    Prefix prefix;
    prefix.ids = std::move(ids);
    const models::RopeIndex rope = model_->rope_index(prefix.ids, grids);
    prefix.rope_delta = rope.delta;
    if (prefix.ids.empty()) return prefix;
    models::DecoderInput input;
    input.embeds = model_->embed_prompt(prefix.ids, image_features);
    input.position_ids = rope.position_ids;
    input.cache = &prefix.cache;
    input.cache_only = true;  // a prefix's own outputs are never read
    input.call = &call;
    model_->decoder().forward(input);
    return prefix;
  }

  // The prefix a batch of image questions continues: the image prefix extended
  // by the head all `prompts` share, so each row computes only its own
  // statement and the closing template tokens. Heads are cached per image.
  std::shared_ptr<const Prefix> question_head(const QwenImageContext& context, const std::vector<TokenIds>& prompts,
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
        extend(context.prefix, TokenIds(first.begin() + static_cast<std::ptrdiff_t>(context.prefix.ids.size()),
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
  Prefix extend(const Prefix& base, const TokenIds& tokens, const CallContext& call) const {
    KvCache added;
    const auto count = static_cast<std::int64_t>(tokens.size());
    const auto start = static_cast<std::int64_t>(base.ids.size());
    models::DecoderInput input;
    input.embeds = model_->decoder().embed(at::tensor(tokens, at::kLong).view({1, count}));
    input.position_ids =
        (at::arange(start, start + count, at::kLong) + base.rope_delta).view({1, 1, count}).expand({3, 1, count}).contiguous();
    input.shared_prefix = &base.cache;
    input.cache = &added;
    input.cache_only = true;
    input.call = &call;
    model_->decoder().forward(input);
    Prefix out;
    out.ids = base.ids;
    out.ids.insert(out.ids.end(), tokens.begin(), tokens.end());
    out.rope_delta = base.rope_delta;
    for (std::size_t layer = 0; layer < added.keys.size(); ++layer) {
      out.cache.keys.push_back(at::cat({base.cache.keys[layer], added.keys[layer]}, 2));
      out.cache.values.push_back(at::cat({base.cache.values[layer], added.values[layer]}, 2));
    }
    return out;
  }

  // Runs continuations after `prefix`, each starting at position `start`, as
  // one packed sequence (no padding: a row attends to the prefix and its own
  // earlier tokens) and returns the final hidden state [N, H] at each row's
  // last token; the last layer computes only those N positions.
  at::Tensor last_hidden(const Prefix& prefix, const std::vector<TokenIds>& rows, std::int64_t start, KvCache* own,
                         const CallContext& call) const {
    std::vector<std::int64_t> ids, segments, positions, last;
    for (std::size_t r = 0; r < rows.size(); ++r) {
      for (std::size_t j = 0; j < rows[r].size(); ++j) {
        ids.push_back(rows[r][j]);
        segments.push_back(static_cast<std::int64_t>(r));
        positions.push_back(start + static_cast<std::int64_t>(j));
      }
      last.push_back(static_cast<std::int64_t>(ids.size()) - 1);
    }
    const auto total = static_cast<std::int64_t>(ids.size());
    models::DecoderInput input;
    input.embeds = model_->decoder().embed(at::tensor(ids, at::kLong).view({1, total}));
    // Text after the image: all three M-RoPE rows equal index + rope delta.
    input.position_ids =
        (at::tensor(positions, at::kLong) + prefix.rope_delta).view({1, 1, total}).expand({3, 1, total}).contiguous();
    if (rows.size() > 1) input.segments = at::tensor(segments, at::kLong);
    input.read_positions = at::tensor(last, at::kLong);
    input.shared_prefix = prefix.ids.empty() ? nullptr : &prefix.cache;
    input.cache = own;
    input.call = &call;
    return model_->decoder().forward(input).last_hidden[0];  // [N, H]
  }

  AnswerIds resolve_answers(const AnswerWords& answers) const {
    return AnswerIds{answer_token_ids(answers.yes, answers.spellings), answer_token_ids(answers.no, answers.spellings)};
  }

  // The tokens whose probabilities make P(word) at the first answer token.
  // Exact: the word's own token as written (its first token if the tokenizer
  // splits it). Any: every single-token spelling among the word, its
  // lower/upper-case-first variants, each with and without a leading space.
  std::vector<std::int64_t> answer_token_ids(const std::string& word, AnswerSpellings spellings) const {
    if (word.empty()) throw Error(ErrorCode::InvalidArgument, "answer word is empty");
    std::vector<std::int64_t> ids;
    if (spellings == AnswerSpellings::Any) {
      std::string lower = word, upper = word;
      lower[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
      upper[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
      for (const std::string& s : {word, upper, lower}) {
        for (const std::string& spelling : {s, " " + s}) {
          const auto encoded = tokenizer_.encode(spelling, false);
          if (encoded.size() == 1 && std::find(ids.begin(), ids.end(), encoded[0]) == ids.end()) {
            ids.push_back(encoded[0]);
          }
        }
      }
    }
    if (ids.empty()) {
      const auto encoded = tokenizer_.encode(word, false);
      if (encoded.empty()) throw Error(ErrorCode::InvalidArgument, fmt::format("answer word '{}' encodes to no token", word));
      ids.push_back(encoded.front());
    }
    for (std::int64_t id : ids) {
      if (id >= model_->config().text.vocab_size) {
        throw Error(ErrorCode::InvalidModel, fmt::format("answer token {} is outside the model vocabulary", id));
      }
    }
    return ids;
  }

  std::string dir_;
  std::shared_ptr<const QwenVLModel> model_;
  tokenizer::Tokenizer tokenizer_;
  models::QwenImageProcessorConfig processor_;
  std::string dtype_label_;
  std::vector<std::int32_t> stop_ids_;
};

}  // namespace

std::shared_ptr<const VisionLanguageModel> load_qwen_vl_judge(const ModelConfig& config) {
  const runtime::ExecutionTarget target =
      runtime::resolve_device(runtime::DeviceOptions{config.device, config.dtype, config.threads});
  return std::make_shared<const QwenVLJudge>(config, target);
}

}  // namespace imgjudge::backends::torch
