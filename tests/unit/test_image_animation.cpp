// Animated GIF and WebP: which frames are judged, how each is composited, and
// that the Judge reports the worst of them (an animation cannot hide content
// after its first frame).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/scripted/scripted_backend.hpp"
#include "image_test_encoders.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/image.hpp"
#include "imgjudge/judge.hpp"

using namespace imgjudge;
using Catch::Matchers::Contains;

namespace {

const std::vector<GifColorType> kPalette = {{0, 0, 0}, {255, 0, 0}, {0, 0, 255}, {0, 255, 0}};

test::GifAnimationFrame solid(int left, int top, int width, int height, std::uint8_t index, int disposal) {
  test::GifAnimationFrame f;
  f.left = left;
  f.top = top;
  f.width = width;
  f.height = height;
  f.disposal = disposal;
  f.indices.assign(std::size_t(width) * height, index);
  return f;
}

std::array<std::uint8_t, 3> pixel(const Image& image, int x, int y) {
  const std::uint8_t* p = &image.rgb[(std::size_t(y) * image.width + x) * 3];
  return {p[0], p[1], p[2]};
}

constexpr std::array<std::uint8_t, 3> kRed{255, 0, 0}, kBlue{0, 0, 255}, kGreen{0, 255, 0}, kWhite{255, 255, 255};

}  // namespace

TEST_CASE("sample_frames: first, last and evenly spaced, within the frame and pixel caps", "[unit][image][animation]") {
  AnimationLimits limits;
  CHECK(sample_frames(1, 10, 10, limits) == std::vector<int>{0});
  CHECK(sample_frames(3, 10, 10, limits) == std::vector<int>{0, 1, 2});
  CHECK(sample_frames(12, 10, 10, limits) == std::vector<int>{0, 2, 3, 5, 6, 8, 9, 11});
  limits.max_frames = 2;
  CHECK(sample_frames(100, 10, 10, limits) == std::vector<int>{0, 99});
  limits.max_frames = 8;
  limits.max_total_pixels = 300;  // three 10x10 frames
  CHECK(sample_frames(100, 10, 10, limits) == std::vector<int>{0, 50, 99});
  limits.max_total_pixels = 10;  // not even one frame: still the first
  CHECK(sample_frames(100, 10, 10, limits) == std::vector<int>{0});
}

TEST_CASE("GIF frames are composited with their disposal methods", "[unit][image][animation]") {
  // 4x4 canvas. Frame 0: red everywhere (kept). Frame 1: blue 2x2 at (0,0), then
  // restored to background (transparent). Frame 2: green 2x2 at (2,2), then
  // restored to previous. Frame 3: a 1x1 blue at (3,0).
  const auto bytes = test::encode_gif_animation(
      4, 4, kPalette,
      {solid(0, 0, 4, 4, 1, DISPOSE_DO_NOT), solid(0, 0, 2, 2, 2, DISPOSE_BACKGROUND), solid(2, 2, 2, 2, 3, DISPOSE_PREVIOUS),
       solid(3, 0, 1, 1, 2, DISPOSE_DO_NOT)});
  DecodeInfo info;
  const ImageFrames frames = decode_image_frames(bytes.data(), bytes.size(), {}, &info);
  CHECK(frames.frame_count == 4);
  REQUIRE(frames.indices == std::vector<int>{0, 1, 2, 3});
  REQUIRE(frames.frames.size() == 4);
  CHECK(info.format == ImageFormat::Gif);
  CHECK(pixel(frames.frames[0], 0, 0) == kRed);
  CHECK(pixel(frames.frames[1], 0, 0) == kBlue);
  CHECK(pixel(frames.frames[1], 3, 3) == kRed);
  // Frame 1 was restored to transparent: white after compositing on the default background.
  CHECK(pixel(frames.frames[2], 0, 0) == kWhite);
  CHECK(pixel(frames.frames[2], 3, 3) == kGreen);
  // Frame 2 was restored to what was under it (red), frame 3 adds one blue pixel.
  CHECK(pixel(frames.frames[3], 3, 3) == kRed);
  CHECK(pixel(frames.frames[3], 3, 0) == kBlue);
  CHECK(pixel(frames.frames[3], 0, 0) == kWhite);
  // decode_image keeps its meaning: the first frame.
  CHECK(decode_image(bytes.data(), bytes.size()).rgb == frames.frames[0].rgb);
}

TEST_CASE("animation limits: frames judged, frames and pixels a file may hold", "[unit][image][animation]") {
  std::vector<test::GifAnimationFrame> many;
  for (int i = 0; i < 20; ++i) many.push_back(solid(0, 0, 4, 4, std::uint8_t(1 + i % 3), DISPOSE_DO_NOT));
  const auto bytes = test::encode_gif_animation(4, 4, kPalette, many);
  DecodeOptions options;
  options.animation.max_frames = 3;
  const ImageFrames frames = decode_image_frames(bytes.data(), bytes.size(), options);
  CHECK(frames.frame_count == 20);
  CHECK(frames.indices == std::vector<int>{0, 10, 19});
  CHECK(pixel(frames.frames[1], 0, 0) == kBlue);  // frame 10: palette index 1 + 10 % 3 = 2
  options.animation.max_file_frames = 19;
  CHECK_THROWS_WITH(decode_image_frames(bytes.data(), bytes.size(), options),
                    Contains("more than 19 frames (the limit max_file_frames)"));
  options.animation.max_file_frames = 10000;
  options.animation.max_file_pixels = 100;
  try {
    decode_image_frames(bytes.data(), bytes.size(), options);
    FAIL("over the pixel limit");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::LimitExceeded);
    CHECK_THAT(e.what(), Contains("max_file_pixels"));
  }
}

TEST_CASE("animated WebP frames decode through the demuxer", "[unit][image][animation]") {
  const int w = 3, h = 2;
  std::vector<std::vector<std::uint8_t>> rgba;
  for (const auto& colour : {kRed, kBlue, kGreen}) {
    std::vector<std::uint8_t> frame;
    for (int i = 0; i < w * h; ++i) frame.insert(frame.end(), {colour[0], colour[1], colour[2], 255});
    rgba.push_back(frame);
  }
  const auto bytes = test::encode_webp_animation(w, h, rgba);
  const ImageFrames frames = decode_image_frames(bytes.data(), bytes.size());
  CHECK(frames.frame_count == 3);
  REQUIRE(frames.frames.size() == 3);
  CHECK(pixel(frames.frames[0], 0, 0) == kRed);
  CHECK(pixel(frames.frames[1], 2, 1) == kBlue);
  CHECK(pixel(frames.frames[2], 1, 0) == kGreen);
  // The single-image API still refuses it, naming the API that reads it.
  CHECK_THROWS_WITH(decode_image(bytes.data(), bytes.size()), Contains("decode_image_frames"));
}

TEST_CASE("the Judge judges an animation by its worst frame", "[unit][judge][animation]") {
  // A 4x4 animation: red, then blue, then red again. The script calls the blue frame unsafe.
  const auto bytes = test::encode_gif_animation(
      4, 4, kPalette,
      {solid(0, 0, 4, 4, 1, DISPOSE_DO_NOT), solid(0, 0, 4, 4, 2, DISPOSE_DO_NOT), solid(0, 0, 4, 4, 1, DISPOSE_DO_NOT)});
  const ImageFrames frames = decode_image_frames(bytes.data(), bytes.size());
  char pattern[] = "/tmp/imgjudge-animation-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  const auto png = encode_png(frames.frames[1]);
  std::ofstream(dir + "/blue.png", std::ios::binary).write(reinterpret_cast<const char*>(png.data()), png.size());
  const Models models = backends::scripted::load_models_from_string(R"(
[[images]]
file = "blue.png"
scores = { "A gun is visible." = 0.99 }
)", "script.toml", dir);
  const char* constitution = R"(
schema_version = 1
name = "animation-test"
version = "1"
[[rules]]
id = "weapon"
category = "weapons"
text = "No weapons."
chain = [ { any_of = ["A gun is visible."] } ]
)";
  JudgeOptions options;
  options.relevance = false;
  Judge judge(Constitution::from_string(constitution), models, options);
  const Verdict v = judge.judge_bytes(bytes.data(), bytes.size());
  CHECK(v.decision == Decision::Unsafe);
  REQUIRE(v.animation.has_value());
  CHECK(v.animation->frame == 1);
  CHECK(v.animation->frame_count == 3);
  CHECK(v.animation->judged_frames == std::vector<int>{0, 1, 2});
  CHECK(v.image_hash == "sha256:" + frames.frames[1].content_hash());
  const auto json = nlohmann::json::parse(v.to_json());
  CHECK(json["animation"]["frame"] == 1);
  CHECK(json["animation"]["judged"] == nlohmann::json::array({0, 1, 2}));
  CHECK_THAT(v.notes.back(), Contains("judged 3 of its 3 frames; this verdict is frame 1's"));
  // The first frame alone would have passed.
  CHECK(judge.judge(frames.frames[0]).decision == Decision::Safe);
  // A still image has no animation block.
  CHECK(nlohmann::json::parse(judge.judge(frames.frames[0]).to_json())["animation"].is_null());
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST_CASE("the kept hostile animated WebP (a header without frames) is InvalidImage", "[unit][image][animation]") {
  const std::string path = std::string(IMGJUDGE_TEST_DATA_DIR) + "/hostile/images/webp_animated.webp";
  try {
    load_image_frames(path);
    FAIL("decoded");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::InvalidImage);
    CHECK_THAT(e.what(), Contains("webp_animated.webp: webp: cannot parse the animation's container"));
  }
}
