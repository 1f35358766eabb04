// The Qwen2-VL chat template and the JSON-lines engine of `imgjudge tokenize`.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.hpp"
#include "tokenizer/json_lines.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using imgjudge::tokenizer::ChatContent;
using imgjudge::tokenizer::ChatMessage;
using imgjudge::tokenizer::ChatTemplateOptions;
using imgjudge::tokenizer::render_qwen2_vl_chat;
using imgjudge::tokenizer::Tokenizer;

const std::string kTokenizerData = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/";

}  // namespace

TEST_CASE("Qwen2-VL chat template renders as the HF Jinja template", "[unit][tokenizer]") {
  const std::vector<ChatMessage> user_only = {
      {"user", {ChatContent::image(), ChatContent::make_text("Is this image safe?")}}};
  ChatTemplateOptions prompt;
  prompt.add_generation_prompt = true;
  CHECK(render_qwen2_vl_chat(user_only, prompt) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is this image safe?<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(render_qwen2_vl_chat(user_only) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is this image safe?<|im_end|>\n");

  // An explicit system turn replaces the default; several turns and images,
  // vision ids counted across the conversation.
  const std::vector<ChatMessage> conversation = {
      {"system", {ChatContent::make_text("You judge images.")}},
      {"user", {ChatContent::image(), ChatContent::image(), ChatContent::make_text("Same person?")}},
      {"assistant", {ChatContent::make_text("Yes.")}},
      {"user", {ChatContent::make_text("And this? "), ChatContent::video()}},
  };
  ChatTemplateOptions with_ids;
  with_ids.add_vision_id = true;
  with_ids.add_generation_prompt = true;
  CHECK(render_qwen2_vl_chat(conversation, with_ids) ==
        "<|im_start|>system\nYou judge images.<|im_end|>\n"
        "<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>"
        "Picture 2: <|vision_start|><|image_pad|><|vision_end|>Same person?<|im_end|>\n"
        "<|im_start|>assistant\nYes.<|im_end|>\n"
        "<|im_start|>user\nAnd this? Video 1: <|vision_start|><|video_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(render_qwen2_vl_chat({}, prompt) == "<|im_start|>assistant\n");
  CHECK(imgjudge::tokenizer::qwen2_vl_chat_template_source().find("You are a helpful assistant.") != std::string::npos);

  // Tokenized, the markers are single special tokens.
  const Tokenizer qwen2 = Tokenizer::load(kTokenizerData + "qwen2");
  const auto ids = qwen2.encode(render_qwen2_vl_chat(user_only, prompt), false);
  const std::vector<std::int32_t> system_turn_start = {151644, 8948, 198};  // <|im_start|> system \n
  CHECK(std::vector<std::int32_t>(ids.begin(), ids.begin() + 3) == system_turn_start);
  const std::vector<std::int32_t> image = {151652, 151655, 151653};
  CHECK(std::search(ids.begin(), ids.end(), image.begin(), image.end()) != ids.end());
  const std::vector<std::int32_t> generation = {151644, 77091, 198};  // <|im_start|> assistant \n
  CHECK(std::vector<std::int32_t>(ids.end() - 3, ids.end()) == generation);
}

TEST_CASE("tokenize JSON lines: answers, errors and exit accounting", "[unit][tokenizer]") {
  const Tokenizer gpt2 = Tokenizer::load(kTokenizerData + "gpt2");
  std::istringstream in(
      "{\"text\": \"Hello world\"}\n"
      "\n"
      "not json\n"
      "{\"text\": 5}\n"
      "{\"text\": \"<|endoftext|>\", \"add_special_tokens\": false}\n"
      "{\"text\": \"x\", \"add_special_tokens\": \"yes\"}\n");
  std::ostringstream out;
  const auto result = imgjudge::tokenizer::tokenize_json_lines(gpt2, in, out);
  CHECK(result.lines == 5);
  CHECK(result.errors == 3);
  std::istringstream answers(out.str());
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(answers, line);) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == nlohmann::json::parse(R"({"ids": [15496, 995], "tokens": ["Hello", "Ġworld"]})"));
  CHECK(lines[1]["error"].get<std::string>().find("line 3: invalid JSON") == 0);
  CHECK(lines[2]["error"].get<std::string>().find("line 4:") == 0);
  CHECK(lines[3] == nlohmann::json::parse(R"({"ids": [50256], "tokens": ["<|endoftext|>"]})"));
  CHECK(lines[4]["error"].get<std::string>().find("add_special_tokens") != std::string::npos);

  std::istringstream long_line(std::string(1000, 'a') + "\n{\"text\": \"ok\"}\n");
  std::ostringstream long_out;
  const auto bounded = imgjudge::tokenizer::tokenize_json_lines(gpt2, long_line, long_out, 100);
  CHECK(bounded.lines == 2);
  CHECK(bounded.errors == 1);
  CHECK(long_out.str().find("longer than 100 bytes") != std::string::npos);
  CHECK(long_out.str().find("\"tokens\":[\"ok\"]") != std::string::npos);
}
