// Chat templates (against jinja2 renderings of the published templates) and
// the JSON-lines engine of `imgjudge tokenize`.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/json_lines.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

using imgjudge::tokenizer::ChatContent;
using imgjudge::tokenizer::ChatMessage;
using imgjudge::tokenizer::ChatStyle;
using imgjudge::tokenizer::ChatTemplate;
using imgjudge::tokenizer::ChatTemplateOptions;
using imgjudge::tokenizer::Tokenizer;

const std::string kTokenizerData = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/";
const std::string kTemplates = std::string(IMGJUDGE_TEST_DATA_DIR) + "/chat_templates/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<ChatMessage> messages_of(const nlohmann::json& messages) {
  std::vector<ChatMessage> out;
  for (const auto& m : messages) {
    ChatMessage message{m.at("role").get<std::string>(), {}};
    for (const auto& c : m.at("content")) {
      message.content.push_back(c.at("type") == "image" ? ChatContent::image()
                                                         : ChatContent::make_text(c.at("text").get<std::string>()));
    }
    out.push_back(std::move(message));
  }
  return out;
}

}  // namespace

TEST_CASE("chat templates render as jinja2 renders the published templates", "[unit][tokenizer]") {
  // goldens.json: each template's conversations rendered by jinja2 configured
  // as transformers does (tests/data/chat_templates/make_goldens.py).
  const auto goldens = nlohmann::json::parse(read_text(kTemplates + "goldens.json"));
  std::size_t rendered = 0, refused = 0;
  for (const auto& entry : goldens.at("templates")) {
    const std::string name = entry.at("name");
    INFO("template " << name);
    const auto detected = ChatTemplate::detect(read_text(kTemplates + entry.at("file").get<std::string>()));
    if (entry.at("style").is_null()) {
      CHECK_FALSE(detected.has_value());  // a template we cannot render exactly is refused
      ++refused;
      continue;
    }
    REQUIRE(detected.has_value());
    CHECK(std::string(imgjudge::tokenizer::chat_style_name(detected->style())) == entry.at("style").get<std::string>());
    const imgjudge::tokenizer::ChatSpecialTokens tokens{entry.at("bos"), entry.at("eos")};
    for (const auto& c : entry.at("cases")) {
      INFO("case " << c.at("name").get<std::string>());
      ChatTemplateOptions options;
      options.add_generation_prompt = c.at("add_generation_prompt");
      const auto messages = messages_of(c.at("messages"));
      if (c.contains("error")) {
        CHECK_THROWS_AS(detected->render(messages, options, tokens), imgjudge::Error);
      } else {
        CHECK(detected->render(messages, options, tokens) == c.at("expected").get<std::string>());
        ++rendered;
      }
    }
  }
  CHECK(rendered > 80);
  CHECK(refused == 3);
}

TEST_CASE("chat templates: text-only styles refuse images; folders without a template", "[unit][tokenizer]") {
  const auto chatml = ChatTemplate::detect(read_text(kTemplates + "qwen2_5_instruct.jinja"));
  REQUIRE(chatml.has_value());
  CHECK_THROWS_WITH(chatml->render({{"user", {ChatContent::image(), ChatContent::make_text("Q")}}}),
                    Catch::Contains("text-only"));
  // Qwen2-VL's add_vision_id numbers images and videos across the conversation.
  const ChatTemplate qwen(ChatStyle::Qwen2VL);
  ChatTemplateOptions with_ids;
  with_ids.add_vision_id = true;
  CHECK(qwen.render({{"user", {ChatContent::image(), ChatContent::video(), ChatContent::image()}}}, with_ids) ==
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Video 1: <|vision_start|><|video_pad|><|vision_end|>"
        "Picture 2: <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n");
  for (const auto& [name, file] : std::vector<std::pair<std::string, std::string>>{
           {"qwen2_vl", "qwen2_vl"}, {"llava", "llava15"}, {"llava_next_mistral", "llava_next_mistral"},
           {"llava_onevision", "llava_onevision"}, {"qwen2_5_instruct", "qwen2_5_instruct"},
           {"llama3_1_instruct", "llama3_1_instruct"}, {"mistral_v02_instruct", "mistral_v02_instruct"}}) {
    const std::string& source = imgjudge::tokenizer::published_chat_template(name);
    CHECK(source == read_text(kTemplates + file + ".jinja"));
    CHECK(ChatTemplate::detect(source).has_value());
  }
  CHECK_THROWS_AS(imgjudge::tokenizer::published_chat_template("nope"), imgjudge::Error);
  // A folder with no template: the family default, or a clear error.
  const std::string gpt2 = kTokenizerData + "gpt2";
  CHECK(ChatTemplate::for_folder(gpt2, qwen).style() == ChatStyle::Qwen2VL);
  CHECK_THROWS_WITH(ChatTemplate::for_folder(gpt2, std::nullopt), Catch::Contains("has no chat template"));

  // Tokenized, Qwen2-VL's markers are single special tokens.
  const Tokenizer qwen2 = Tokenizer::load(kTokenizerData + "qwen2");
  ChatTemplateOptions prompt;
  prompt.add_generation_prompt = true;
  const auto ids = qwen2.encode(qwen.render({{"user", {ChatContent::image(), ChatContent::make_text("Safe?")}}}, prompt), false);
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
  CHECK(lines[1]["error"]["message"].get<std::string>().find("line 3: invalid JSON") == 0);
  CHECK(lines[1]["error"]["code"] == "invalid_argument");
  CHECK(lines[2]["error"]["message"].get<std::string>().find("line 4:") == 0);
  CHECK(lines[3] == nlohmann::json::parse(R"({"ids": [50256], "tokens": ["<|endoftext|>"]})"));
  CHECK(lines[4]["error"]["message"].get<std::string>().find("add_special_tokens") != std::string::npos);

  std::istringstream long_line(std::string(1000, 'a') + "\n{\"text\": \"ok\"}\n");
  std::ostringstream long_out;
  const auto bounded = imgjudge::tokenizer::tokenize_json_lines(gpt2, long_line, long_out, 100);
  CHECK(bounded.lines == 2);
  CHECK(bounded.errors == 1);
  CHECK(long_out.str().find("longer than 100 bytes") != std::string::npos);
  CHECK(long_out.str().find("\"tokens\":[\"ok\"]") != std::string::npos);
}
