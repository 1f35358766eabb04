#include "backends/scripted/scripted_backend.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/sha256.hpp"
#include "util/toml_reader.hpp"

namespace imgjudge::backends::scripted {
namespace {

// Relevance embeddings: one axis per scripted image (plus one for "any other
// image"), and a private axis per text drawn from a hashed pool. An image is a
// unit vector on its axis; a text carries its scripted cosine on each image
// axis and the remainder on its private axis, so cos(image, text) is exactly
// the scripted value.
constexpr std::size_t kPrivateAxes = 1024;

struct ScriptedObject {
  std::string phrase;
  Box box;
  float confidence = 0;
  std::map<std::string, double> scores;  // statement -> M(x without the object | its crop, c)
  std::string erased_hash, crop_hash;
};

struct ScriptedImage {
  std::string name;
  std::string hash;  // Image::content_hash()
  std::map<std::string, double> relevance;
  std::map<std::string, double> scores;
  std::map<std::string, std::string> reasoning;
  std::vector<ScriptedObject> objects;
};

struct Script {
  std::string source;
  double default_score = 0.5;
  double default_prior = 0.5;
  double default_relevance = 0.3;
  std::string default_thinking = "Looking at the image step by step.";
  std::string default_reasoning = R"({"rating": "No", "rationale": "scripted default answer"})";
  /// How long encoding an image takes (docs/scripted-backend.md): lets tests of
  /// deadlines, cancellation and admission control have calls of a known length.
  std::chrono::milliseconds encode_delay{0};
  /// How long loading the models takes (docs/scripted-backend.md).
  std::chrono::milliseconds load_delay{0};
  /// Simulated time every model call takes (prepare, score, generate, embed, locate; image
  /// encodings add encode_delay), so that deadlines, cancellation and a worker killed
  /// mid-job can be tested without weights.
  std::chrono::milliseconds latency{0};
  std::map<std::string, double> priors;
  std::vector<ScriptedImage> images;
};

// The largest delay: a typo must not make every call hang for hours.
constexpr std::int64_t kMaxDelayMs = 600000;

// Waits `delay` as a model call would, checking the call's deadline and
// cancellation every few milliseconds as the torch backend checks them between layers.
void simulate_delay(std::chrono::milliseconds delay, const CallContext& call) {
  using Clock = std::chrono::steady_clock;
  const auto until = Clock::now() + delay;
  for (auto now = Clock::now(); now < until; now = Clock::now()) {
    call.check();
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, std::chrono::milliseconds(5)));
  }
  call.check();
}

class ScriptReader : public util::TomlReader {
 public:
  explicit ScriptReader(std::string source) : TomlReader(std::move(source), ErrorCode::InvalidArgument) {}
  double probability(const toml::node& node, const std::string& what, double min = 0.0) const {
    std::optional<double> value = node.value<double>();
    if (!value || !std::isfinite(*value) || *value < min || *value > 1.0) {
      fail(node.source(), fmt::format("{} must be a number in [{}, 1]", what, min));
    }
    return *value;
  }
  std::chrono::milliseconds delay(const toml::node& node, const std::string& what) const {
    const std::optional<std::int64_t> ms = node.value<std::int64_t>();
    if (!node.is_integer() || !ms || *ms < 0 || *ms > kMaxDelayMs) {
      fail(node.source(), fmt::format("{} must be an integer in [0, {}]", what, kMaxDelayMs));
    }
    return std::chrono::milliseconds(*ms);
  }
  std::string text(const toml::node& node, const std::string& what) const {
    const auto* value = node.as_string();
    if (!value) fail(node.source(), fmt::format("{} must be a string", what));
    return value->get();
  }
  std::map<std::string, double> probability_table(const toml::node& node, const std::string& what,
                                                  double min = 0.0) const {
    const auto* table = node.as_table();
    if (!table) fail(node.source(), fmt::format("{} must be a table of \"text\" = number", what));
    std::map<std::string, double> out;
    for (auto&& [key, value] : *table) {
      out[std::string(key.str())] = probability(value, fmt::format("{}.\"{}\"", what, key.str()), min);
    }
    return out;
  }
  std::map<std::string, std::string> text_table(const toml::node& node, const std::string& what) const {
    const auto* table = node.as_table();
    if (!table) fail(node.source(), fmt::format("{} must be a table of \"text\" = \"text\"", what));
    std::map<std::string, std::string> out;
    for (auto&& [key, value] : *table) {
      out[std::string(key.str())] = text(value, fmt::format("{}.\"{}\"", what, key.str()));
    }
    return out;
  }
};

Script parse_script(const std::string& toml_text, const std::string& source, const std::string& base_dir) {
  ScriptReader reader(source);
  const toml::table root = reader.parse(toml_text);
  reader.check_keys(root, {"defaults", "priors", "images"}, "the scripted backend's script");
  Script script;
  script.source = source;
  if (const auto* node = root.get("defaults")) {
    const auto* table = node->as_table();
    if (!table) reader.fail(node->source(), "defaults must be a table");
    reader.check_keys(*table, {"score", "prior", "relevance", "thinking", "reasoning", "encode_delay_ms", "load_delay_ms", "latency_ms"}, "defaults");
    if (const auto* v = table->get("latency_ms")) script.latency = reader.delay(*v, "defaults.latency_ms");
    if (const auto* v = table->get("score")) script.default_score = reader.probability(*v, "defaults.score");
    if (const auto* v = table->get("prior")) script.default_prior = reader.probability(*v, "defaults.prior");
    if (const auto* v = table->get("relevance")) script.default_relevance = reader.probability(*v, "defaults.relevance", -1.0);
    if (const auto* v = table->get("thinking")) script.default_thinking = reader.text(*v, "defaults.thinking");
    if (const auto* v = table->get("reasoning")) script.default_reasoning = reader.text(*v, "defaults.reasoning");
    if (const auto* v = table->get("encode_delay_ms")) script.encode_delay = reader.delay(*v, "defaults.encode_delay_ms");
    if (const auto* v = table->get("load_delay_ms")) script.load_delay = reader.delay(*v, "defaults.load_delay_ms");
  }
  if (const auto* node = root.get("priors")) script.priors = reader.probability_table(*node, "priors");
  if (const auto* node = root.get("images")) {
    const auto* images = node->as_array();
    if (!images) reader.fail(node->source(), "images must be an array of tables ([[images]])");
    for (std::size_t i = 0; i < images->size(); ++i) {
      const std::string what = fmt::format("images[{}]", i);
      const auto* table = images->get(i)->as_table();
      if (!table) reader.fail(images->get(i)->source(), what + " must be a table");
      reader.check_keys(*table, {"name", "file", "relevance", "scores", "reasoning", "objects"}, what);
      ScriptedImage image;
      const auto* file = table->get("file");
      if (!file) reader.fail(table->source(), what + " needs a 'file' (relative to the script)");
      const std::string file_name = reader.text(*file, what + ".file");
      const std::string path = file_name.rfind('/', 0) == 0 ? file_name : util::join_path(base_dir, file_name);
      const Image pixels = load_image_file(path);
      image.hash = pixels.content_hash();
      image.name = file_name;
      if (const auto* v = table->get("name")) image.name = reader.text(*v, what + ".name");
      if (const auto* v = table->get("relevance")) image.relevance = reader.probability_table(*v, what + ".relevance", -1.0);
      if (const auto* v = table->get("scores")) image.scores = reader.probability_table(*v, what + ".scores");
      if (const auto* v = table->get("reasoning")) image.reasoning = reader.text_table(*v, what + ".reasoning");
      if (const auto* v = table->get("objects")) {
        const auto* objects = v->as_array();
        if (!objects) reader.fail(v->source(), what + ".objects must be an array of tables");
        for (std::size_t o = 0; o < objects->size(); ++o) {
          const std::string object_what = fmt::format("{}.objects[{}]", what, o);
          const auto* object_table = objects->get(o)->as_table();
          if (!object_table) reader.fail(objects->get(o)->source(), object_what + " must be a table");
          reader.check_keys(*object_table, {"phrase", "box", "confidence", "scores"}, object_what);
          ScriptedObject object;
          const auto* phrase = object_table->get("phrase");
          const auto* box = object_table->get("box");
          if (!phrase || !box) reader.fail(object_table->source(), object_what + " needs 'phrase' and 'box'");
          object.phrase = reader.text(*phrase, object_what + ".phrase");
          const auto* corners = box->as_array();
          if (!corners || corners->size() != 4) {
            reader.fail(box->source(), object_what + ".box must be [x0, y0, x1, y1] in pixels");
          }
          float c[4];
          for (int k = 0; k < 4; ++k) {
            auto value = corners->get(k)->value<double>();
            if (!value) reader.fail(box->source(), object_what + ".box must hold numbers");
            c[k] = static_cast<float>(*value);
          }
          object.box = Box{c[0], c[1], c[2], c[3]};
          if (!(object.box.x1 > object.box.x0 && object.box.y1 > object.box.y0)) {
            reader.fail(box->source(), object_what + ".box must have x1 > x0 and y1 > y0");
          }
          object.confidence = 1.0f;
          if (const auto* conf = object_table->get("confidence")) {
            object.confidence = static_cast<float>(reader.probability(*conf, object_what + ".confidence"));
          }
          if (const auto* scores = object_table->get("scores")) {
            object.scores = reader.probability_table(*scores, object_what + ".scores");
          }
          // The Judge removes or crops the object with the library's own helpers;
          // recognising their exact result checks that it did.
          object.erased_hash = erase_region(pixels, object.box).content_hash();
          object.crop_hash = crop_region(pixels, object.box).content_hash();
          image.objects.push_back(std::move(object));
        }
      }
      script.images.push_back(std::move(image));
    }
  }
  return script;
}

// Spends the script's latency as a model call would, checking the call's deadline and
// cancel token every few milliseconds (as the torch backend does between model steps).
// What prepare() recognised: a scripted image, one with an object removed, or its crop.
class ScriptedContext : public ImageContext {
 public:
  const ScriptedImage* image = nullptr;    // null: an image the script does not know
  const ScriptedObject* object = nullptr;  // set for an erased or cropped variant
};

class ScriptedVlm : public VisionLanguageModel {
 public:
  explicit ScriptedVlm(std::shared_ptr<const Script> script) : script_(std::move(script)) {}
  std::string model_id() const override { return "scripted:" + script_->source; }
  Capabilities capabilities() const override { return {true, true}; }

  std::shared_ptr<const ImageContext> prepare(const Image& image, const CallContext& call) const override {
    simulate_delay(script_->latency + script_->encode_delay, call);
    auto context = std::make_shared<ScriptedContext>();
    const std::string hash = image.content_hash();
    for (const auto& scripted : script_->images) {
      if (scripted.hash == hash) {
        context->image = &scripted;
        return context;
      }
      for (const auto& object : scripted.objects) {
        if (object.erased_hash == hash || object.crop_hash == hash) {
          context->image = &scripted;
          context->object = &object;
          return context;
        }
      }
    }
    return context;
  }

  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords&, const CallContext& call) const override {
    simulate_delay(script_->latency, call);
    const auto* context = dynamic_cast<const ScriptedContext*>(image);
    if (image && !context) throw Error(ErrorCode::InvalidArgument, "scripted backend: foreign ImageContext");
    std::vector<double> out;
    for (const auto& question : questions) out.push_back(answer(context, question.statement));
    return out;
  }

  std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns,
                       const GenerateLimits&, const CallContext& call) const override {
    simulate_delay(script_->latency, call);
    const auto* context = dynamic_cast<const ScriptedContext*>(image);
    std::size_t user_turns = 0;
    for (const auto& turn : turns) user_turns += turn.role == ChatTurn::Role::User;
    if (user_turns < 2) return script_->default_thinking;
    // Turn 2: the scripted answer whose statement the first question contains (longest wins).
    const std::string& first_question = turns.front().text;
    const std::string* best = nullptr;
    std::size_t best_length = 0;
    if (context && context->image) {
      for (const auto& [statement, answer_text] : context->image->reasoning) {
        if (statement.size() > best_length && first_question.find(statement) != std::string::npos) {
          best = &answer_text;
          best_length = statement.size();
        }
      }
    }
    return best ? *best : script_->default_reasoning;
  }

  std::string describe_answer_tokens(const AnswerWords& answers) const override {
    return fmt::format("scripted (words '{}'/'{}')", answers.yes, answers.no);
  }

 private:
  double answer(const ScriptedContext* context, const std::string& statement) const {
    if (!context) {
      auto it = script_->priors.find(statement);
      return it == script_->priors.end() ? script_->default_prior : it->second;
    }
    if (!context->image) return script_->default_score;
    if (context->object) {
      auto it = context->object->scores.find(statement);
      if (it != context->object->scores.end()) return it->second;
    }
    auto it = context->image->scores.find(statement);
    return it == context->image->scores.end() ? script_->default_score : it->second;
  }

  std::shared_ptr<const Script> script_;
};

class ScriptedRelevance : public RelevanceModel {
 public:
  explicit ScriptedRelevance(std::shared_ptr<const Script> script) : script_(std::move(script)) {}
  std::string model_id() const override { return "scripted:" + script_->source; }

  std::vector<Embedding> embed_texts(const std::vector<std::string>& texts, const CallContext& call) const override {
    simulate_delay(script_->latency, call);
    const std::size_t image_axes = script_->images.size() + 1;
    std::vector<Embedding> out;
    for (const auto& text : texts) {
      Embedding e(image_axes + kPrivateAxes, 0.f);
      double squared = 0;
      for (std::size_t i = 0; i <= script_->images.size(); ++i) {
        double value = script_->default_relevance;
        if (i < script_->images.size()) {
          auto it = script_->images[i].relevance.find(text);
          if (it != script_->images[i].relevance.end()) value = it->second;
        }
        e[i] = static_cast<float>(value);
        squared += value * value;
      }
      if (squared > 1.0 + 1e-9) {
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: the relevance values of \"{}\" over all scripted images have a "
                                "squared sum of {:.3f} > 1, which no unit embedding can represent; "
                                "script fewer or smaller values", script_->source, text, squared));
      }
      const std::size_t private_axis = image_axes + std::hash<std::string>{}(text) % kPrivateAxes;
      e[private_axis] = static_cast<float>(std::sqrt(std::max(0.0, 1.0 - squared)));
      out.push_back(std::move(e));
    }
    return out;
  }

  Embedding embed_image(const Image& image, const CallContext& call) const override {
    simulate_delay(script_->latency + script_->encode_delay, call);
    const std::size_t image_axes = script_->images.size() + 1;
    Embedding e(image_axes + kPrivateAxes, 0.f);
    const std::string hash = image.content_hash();
    std::size_t axis = script_->images.size();  // "any other image"
    for (std::size_t i = 0; i < script_->images.size(); ++i) {
      if (script_->images[i].hash == hash) axis = i;
    }
    e[axis] = 1.f;
    return e;
  }

 private:
  std::shared_ptr<const Script> script_;
};

// The script's boxes for each phrase of the image (by content hash).
class ScriptedLocator : public Locator {
 public:
  explicit ScriptedLocator(std::shared_ptr<const Script> script) : script_(std::move(script)) {}
  std::string model_id() const override { return "scripted:" + script_->source; }

  std::shared_ptr<const LocatorQueries> embed_queries(const std::vector<std::string>& phrases,
                                                      const CallContext& call) const override {
    simulate_delay(script_->latency, call);
    return std::make_shared<const Phrases>(phrases);
  }

  std::shared_ptr<const LocatorImage> prepare(const Image& image, const CallContext& call) const override {
    simulate_delay(script_->latency + script_->encode_delay, call);
    auto prepared = std::make_shared<Prepared>();
    prepared->hash = image.content_hash();
    ++prepares;
    return prepared;
  }

  std::vector<std::vector<Detection>> locate(const LocatorImage& image, const LocatorQueries& queries,
                                             const std::vector<std::size_t>& which, double min_confidence,
                                             const CallContext& call) const override {
    simulate_delay(script_->latency, call);
    const auto* prepared = dynamic_cast<const Prepared*>(&image);
    const auto* phrases = dynamic_cast<const Phrases*>(&queries);
    if (prepared == nullptr || phrases == nullptr) {
      throw Error(ErrorCode::InvalidArgument, "scripted locator: image or queries prepared by another locator");
    }
    std::vector<std::vector<Detection>> out;
    for (const std::size_t index : which) {
      if (index >= phrases->phrases.size()) throw Error(ErrorCode::InvalidArgument, "scripted locator: no such query");
      std::vector<Detection> found;
      for (const auto& scripted : script_->images) {
        if (scripted.hash != prepared->hash) continue;
        for (const auto& object : scripted.objects) {
          if (object.phrase == phrases->phrases[index] && object.confidence > min_confidence) {
            found.push_back({object.box, object.confidence});
          }
        }
      }
      std::stable_sort(found.begin(), found.end(),
                       [](const Detection& a, const Detection& b) { return a.confidence > b.confidence; });
      out.push_back(std::move(found));
    }
    return out;
  }

  mutable std::atomic<int> prepares{0};  ///< For tests: how often an image was encoded.

 private:
  struct Phrases final : LocatorQueries {
    explicit Phrases(std::vector<std::string> p) : phrases(std::move(p)) {}
    std::size_t size() const override { return phrases.size(); }
    std::vector<std::string> phrases;
  };
  struct Prepared final : LocatorImage {
    std::string hash;
  };
  std::shared_ptr<const Script> script_;
};

}  // namespace

Models load_models_from_string(const std::string& toml_text, const std::string& source_name,
                               const std::string& base_dir) {
  auto script = std::make_shared<const Script>(parse_script(toml_text, source_name, base_dir));
  std::this_thread::sleep_for(script->load_delay);
  Models models;
  models.vlm = std::make_shared<ScriptedVlm>(script);
  models.relevance = std::make_shared<ScriptedRelevance>(script);
  models.locator = std::make_shared<ScriptedLocator>(script);
  return models;
}

Models load_models(const std::string& path) {
  if (path.empty()) {
    throw Error(ErrorCode::InvalidArgument, "scripted backend: no script given (--script FILE)");
  }
  const std::string text = util::read_file_text(path, 16u << 20);
  const auto slash = path.find_last_of('/');
  const std::string base_dir = slash == std::string::npos ? "." : path.substr(0, slash);
  return load_models_from_string(text, path, base_dir);
}

}  // namespace imgjudge::backends::scripted
