// The CLUE online pipeline (docs/method.md).
//
// Per image: relevance scanning -> (image encoded once) -> chain items asked in
// rounds, item k of every live rule in ONE batched score call (all rounds in
// one call when early exit is off) -> strategy 1
// against the cached language prior m0 -> uncertain statements go to strategy 2
// (central object removed, or its crop) and then to cascaded reasoning.
// Everything image-independent (rule embeddings, m0, prompts) is done once, in
// the constructor; a Judge is immutable afterwards.
#include "imgjudge/judge.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <new>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "core/reasoning.hpp"
#include "core/region_removal.hpp"

namespace imgjudge {
namespace {

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

double cosine(const Embedding& a, const Embedding& b) {
  if (a.size() != b.size()) {
    throw Error(ErrorCode::Backend,
                fmt::format("relevance model returned embeddings of different sizes ({} and {})",
                            a.size(), b.size()));
  }
  double dot = 0;
  for (std::size_t i = 0; i < a.size(); ++i) dot += double(a[i]) * double(b[i]);
  return dot;
}

// A score or cosine that is NaN would compare false with every threshold and
// leave its item uncertain or its rule skipped: an image would pass because
// the model is broken. It is an error of the call instead.
double require_finite(double value, const std::string& model_id, const std::string& what) {
  if (!std::isfinite(value)) {
    throw Error(ErrorCode::Backend, fmt::format("{} gave a non-finite {} ({})", model_id, what, value));
  }
  return value;
}

// How far M(x,c) rose from the prior toward certainty, in [0, 1]: strategy 1
// accepts exactly when this exceeds accept_factor.
double prior_evidence(double score, double prior) {
  if (!std::isfinite(score) || score <= prior || prior >= 1.0) return 0.0;
  return std::clamp((score - prior) / (1.0 - prior), 0.0, 1.0);
}

// An item's evidence for its rule's violation: 1 accepted, 0 rejected or not
// evaluated, and for an uncertain item its best statement's prior evidence.
double item_evidence(const ItemResult& item) {
  switch (item.outcome) {
    case ItemOutcome::Accepted: return 1.0;
    case ItemOutcome::Rejected:
    case ItemOutcome::NotEvaluated: return 0.0;
    case ItemOutcome::Uncertain: break;
  }
  double best = 0.0;
  for (const auto& s : item.statements) best = std::max(best, prior_evidence(s.score, s.prior));
  return best;
}

// A rule's score (its weakest item's evidence), whether it is violated, and
// what its `uncertain` policy makes of a chain no stage could settle.
void decide_rule(const Rule& rule, RuleResult& result) {
  result.score = 0.0;
  result.violated = result.uncertain = result.review = false;
  if (!result.judged || result.items.empty()) return;
  result.score = 1.0;
  bool any_rejected = false, any_uncertain = false;
  for (const auto& item : result.items) {
    result.score = std::min(result.score, item_evidence(item));
    any_rejected = any_rejected || item.outcome == ItemOutcome::Rejected;
    any_uncertain = any_uncertain || item.outcome == ItemOutcome::Uncertain;
  }
  result.violated = result.score >= rule.thresholds.score_threshold;
  result.uncertain = !result.violated && !any_rejected && any_uncertain;
  if (result.uncertain) {
    result.violated = rule.thresholds.uncertain == UncertainPolicy::Unsafe;
    result.review = rule.thresholds.uncertain == UncertainPolicy::Review;
  }
}

// Strategy 1 of the paper: compare M(x,c) with the language prior m0.
ItemOutcome classify_against_prior(double score, double prior, const Thresholds& t) {
  if (score - prior < -t.reject_factor * prior) return ItemOutcome::Rejected;
  if (score - prior > t.accept_factor * (1.0 - prior)) return ItemOutcome::Accepted;
  return ItemOutcome::Uncertain;
}

}  // namespace

CallOptions CallOptions::with_timeout(std::chrono::milliseconds timeout) {
  CallOptions options;
  options.deadline = Clock::now() + timeout;
  return options;
}

struct IMGJUDGE_HIDDEN Judge::Impl {
  struct Statement {
    std::string text;
    std::string prompt;
    double prior = std::numeric_limits<double>::quiet_NaN();
  };
  struct Item {
    std::vector<Statement> any_of;
    std::vector<std::string> objects;
    std::vector<std::size_t> object_queries;  // the objects' indices into locator_queries
  };
  struct PreparedRule {
    const Rule* rule = nullptr;
    std::vector<Item> items;
    std::vector<Embedding> relevance_embeddings;
  };

  Constitution constitution;
  Models models;
  JudgeOptions options;
  std::vector<PreparedRule> rules;
  std::map<std::string, double> prior_by_statement;
  std::string answer_tokens;
  std::vector<std::string> notes;  // Stage degradations known at construction.
  bool use_relevance = false;
  bool use_debias = false;
  bool use_cascade = false;
  bool use_locator = false;
  // Every object phrase of the constitution, embedded once by the locator.
  std::vector<std::string> locator_phrases;
  std::shared_ptr<const LocatorQueries> locator_queries;

  // One reasoning conversation: the image context reasoned over and the two
  // prompts (thinking, then the JSON answer). A statement several rules share
  // (with the same prompts) is one conversation.
  using ReasoningKey = std::tuple<const ImageContext*, std::string, std::string>;

  // Per-call state, on the stack of judge(): the Judge itself stays immutable.
  struct Call {
    const Image& image;
    const ImageContext* image_context;
    const CallContext& context;
    Verdict& verdict;
    std::set<std::string> notes;
    // The image as the locator encoded it: built by the first item of this
    // image that needs strategy 2, so images without one never pay for it.
    std::shared_ptr<const LocatorImage> locator_image;
    // Cascaded reasoning already run for this image: a statement several rules
    // share (with the same prompts) is reasoned once. Key: the image context
    // reasoned over and the two prompts.
    struct Reasoned {
      ItemOutcome outcome;
      Stage decided_by;
      std::string rationale;
    };
    std::map<ReasoningKey, Reasoned> reasoned;
    // Region crops whose context an item's reasoning request still names:
    // kept alive until the image's reasoning batch has run.
    std::vector<std::shared_ptr<const ImageContext>> crop_contexts;
  };

  // An item evaluated up to cascaded reasoning: its alternatives' requests
  // wait for the image's one reasoning batch (reason_pending), then
  // finish_item decides it.
  struct PendingItem {
    std::size_t rule = 0;
    const Item* item = nullptr;
    ItemResult result;
    // The uncertain alternatives, in the order they are tried (most likely
    // first): the first one accepted decides, as if tried one at a time.
    std::vector<std::size_t> order;
    std::map<std::size_t, ReasoningKey> reasoning;  // alternative -> its reasoning request
  };

  void prepare_rules();
  void embed_object_phrases();
  void compute_priors();
  void embed_rule_texts();
  Verdict judge(const Image& image, const CallOptions& options) const;
  /// One image's frames (an animation's judged frames): the worst frame's verdict.
  Verdict judge_frames(const ImageFrames& frames, double decode_ms, const CallOptions& options) const;
  PendingItem begin_item(std::size_t rule_index, const Item& item, const std::map<std::string, double>& scores,
                         Call& call) const;
  std::optional<ReasoningKey> resolve_uncertain(const PreparedRule& rule, const Item& item, StatementScore& statement,
                                                const std::string& prompt, Call& call) const;
  void reason_pending(const std::vector<PendingItem>& items, Call& call) const;
  ItemResult finish_item(PendingItem pending, Call& call) const;
};

void Judge::Impl::prepare_rules() {
  for (const auto& rule : constitution.rules) {
    PreparedRule prepared;
    prepared.rule = &rule;
    auto make_statement = [&](const std::string& text) {
      return Statement{text, render_question(rule.questions.score, text)};
    };
    if (options.chains && !rule.chain.empty()) {
      for (const auto& chain_item : rule.chain) {
        Item item;
        for (const auto& text : chain_item.any_of) item.any_of.push_back(make_statement(text));
        item.objects = chain_item.objects;
        prepared.items.push_back(std::move(item));
      }
    } else {
      // Without chains the whole (objective) rule is one question, as in the paper's ablation.
      prepared.items.push_back(Item{{make_statement(rule.objective_text)}, {}, {}});
    }
    rules.push_back(std::move(prepared));
  }
}

void Judge::Impl::embed_object_phrases() {
  std::map<std::string, std::size_t> index_of;
  for (auto& rule : rules) {
    for (auto& item : rule.items) {
      for (const auto& object : item.objects) {
        const auto [it, added] = index_of.emplace(object, locator_phrases.size());
        if (added) locator_phrases.push_back(object);
        item.object_queries.push_back(it->second);
      }
    }
  }
  if (locator_phrases.empty()) return;
  locator_queries = models.locator->embed_queries(locator_phrases, CallContext{});
  if (!locator_queries || locator_queries->size() != locator_phrases.size()) {
    throw Error(ErrorCode::Backend, fmt::format("{} embedded a different number of phrases than the {} asked",
                                                models.locator->model_id(), locator_phrases.size()));
  }
}

void Judge::Impl::compute_priors() {
  // m0 = M(None, c) does not depend on the image: ask every distinct prompt once, here.
  std::vector<Question> questions;
  std::map<std::string, std::size_t> index_of_prompt;
  for (const auto& rule : rules) {
    for (const auto& item : rule.items) {
      for (const auto& statement : item.any_of) {
        if (index_of_prompt.emplace(statement.prompt, questions.size()).second) {
          questions.push_back({statement.text, statement.prompt});
        }
      }
    }
  }
  const std::vector<double> priors = models.vlm->score(nullptr, questions, options.answers, CallContext{});
  if (priors.size() != questions.size()) {
    throw Error(ErrorCode::Backend, fmt::format("backend returned {} priors for {} questions",
                                                priors.size(), questions.size()));
  }
  for (auto& rule : rules) {
    for (auto& item : rule.items) {
      for (auto& statement : item.any_of) {
        statement.prior = require_finite(priors[index_of_prompt.at(statement.prompt)], models.vlm->model_id(),
                                         fmt::format("prior m0 for \"{}\"", statement.text));
        prior_by_statement[statement.text] = statement.prior;
      }
    }
  }
}

void Judge::Impl::embed_rule_texts() {
  std::vector<std::string> texts;
  for (const auto& rule : rules) {
    texts.insert(texts.end(), rule.rule->relevance_texts.begin(), rule.rule->relevance_texts.end());
  }
  const std::vector<Embedding> embeddings = models.relevance->embed_texts(texts, CallContext{});
  if (embeddings.size() != texts.size()) {
    throw Error(ErrorCode::Backend, fmt::format("relevance model returned {} embeddings for {} texts",
                                                embeddings.size(), texts.size()));
  }
  std::size_t next = 0;
  for (auto& rule : rules) {
    for (std::size_t i = 0; i < rule.rule->relevance_texts.size(); ++i) {
      rule.relevance_embeddings.push_back(embeddings[next++]);
    }
  }
}

Judge::Judge(Constitution constitution, Models models, JudgeOptions options)
    : impl_([&] {
        if (!models.vlm) {
          throw Error(ErrorCode::InvalidArgument, "Judge needs a vision-language model (Models::vlm is null)");
        }
        if (constitution.rules.empty()) {
          throw Error(ErrorCode::InvalidArgument, "Judge needs a constitution with at least one rule");
        }
        auto impl = std::make_unique<Impl>();
        impl->constitution = std::move(constitution);
        impl->models = std::move(models);
        impl->options = std::move(options);
        // The constitution decides which answer tokens count: one definition per Judge.
        impl->options.answers.spellings = impl->constitution.answer_spellings;
        Impl& self = *impl;
        const Capabilities caps = self.models.vlm->capabilities();
        if (!caps.images) {
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{} is a text-only language model; judging needs a vision-language model "
                                  "(text-only models serve the constitution tools)",
                                  self.models.vlm->model_id()));
        }

        // Every stage that is switched off or cannot run gets a note: a degraded
        // judge is never silent (docs/verdict-json.md, "notes").
        self.use_relevance = self.options.relevance && self.models.relevance != nullptr;
        if (!self.options.relevance) {
          self.notes.push_back("relevance scanning off (switched off): every rule is judged");
        } else if (!self.models.relevance) {
          self.notes.push_back("relevance scanning off: no relevance model configured; every rule is judged");
        }
        self.use_debias = self.options.debias && caps.score_without_image;
        if (!self.options.debias) {
          self.notes.push_back("debiasing off (switched off): items are accepted iff M(x,c) > 0.5");
        } else if (!caps.score_without_image) {
          self.notes.push_back("debiasing off: the model cannot score without an image; items are "
                               "accepted iff M(x,c) > 0.5");
        }
        if (!self.options.chains) {
          self.notes.push_back("precondition chains off (switched off): each rule is one question, its objective text");
        }
        if (!self.options.early_exit) {
          self.notes.push_back("early exit off (switched off): every item of every judged rule is asked");
        }
        // Strategy 2 needs a locator and items with central object words.
        bool names_objects = false;
        for (const auto& rule : self.constitution.rules) {
          for (const auto& item : rule.chain) names_objects = names_objects || !item.objects.empty();
        }
        names_objects = names_objects && self.options.chains;
        self.use_locator = self.options.locator && self.use_debias && self.models.locator != nullptr && names_objects;
        if (names_objects && self.use_debias && self.options.locator && !self.models.locator) {
          self.notes.push_back("strategy 2 off: the constitution names central objects but no locator is "
                               "configured (ModelConfig::locator_model_dir, --locator-model)");
        }
        if (!self.options.locator) self.notes.push_back("strategy 2 off (ablation)");
        self.use_cascade = self.options.cascade && caps.generate;
        if (!self.options.cascade) {
          self.notes.push_back("cascaded reasoning off (switched off): uncertain items stay uncertain");
        } else if (!caps.generate) {
          self.notes.push_back("cascaded reasoning off: the model cannot generate text");
        }

        self.prepare_rules();
        if (self.use_locator) self.embed_object_phrases();
        if (self.use_debias) self.compute_priors();
        if (self.use_relevance) self.embed_rule_texts();
        self.answer_tokens = self.models.vlm->describe_answer_tokens(self.options.answers);
        return std::unique_ptr<const Impl>(std::move(impl));
      }()) {}

Judge::~Judge() = default;
Judge::Judge(Judge&&) noexcept = default;
Judge& Judge::operator=(Judge&&) noexcept = default;

const Constitution& Judge::constitution() const noexcept { return impl_->constitution; }
const JudgeOptions& Judge::options() const noexcept { return impl_->options; }

double Judge::prior(const std::string& statement) const noexcept {
  auto it = impl_->prior_by_statement.find(statement);
  return it == impl_->prior_by_statement.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

namespace {

// Every judging entry point throws imgjudge::Error only: an allocation that
// fails inside a library of ours (std::bad_alloc from a decoder, a tokenizer
// or libtorch) is that image's OutOfMemory, so a batch goes on with the next
// image; anything else foreign is a bug of ours.
template <typename Body>
Verdict one_error_type(Body&& body) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::OutOfMemory, "out of memory while judging this image");
  } catch (const std::exception& e) {
    throw Error(ErrorCode::Internal, fmt::format("internal error (please report): {}", e.what()));
  }
}

}  // namespace

Verdict Judge::judge(const Image& image, const CallOptions& call) const {
  return one_error_type([&] { return impl_->judge(image, call); });
}

namespace {

// How bad a frame's verdict is: unsafe over review over safe, then the
// highest rule score.
std::pair<int, double> severity_of(const Verdict& verdict) {
  const int level = verdict.decision == Decision::Unsafe ? 2 : verdict.decision == Decision::Review ? 1 : 0;
  double score = 0.0;
  for (const auto& rule : verdict.rules) score = std::max(score, rule.score);
  return {level, score};
}

}  // namespace

Verdict Judge::Impl::judge_frames(const ImageFrames& frames, double decode_ms, const CallOptions& call) const {
  if (frames.frames.size() == 1 && frames.frame_count == 1) {
    Verdict verdict = judge(frames.frames.front(), call);
    verdict.timings.decode_ms = decode_ms;
    verdict.timings.total_ms += decode_ms;
    return verdict;
  }
  // An animation: every judged frame, the worst reported (the same deadline covers them all).
  std::optional<Verdict> worst;
  double total_ms = decode_ms;
  int questions = 0, reasoning = 0;
  for (std::size_t f = 0; f < frames.frames.size(); ++f) {
    Verdict verdict = judge(frames.frames[f], call);
    total_ms += verdict.timings.total_ms;
    questions += verdict.questions_scored;
    reasoning += verdict.reasoning_calls;
    if (!worst || severity_of(verdict) > severity_of(*worst)) {
      verdict.animation = AnimationInfo{frames.frame_count, frames.indices, frames.indices[f]};
      worst = std::move(verdict);
    }
  }
  worst->timings.decode_ms = decode_ms;
  worst->timings.total_ms = total_ms;
  worst->questions_scored = questions;
  worst->reasoning_calls = reasoning;
  worst->notes.push_back(fmt::format("animated image: judged {} of its {} frames; this verdict is frame {}'s, the worst",
                                     frames.frames.size(), frames.frame_count, worst->animation->frame));
  return *worst;
}

Verdict Judge::judge_bytes(const void* bytes, std::size_t size, const CallOptions& call) const {
  return one_error_type([&] {
    const auto start = Clock::now();
    const ImageFrames frames = decode_image_frames(bytes, size, impl_->options.decode);
    return impl_->judge_frames(frames, elapsed_ms(start), call);
  });
}

Verdict Judge::judge_file(const std::string& path, const CallOptions& call) const {
  return one_error_type([&] {
    const auto start = Clock::now();
    const ImageFrames frames = load_image_frames(path, impl_->options.decode);
    return impl_->judge_frames(frames, elapsed_ms(start), call);
  });
}

std::vector<BatchResult> Judge::judge_batch(const std::vector<Image>& images, const CallOptions& call) const {
  std::vector<BatchResult> results(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    try {
      results[i].verdict = judge(images[i], call);
    } catch (const Error& e) {
      results[i].error_code = e.code();
      results[i].error_message = e.what();
      // A deadline or cancellation covers the whole batch: stop, and say so for the rest.
      if (e.code() == ErrorCode::DeadlineExceeded || e.code() == ErrorCode::Cancelled) {
        for (std::size_t j = i + 1; j < images.size(); ++j) {
          results[j].error_code = e.code();
          results[j].error_message = e.what();
        }
        break;
      }
    }
  }
  return results;
}

Verdict Judge::Impl::judge(const Image& image, const CallOptions& call_options) const {
  const auto start = Clock::now();
  const CallContext context(call_options.deadline,
                            call_options.cancel ? call_options.cancel->flag() : nullptr);
  context.check();
  if (image.empty() || image.rgb.size() != std::size_t(image.width) * image.height * 3) {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("image is empty or inconsistent ({}x{} with {} bytes)", image.width,
                            image.height, image.rgb.size()));
  }

  Verdict verdict;
  verdict.image_hash = "sha256:" + image.content_hash();
  verdict.image_width = image.width;
  verdict.image_height = image.height;
  verdict.constitution_name = constitution.name;
  verdict.constitution_version = constitution.version;
  verdict.constitution_hash = constitution.hash;
  verdict.vlm_model_id = models.vlm->model_id();
  if (models.relevance) verdict.relevance_model_id = models.relevance->model_id();
  if (models.locator) verdict.locator_model_id = models.locator->model_id();
  verdict.answer_tokens = answer_tokens;
  verdict.answer_spellings = answer_spellings_name(options.answers.spellings);
  verdict.notes = notes;

  // 1. Relevance scanning: skip rules the image is not about.
  verdict.rules.resize(rules.size());
  std::vector<bool> alive(rules.size(), true);
  {
    const auto stage_start = Clock::now();
    Embedding image_embedding;
    if (use_relevance) image_embedding = models.relevance->embed_image(image, context);
    for (std::size_t r = 0; r < rules.size(); ++r) {
      const Rule& rule = *rules[r].rule;
      RuleResult& result = verdict.rules[r];
      result.id = rule.id;
      result.category = rule.category;
      result.severity = rule.severity;
      result.judged = true;
      if (use_relevance) {
        double best = -1.0;
        for (const auto& text_embedding : rules[r].relevance_embeddings) {
          best = std::max(best, require_finite(cosine(image_embedding, text_embedding), models.relevance->model_id(),
                                               fmt::format("relevance for rule {}", rule.id)));
        }
        result.relevance = best;
        result.judged = best >= rule.thresholds.relevance;
      }
      alive[r] = result.judged;
    }
    verdict.timings.relevance_ms = elapsed_ms(stage_start);
  }

  // 2. Encode the image once, if any rule is left to judge.
  if (std::find(alive.begin(), alive.end(), true) == alive.end()) {
    verdict.notes.push_back("relevance scanning skipped every rule: no rule was judged");
  } else {
    context.check();
    auto stage_start = Clock::now();
    const std::shared_ptr<const ImageContext> image_context = models.vlm->prepare(image, context);
    verdict.timings.prepare_ms = elapsed_ms(stage_start);
    Call call{image, image_context.get(), context, verdict, {}, {}, {}, {}};

    // 3. Chain items in rounds: item k of every live rule in one batched call.
    //    Without early exit every item is asked anyway, so one call asks them
    //    all (a larger batch runs closer to GEMM speed).
    std::size_t longest_chain = 0;
    for (const auto& rule : rules) longest_chain = std::max(longest_chain, rule.items.size());
    std::map<std::string, double> scores;  // prompt -> M(x, c); a statement is asked once per image
    auto score_items = [&](std::size_t first, std::size_t last) {
      std::vector<Question> questions;
      for (std::size_t r = 0; r < rules.size(); ++r) {
        if (!alive[r]) continue;
        for (std::size_t k = first; k < std::min(last, rules[r].items.size()); ++k) {
          for (const auto& statement : rules[r].items[k].any_of) {
            if (scores.emplace(statement.prompt, 0.0).second) questions.push_back({statement.text, statement.prompt});
          }
        }
      }
      if (questions.empty()) return;
      context.check();
      const auto scoring_start = Clock::now();
      const std::vector<double> answers = models.vlm->score(image_context.get(), questions, options.answers, context);
      if (answers.size() != questions.size()) {
        throw Error(ErrorCode::Backend, fmt::format("backend returned {} scores for {} questions",
                                                    answers.size(), questions.size()));
      }
      for (std::size_t q = 0; q < questions.size(); ++q) {
        scores[questions[q].prompt] = require_finite(answers[q], models.vlm->model_id(),
                                                     fmt::format("score for \"{}\"", questions[q].statement));
      }
      verdict.questions_scored += static_cast<int>(questions.size());
      verdict.timings.scoring_ms += elapsed_ms(scoring_start);
    };
    // Items are evaluated up to cascaded reasoning, the uncertain ones of all
    // of them reasoned as one batch (reason_pending: decode is memory-bound,
    // so N conversations cost about one), then decided. With early exit a
    // round's outcomes decide which rules ask the next round, so each round
    // is one batch; without it every round is, together.
    for (std::size_t k = 0; k < longest_chain;) {
      bool any_item = false;
      for (std::size_t r = 0; r < rules.size(); ++r) any_item = any_item || (alive[r] && k < rules[r].items.size());
      if (!any_item) break;
      const std::size_t rounds_end = options.early_exit ? k + 1 : longest_chain;
      score_items(k, rounds_end);

      std::vector<PendingItem> pending;  // round-major, rules in order
      for (std::size_t round = k; round < rounds_end; ++round) {
        for (std::size_t r = 0; r < rules.size(); ++r) {
          if (!alive[r] || round >= rules[r].items.size()) continue;
          pending.push_back(begin_item(r, rules[r].items[round], scores, call));
        }
      }
      reason_pending(pending, call);
      for (PendingItem& p : pending) {
        const std::size_t r = p.rule;
        ItemResult item = finish_item(std::move(p), call);
        // Early exit: a rejected item settles the rule. An uncertain one
        // settles it only when uncertainty means "safe" and the score cannot
        // reach a threshold below 1; otherwise a later rejection still matters.
        const Thresholds& t = rules[r].rule->thresholds;
        const bool settled = item.outcome == ItemOutcome::Rejected ||
                             (item.outcome == ItemOutcome::Uncertain && t.uncertain == UncertainPolicy::Safe &&
                              t.score_threshold >= 1.0);
        verdict.rules[r].items.push_back(std::move(item));
        if (settled && options.early_exit) alive[r] = false;
      }
      k = rounds_end;
    }
    verdict.notes.insert(verdict.notes.end(), call.notes.begin(), call.notes.end());
  }

  // 4. A rule is violated iff every item of its chain was accepted.
  for (std::size_t r = 0; r < rules.size(); ++r) {
    RuleResult& result = verdict.rules[r];
    // Pad the items early exit skipped, so every rule reports its whole chain.
    while (result.judged && result.items.size() < rules[r].items.size()) {
      ItemResult skipped;
      for (const auto& statement : rules[r].items[result.items.size()].any_of) {
        StatementScore s;
        s.statement = statement.text;
        s.prior = statement.prior;
        s.score = std::numeric_limits<double>::quiet_NaN();
        skipped.statements.push_back(std::move(s));
      }
      result.items.push_back(std::move(skipped));
    }
    decide_rule(*rules[r].rule, result);
    if (result.violated) verdict.violated_rules.push_back(result.id);
    if (result.review) verdict.review_rules.push_back(result.id);
    auto category = std::find_if(verdict.category_scores.begin(), verdict.category_scores.end(),
                                 [&](const auto& entry) { return entry.first == result.category; });
    if (category == verdict.category_scores.end()) {
      verdict.category_scores.emplace_back(result.category, result.score);
    } else {
      category->second = std::max(category->second, result.score);
    }
  }
  verdict.decision = !verdict.violated_rules.empty() ? Decision::Unsafe
                     : !verdict.review_rules.empty() ? Decision::Review
                                                     : Decision::Safe;
  verdict.timings.total_ms = elapsed_ms(start);
  return verdict;
}

Judge::Impl::PendingItem Judge::Impl::begin_item(std::size_t rule_index, const Item& item,
                                                 const std::map<std::string, double>& scores, Call& call) const {
  const PreparedRule& rule = rules[rule_index];
  const Thresholds& t = rule.rule->thresholds;
  PendingItem pending;
  pending.rule = rule_index;
  pending.item = &item;
  ItemResult& result = pending.result;
  for (const auto& statement : item.any_of) {
    StatementScore s;
    s.statement = statement.text;
    s.score = scores.at(statement.prompt);
    s.prior = statement.prior;
    if (!use_debias) {
      s.outcome = s.score > 0.5 ? ItemOutcome::Accepted : ItemOutcome::Rejected;
      s.decided_by = Stage::Direct;
    } else {
      s.outcome = classify_against_prior(s.score, s.prior, t);
      s.decided_by = s.outcome == ItemOutcome::Uncertain ? Stage::Undecided : Stage::Prior;
    }
    result.statements.push_back(std::move(s));
  }
  const bool any_accepted = std::any_of(result.statements.begin(), result.statements.end(),
                                        [](const StatementScore& s) { return s.outcome == ItemOutcome::Accepted; });
  if (any_accepted || !use_debias) return pending;
  // Only uncertain alternatives can still be accepted; they are tried most
  // likely first. The region stage runs now, in that order, and stops at the
  // first alternative it accepts (no later one can decide then); those before
  // it that it left uncertain wait for reasoning, which may still accept one.
  for (std::size_t i = 0; i < result.statements.size(); ++i) {
    if (result.statements[i].outcome == ItemOutcome::Uncertain) pending.order.push_back(i);
  }
  std::stable_sort(pending.order.begin(), pending.order.end(), [&](std::size_t a, std::size_t b) {
    return result.statements[a].score > result.statements[b].score;
  });
  for (std::size_t i : pending.order) {
    const auto request = resolve_uncertain(rule, item, result.statements[i], item.any_of[i].prompt, call);
    if (request) pending.reasoning.emplace(i, *request);
    if (result.statements[i].outcome == ItemOutcome::Accepted) break;
  }
  return pending;
}

ItemResult Judge::Impl::finish_item(PendingItem pending, Call& call) const {
  ItemResult result = std::move(pending.result);
  for (const auto& [index, key] : pending.reasoning) {
    const auto found = call.reasoned.find(key);
    if (found == call.reasoned.end()) throw Error(ErrorCode::Internal, "a reasoning request was not run");
    StatementScore& statement = result.statements[index];
    statement.outcome = found->second.outcome;
    statement.decided_by = found->second.decided_by;
    statement.rationale = found->second.rationale;
  }

  // OR item: the alternative with the highest score among those accepted
  // before any later stage decides; otherwise the first of the tried order
  // that a later stage accepted.
  int accepted = -1;
  for (std::size_t i = 0; i < result.statements.size(); ++i) {
    const auto& s = result.statements[i];
    const bool tried = std::find(pending.order.begin(), pending.order.end(), i) != pending.order.end();
    if (!tried && s.outcome == ItemOutcome::Accepted && (accepted < 0 || s.score > result.statements[accepted].score)) {
      accepted = static_cast<int>(i);
    }
  }
  if (accepted < 0) {
    for (std::size_t i : pending.order) {
      if (result.statements[i].outcome == ItemOutcome::Accepted) {
        accepted = static_cast<int>(i);
        break;
      }
    }
  }

  if (accepted >= 0) {
    result.outcome = ItemOutcome::Accepted;
    result.deciding_statement = accepted;
    result.decided_by = result.statements[accepted].decided_by;
    return result;
  }
  const bool all_rejected = std::all_of(result.statements.begin(), result.statements.end(),
                                        [](const StatementScore& s) { return s.outcome == ItemOutcome::Rejected; });
  result.outcome = all_rejected ? ItemOutcome::Rejected : ItemOutcome::Uncertain;
  result.decided_by = Stage::Undecided;
  if (all_rejected) {
    // The latest stage that took part names the decision (reasoning outranks the prior).
    Stage latest = Stage::Prior;
    for (const auto& s : result.statements) latest = std::max(latest, s.decided_by);
    result.decided_by = latest;
  }
  return result;
}

// Strategy 2 for one uncertain alternative; returns its reasoning request
// when the region stage leaves it uncertain and the cascade applies.
std::optional<Judge::Impl::ReasoningKey> Judge::Impl::resolve_uncertain(const PreparedRule& rule, const Item& item,
                                                                        StatementScore& statement,
                                                                        const std::string& prompt, Call& call) const {
  const Thresholds& t = rule.rule->thresholds;
  const ImageContext* reasoning_context = call.image_context;

  // Strategy 2: does the score depend on the central object? (needs a locator)
  if (use_locator && !item.object_queries.empty()) {
    const auto stage_start = Clock::now();
    call.context.check();
    if (!call.locator_image) call.locator_image = models.locator->prepare(call.image, call.context);
    const auto found = models.locator->locate(*call.locator_image, *locator_queries, item.object_queries,
                                              t.locator_confidence, call.context);
    call.verdict.timings.locate_ms += elapsed_ms(stage_start);
    if (found.size() != item.object_queries.size()) {
      throw Error(ErrorCode::Backend, fmt::format("{} returned {} detection lists for {} phrases",
                                                  models.locator->model_id(), found.size(), item.object_queries.size()));
    }
    if (const auto chosen = core::choose_region(found, call.image, t)) {
      const std::vector<Question> question{{statement.statement, prompt}};
      RegionEvidence evidence{locator_phrases[item.object_queries[chosen->query]], chosen->detection.box,
                              chosen->detection.confidence, chosen->area_fraction, false, 0};
      const Box& box = chosen->detection.box;
      if (chosen->crop) {
        // A tiny object: judge its crop instead of the whole image (the paper's 1% rule).
        const Image crop = crop_region(call.image, box);
        const auto crop_context = models.vlm->prepare(crop, call.context);
        call.crop_contexts.push_back(crop_context);  // its reasoning runs later, in the image's batch
        const double crop_score =
            require_finite(models.vlm->score(crop_context.get(), question, options.answers, call.context).at(0),
                           models.vlm->model_id(), "score of the region's crop");
        call.verdict.questions_scored += 1;
        statement.crop_score = crop_score;
        evidence.cropped = true;
        evidence.score = crop_score;
        statement.region = evidence;
        const ItemOutcome outcome = classify_against_prior(crop_score, statement.prior, t);
        reasoning_context = crop_context.get();
        if (outcome != ItemOutcome::Uncertain) {
          statement.outcome = outcome;
          statement.decided_by = Stage::Region;
          call.verdict.timings.region_ms += elapsed_ms(stage_start);
          return std::nullopt;
        }
      } else {
        const Image erased = erase_region(call.image, box);
        const auto erased_context = models.vlm->prepare(erased, call.context);
        const double region_score =
            require_finite(models.vlm->score(erased_context.get(), question, options.answers, call.context).at(0),
                           models.vlm->model_id(), "score without the region");
        call.verdict.questions_scored += 1;
        statement.region_score = region_score;
        evidence.score = region_score;
        statement.region = evidence;
        // Strategy 2 can only accept: the object, not the rest of the image, carries the answer.
        if (statement.score - region_score > t.region_delta) {
          statement.outcome = ItemOutcome::Accepted;
          statement.decided_by = Stage::Region;
          call.verdict.timings.region_ms += elapsed_ms(stage_start);
          return std::nullopt;
        }
      }
    } else {
      call.notes.insert("strategy 2 found no central object above the confidence threshold for some items");
    }
    call.verdict.timings.region_ms += elapsed_ms(stage_start);
  } else if (use_locator) {
    call.notes.insert("strategy 2 skipped for items without central object words");
  }

  if (use_cascade && t.cascade) {
    return ReasoningKey{reasoning_context, render_question(rule.rule->questions.reason, statement.statement),
                        render_question(rule.rule->questions.reason_json, statement.statement)};
  }
  if (use_cascade) {
    // Switched off for the whole Judge, the constructor's note says so already.
    call.notes.insert(
        "cascaded reasoning off for some rules (cascade = false): their uncertain items stay uncertain "
        "(the rule's uncertain policy applies)");
  }
  return std::nullopt;
}

// Runs every reasoning request of `items` not yet reasoned for this image,
// each distinct conversation once: per image context (the image, or a
// region's crop), turn 1 (thinking) for all of them as one generate_batch,
// then turn 2 (the JSON answer, stopping at the object's end) likewise.
void Judge::Impl::reason_pending(const std::vector<PendingItem>& items, Call& call) const {
  std::vector<const ReasoningKey*> todo;  // first-request order
  std::set<ReasoningKey> queued;
  for (const PendingItem& item : items) {
    for (const auto& [index, key] : item.reasoning) {
      if (call.reasoned.count(key) == 0 && queued.insert(key).second) todo.push_back(&key);
    }
  }
  if (todo.empty()) return;
  const auto stage_start = Clock::now();
  GenerateLimits answer_limits = options.reasoning_limits;
  answer_limits.stop_after_json_object = true;
  std::vector<const ImageContext*> contexts;
  for (const ReasoningKey* key : todo) {
    if (std::find(contexts.begin(), contexts.end(), std::get<0>(*key)) == contexts.end()) {
      contexts.push_back(std::get<0>(*key));
    }
  }
  auto checked_batch = [&](const ImageContext* context, const std::vector<std::vector<ChatTurn>>& conversations,
                           const GenerateLimits& limits) {
    call.context.check();
    std::vector<std::string> texts = models.vlm->generate_batch(context, conversations, limits, call.context);
    if (texts.size() != conversations.size()) {
      throw Error(ErrorCode::Backend, fmt::format("{} returned {} texts for {} reasoning conversations",
                                                  models.vlm->model_id(), texts.size(), conversations.size()));
    }
    return texts;
  };
  for (const ImageContext* context : contexts) {
    std::vector<const ReasoningKey*> batch;
    for (const ReasoningKey* key : todo) {
      if (std::get<0>(*key) == context) batch.push_back(key);
    }
    std::vector<std::vector<ChatTurn>> conversations;
    for (const ReasoningKey* key : batch) conversations.push_back({{ChatTurn::Role::User, std::get<1>(*key)}});
    const std::vector<std::string> thinking = checked_batch(context, conversations, options.reasoning_limits);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      conversations[i].push_back({ChatTurn::Role::Assistant, thinking[i]});
      conversations[i].push_back({ChatTurn::Role::User, std::get<2>(*batch[i])});
    }
    const std::vector<std::string> answers = checked_batch(context, conversations, answer_limits);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Call::Reasoned reasoned;
      if (auto parsed = core::parse_reasoning_answer(answers[i])) {
        reasoned.outcome = parsed->yes ? ItemOutcome::Accepted : ItemOutcome::Rejected;
        reasoned.decided_by = Stage::Reasoning;
        reasoned.rationale = parsed->rationale.empty() ? thinking[i] : parsed->rationale;
      } else {
        // Unusable answer: stay uncertain (the item does not count as holding) and keep the evidence.
        reasoned.outcome = ItemOutcome::Uncertain;
        reasoned.decided_by = Stage::Undecided;
        reasoned.rationale = "unusable reasoning answer: " + answers[i].substr(0, 300);
      }
      call.reasoned.emplace(*batch[i], std::move(reasoned));
    }
    call.verdict.reasoning_calls += static_cast<int>(batch.size());
  }
  call.verdict.timings.reasoning_ms += elapsed_ms(stage_start);
}

}  // namespace imgjudge
