// SentencePiece folders (tokenizer.model through libsentencepiece, InternLM2Tokenizer
// rules around it) and InternVL's conversation templates (OpenGVLab conversation.py).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "imgjudge/error.hpp"
#include "tokenizer/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using imgjudge::Error;
using imgjudge::ErrorCode;
using imgjudge::tokenizer::ChatContent;
using imgjudge::tokenizer::ChatMessage;
using imgjudge::tokenizer::ChatTemplate;
using imgjudge::tokenizer::ChatTemplateOptions;
using imgjudge::tokenizer::Tokenizer;
using imgjudge::tokenizer::TokenizerFormat;
using Ids = std::vector<std::int32_t>;

const std::string kInternLM2Tiny = std::string(IMGJUDGE_TEST_DATA_DIR) + "/tokenizers/internlm2_tiny";

// Ids of the internlm2_tiny model (its README): specials, user-defined, bytes, InternVL's added tokens.
constexpr std::int32_t kBos = 1, kEos = 2, kImEnd = 7, kImStart = 8, kNewline = 9 + 0x0A;
constexpr std::int32_t kImg = 420, kImgEnd = 421, kImgContext = 422;

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device random;
    path = fs::temp_directory_path() / ("imgjudge_spm_" + std::to_string(random()) + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(path / name, std::ios::binary);
    out << text;
  }
  void copy(const std::string& from, const std::string& name) const { fs::copy_file(from, path / name); }
  std::string str() const { return path.string(); }
};

template <typename Fn>
void require_error(Fn&& fn, ErrorCode code, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL("no exception");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const std::string& fragment : fragments) CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  }
}

ChatMessage text_turn(const std::string& role, const std::string& text) { return {role, {ChatContent::make_text(text)}}; }

}  // namespace

TEST_CASE("an InternLM2 tokenizer.model folder: specials, added tokens, BOS, pieces per stretch", "[unit][tokenizer]") {
  const Tokenizer tok = Tokenizer::load(kInternLM2Tiny);
  CHECK(tok.flavour() == "sentencepiece");
  CHECK(tok.vocab_size() == 420u);
  CHECK(tok.id_end() == 429u);
  CHECK(tok.bos_id() == kBos);
  CHECK(tok.eos_id() == kEos);
  CHECK(tok.token_to_id("<IMG_CONTEXT>") == kImgContext);
  CHECK(tok.token_to_id("<|im_end|>") == kImEnd);
  CHECK(tok.token_to_id("\xE2\x96\x81no") == 302);  // a piece of the model
  CHECK_FALSE(tok.token_to_id("no such piece").has_value());
  CHECK(tok.id_to_token(kNewline) == std::string("<0x0A>"));

  // The added tokens are split off first; each stretch between them gets the
  // model's dummy prefix "▁" (InternLM2Tokenizer: sp_model.encode per stretch).
  const Ids ids = tok.encode("<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nno<|im_end|>", true);
  const Ids expected{kBos, kImStart, 347, 360, 349, 280, kNewline, kImg, kImgContext, kImgContext, kImgEnd,
                     347, kNewline, 353, 350, kImEnd};
  CHECK(ids == expected);
  CHECK(tok.encode("no", false) == Ids{302});
  // Byte fallback: a character the model lacks is its UTF-8 bytes.
  CHECK(tok.encode("\xC3\xA9", false) == Ids{347, 9 + 0xC3, 9 + 0xA9});

  // Decoding: specials kept or skipped, the dummy prefix gone.
  CHECK(tok.decode(tok.encode("Is a cat visible? yes", true), true) == "Is a cat visible? yes");
  // convert_tokens_to_string: a space before a special token that follows text
  // (the first one too: the prefix space it adds is what [1:] removes).
  CHECK(tok.decode({kBos, 302, kImEnd}, false) == " <s> no<|im_end|>");
}

TEST_CASE("tokenizer files: what is missing is named, a bad tokenizer.model is refused", "[unit][tokenizer]") {
  TempDir dir;
  require_error([&] { Tokenizer::load(dir.str()); }, ErrorCode::InvalidModel,
                {dir.str(), "no tokenizer", "tokenizer.json", "vocab.json + merges.txt", "tokenizer.model"});
  require_error([&] { Tokenizer::load(dir.str(), TokenizerFormat::SentencePiece); }, ErrorCode::InvalidModel,
                {"no SentencePiece model", "tokenizer.model", "spiece.model"});
  dir.write("tokenizer.model", "\x0A\x03garbage that is no ModelProto");
  require_error([&] { Tokenizer::load(dir.str()); }, ErrorCode::InvalidModel,
                {(dir.path / "tokenizer.model").string(), "not a SentencePiece model"});
  dir.write("tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer"})");
  require_error([&] { Tokenizer::load(dir.str()); }, ErrorCode::Unsupported,
                {"T5Tokenizer", "InternLM2Tokenizer", "LlamaTokenizer", "SiglipTokenizer"});
}

TEST_CASE("InternLM2Tokenizer folders read tokenizer.model even beside a tokenizer.json", "[unit][tokenizer]") {
  TempDir dir;
  dir.copy(kInternLM2Tiny + "/tokenizer.model", "tokenizer.model");
  dir.copy(kInternLM2Tiny + "/tokenizer_config.json", "tokenizer_config.json");
  dir.write("tokenizer.json", "{ not read }");
  CHECK(Tokenizer::load(dir.str()).encode("no", true) == Ids{kBos, 302});
  // The format can be forced, and a LlamaTokenizer folder with only the model reads it too.
  CHECK(Tokenizer::load(dir.str(), TokenizerFormat::SentencePiece).encode("no", false) == Ids{302});
  dir.write("tokenizer_config.json", R"({"tokenizer_class": "LlamaTokenizer", "legacy": true})");
  fs::remove(dir.path / "tokenizer.json");
  CHECK(Tokenizer::load(dir.str()).encode("no", true) == Ids{kBos, 302});
}

TEST_CASE("InternVL conversation templates render as conversation.py", "[unit][tokenizer][chat]") {
  const std::string internvl2_system =
      "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";
  const std::string internvl25_system =
      "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";
  ChatTemplateOptions prompt;
  prompt.add_generation_prompt = true;
  const std::vector<ChatMessage> question{{"user", {ChatContent::image(), ChatContent::make_text("Is it? Statement: X")}}};

  // internvl2_5: the separator ends with a newline.
  CHECK(ChatTemplate::internvl_conversation("internvl2_5").render(question, prompt) ==
        "<|im_start|>system\n" + internvl25_system + "<|im_end|>\n<|im_start|>user\n<img><IMG_CONTEXT></img>\n"
        "Is it? Statement: X<|im_end|>\n<|im_start|>assistant\n");
  // internlm2-chat and Hermes-2 render alike: no newline after <|im_end|>.
  const std::string chatml = "<|im_start|>system\n" + internvl2_system +
                             "<|im_end|><|im_start|>user\n<img><IMG_CONTEXT></img>\nIs it? Statement: X<|im_end|>"
                             "<|im_start|>assistant\n";
  CHECK(ChatTemplate::internvl_conversation("internlm2-chat").render(question, prompt) == chatml);
  CHECK(ChatTemplate::internvl_conversation("Hermes-2").render(question, prompt) == chatml);
  CHECK(ChatTemplate::internvl_conversation("phi3-chat").render(question, prompt) ==
        "<|system|>\n" + internvl2_system + "<|end|><|user|>\n<img><IMG_CONTEXT></img>\nIs it? Statement: X<|end|>"
        "<|assistant|>\n");

  // config.json's system_message overrides the template's; a system turn overrides both;
  // history turns close with the separator; an empty system message keeps its block.
  const std::vector<ChatMessage> history{text_turn("system", "S"), text_turn("user", "Q"), text_turn("assistant", "A"),
                                         text_turn("user", "Q2")};
  CHECK(ChatTemplate::internvl_conversation("internvl2_5", std::string("M")).render(history, prompt) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
  CHECK(ChatTemplate::internvl_conversation("internlm2-chat", std::string("")).render({text_turn("user", "Hi")}, {}) ==
        "<|im_start|>system\n<|im_end|><|im_start|>user\nHi<|im_end|>");

  require_error([] { ChatTemplate::internvl_conversation("vicuna_v1.1"); }, ErrorCode::Unsupported,
                {"vicuna_v1.1", "internvl2_5", "internlm2-chat", "Hermes-2", "phi3-chat"});
}
