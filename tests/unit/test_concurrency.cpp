// One Judge shared by many threads: the same verdicts as sequential calls, and
// calls cancelled or timed out in the middle of their work leave it usable.
// Runs over the scripted backend (deterministic, torch-free); scripts/sanitize.sh
// also runs these tests under ThreadSanitizer.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/scripted/scripted_backend.hpp"
#include "imgjudge/judge.hpp"

using namespace imgjudge;

namespace {

constexpr int kThreads = 8;
constexpr int kImages = 24;
constexpr int kRounds = 3;

// Distinct pictures (each its own content hash) with a darker square for the locator.
Image make_picture(int index) {
  Image image;
  image.width = 40 + index % 5;
  image.height = 30 + index % 3;
  image.rgb.resize(std::size_t(image.width) * image.height * 3);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      std::uint8_t* p = &image.rgb[(std::size_t(y) * image.width + x) * 3];
      const bool square = x >= 8 && x < 20 && y >= 8 && y < 20;
      p[0] = static_cast<std::uint8_t>(square ? index * 5 : 200 - index);
      p[1] = static_cast<std::uint8_t>(x * 3 + index);
      p[2] = static_cast<std::uint8_t>(y * 5);
    }
  }
  return image;
}

const char* kConstitution = R"(
schema_version = 1
name = "concurrency-test"
version = "1"

[[rules]]
id = "gore"
category = "violence"
text = "No gore."
objective_text = "The image shows a bloody injury."
chain = [
  { any_of = ["A person is visible.", "An animal is visible."] },
  { any_of = ["Blood is visible."], objects = ["blood"] },
]

[[rules]]
id = "weapon"
category = "weapons"
text = "No weapons."
objective_text = "The image shows a gun."
chain = [ { any_of = ["A gun is visible."], objects = ["gun"] } ]
)";

/// A script giving every few images a different path through the method:
/// prior-decided accept/reject, strategy 2 with a located object, cascaded
/// reasoning (Yes and No), and images it does not know at all.
std::string write_script(const std::string& dir) {
  // relevance 0.23 passes the 0.22 threshold, and 16 scripted images x 0.23^2
  // stays under 1, as the scripted relevance embeddings need.
  std::string script = "[defaults]\nprior = 0.5\nscore = 0.5\nrelevance = 0.23\n";
  for (int i = 0; i < kImages; ++i) {
    const std::string file = "img" + std::to_string(i) + ".png";
    const auto png = encode_png(make_picture(i));
    std::ofstream(dir + "/" + file, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
    switch (i % 6) {
      case 0:  // violates gore on the priors alone
        script += "[[images]]\nfile = \"" + file + "\"\nscores = { \"A person is visible.\" = 0.97, \"Blood is visible.\" = 0.98 }\n";
        break;
      case 1:  // strategy 2: removing the gun drops the score
        script += "[[images]]\nfile = \"" + file + "\"\nscores = { \"A gun is visible.\" = 0.8 }\n"
                  "[[images.objects]]\nphrase = \"gun\"\nbox = [8, 8, 20, 20]\nconfidence = 0.9\n"
                  "scores = { \"A gun is visible.\" = 0.05 }\n";
        break;
      case 2:  // uncertain, reasoning says yes
        script += "[[images]]\nfile = \"" + file + "\"\nscores = { \"A gun is visible.\" = 0.7 }\n"
                  "reasoning = { \"A gun is visible.\" = '{\"rating\": \"Yes\", \"rationale\": \"a pistol\"}' }\n";
        break;
      case 3:  // rejected early
        script += "[[images]]\nfile = \"" + file + "\"\nscores = { \"A person is visible.\" = 0.01, \"An animal is visible.\" = 0.02 }\n";
        break;
      default:  // unknown to the script: defaults everywhere
        break;
    }
  }
  const std::string path = dir + "/script.toml";
  std::ofstream(path) << script;
  return path;
}

/// How the wrapper below interrupts the call running on this thread.
enum class Interrupt { None, CancelWhileScoring, DeadlineWhileScoring };
thread_local Interrupt t_interrupt = Interrupt::None;
thread_local CancellationToken* t_token = nullptr;

/// Forwards to the scripted model; on demand it interrupts the call in the
/// middle of its work (after prepare(), inside the first image score()), the
/// way a real backend is interrupted between layers.
class InterruptingVlm : public VisionLanguageModel {
 public:
  explicit InterruptingVlm(std::shared_ptr<const VisionLanguageModel> inner) : inner_(std::move(inner)) {}
  std::string model_id() const override { return inner_->model_id(); }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  std::shared_ptr<const ImageContext> prepare(const Image& image, const CallContext& call) const override {
    return inner_->prepare(image, call);
  }
  std::vector<double> score(const ImageContext* image, const std::vector<Question>& questions,
                            const AnswerWords& answers, const CallContext& call) const override {
    if (image != nullptr && t_interrupt == Interrupt::CancelWhileScoring) t_token->cancel();
    if (image != nullptr && t_interrupt == Interrupt::DeadlineWhileScoring) {
      // Work "until" the deadline passes; it is a few ms away, so this ends.
      while (!call.should_stop()) std::this_thread::yield();
    }
    return inner_->score(image, questions, answers, call);  // its call.check() throws
  }
  std::string generate(const ImageContext* image, const std::vector<ChatTurn>& turns,
                       const GenerateLimits& limits, const CallContext& call) const override {
    return inner_->generate(image, turns, limits, call);
  }
  std::string describe_answer_tokens(const AnswerWords& answers) const override {
    return inner_->describe_answer_tokens(answers);
  }

 private:
  std::shared_ptr<const VisionLanguageModel> inner_;
};

struct Fixture {
  std::string dir;
  Fixture() {
    char pattern[] = "/tmp/imgjudge-concurrency-XXXXXX";
    dir = mkdtemp(pattern);
  }
  ~Fixture() { std::system(("rm -rf '" + dir + "'").c_str()); }
  Judge make_judge() const {
    Models models = backends::scripted::load_models(write_script(dir));
    models.vlm = std::make_shared<InterruptingVlm>(models.vlm);
    return Judge(Constitution::from_string(kConstitution), models);
  }
};

std::string stable_json(Verdict verdict) {
  verdict.timings = {};
  return verdict.to_json();
}

}  // namespace

TEST_CASE("8 threads judging many images get exactly the sequential verdicts", "[unit][concurrency]") {
  Fixture fixture;
  const Judge judge = fixture.make_judge();
  std::vector<Image> images;
  std::vector<std::vector<std::uint8_t>> encoded;
  std::vector<std::string> expected;
  int unsafe = 0;
  for (int i = 0; i < kImages; ++i) {
    images.push_back(make_picture(i));
    encoded.push_back(encode_png(images.back()));
    const Verdict verdict = judge.judge(images.back());
    unsafe += verdict.unsafe();
    expected.push_back(stable_json(verdict));
  }
  // The script must lead to both outcomes, or the comparison proves little.
  REQUIRE(unsafe > 0);
  REQUIRE(unsafe < kImages);

  std::atomic<int> done{0}, mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        for (int k = 0; k < kImages; ++k) {
          const int i = (k * 7 + t * 5 + round) % kImages;  // every thread in its own order
          try {
            // Half the calls decode PNG bytes, so decoding runs concurrently too.
            const Verdict verdict = (k + t) % 2 == 0 ? judge.judge(images[i])
                                                     : judge.judge_bytes(encoded[i].data(), encoded[i].size());
            if (stable_json(verdict) != expected[i]) mismatches++;
          } catch (const Error&) {
            errors++;
          }
          done++;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(done == kThreads * kRounds * kImages);  // nothing lost
  CHECK(errors == 0);
  CHECK(mismatches == 0);
}

TEST_CASE("calls cancelled or past their deadline mid-run leave a shared Judge usable", "[unit][concurrency]") {
  Fixture fixture;
  const Judge judge = fixture.make_judge();
  std::vector<Image> images;
  std::vector<std::string> expected;
  for (int i = 0; i < kImages; ++i) {
    images.push_back(make_picture(i));
    expected.push_back(stable_json(judge.judge(images.back())));
  }

  std::atomic<int> completed{0}, cancelled{0}, timed_out{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kImages * kRounds; ++k) {
        const int i = (k + t * 3) % kImages;
        CallOptions call;
        CancellationToken token;
        const int kind = (k + t) % 3;  // a third each: normal, cancelled, deadline
        t_interrupt = kind == 0 ? Interrupt::None
                      : kind == 1 ? Interrupt::CancelWhileScoring
                                  : Interrupt::DeadlineWhileScoring;
        if (kind == 1) {
          call.cancel = token;
          t_token = &token;
        }
        if (kind == 2) call = CallOptions::with_timeout(std::chrono::milliseconds(2));
        try {
          const Verdict verdict = judge.judge(images[i], call);
          if (kind == 0 && stable_json(verdict) == expected[i]) completed++;
          else wrong++;
        } catch (const Error& e) {
          if (kind == 1 && e.code() == ErrorCode::Cancelled) cancelled++;
          else if (kind == 2 && e.code() == ErrorCode::DeadlineExceeded) timed_out++;
          else wrong++;
        }
        t_interrupt = Interrupt::None;
        t_token = nullptr;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const int calls = kThreads * kImages * kRounds;
  CHECK(wrong == 0);
  CHECK(completed + cancelled + timed_out == calls);  // every call accounted for
  CHECK(completed == calls / 3);
  CHECK(cancelled == calls / 3);
  CHECK(timed_out == calls / 3);
  // Afterwards the Judge still gives the sequential verdicts.
  for (int i = 0; i < kImages; ++i) CHECK(stable_json(judge.judge(images[i])) == expected[i]);
}
