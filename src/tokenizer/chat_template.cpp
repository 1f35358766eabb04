#include "tokenizer/chat_template.hpp"

#include <chrono>
#include <ctime>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::tokenizer {
namespace {

constexpr std::size_t kMaxTemplateBytes = 1u << 20;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Jinja string literals spell a newline either as the character itself or as
// the two-character escape; both render one newline.
std::string normalized_newlines(const std::string& source) {
  std::string out;
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\\' && i + 1 < source.size() && source[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += source[i];
    }
  }
  return out;
}

// Python's str.strip() (Jinja's `trim`) over ASCII whitespace.
std::string trim(const std::string& text) {
  const char* space = " \t\n\r\f\v";
  const auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

// The text items of a message, joined (text templates read content as one string).
std::string text_of(const ChatMessage& message) {
  std::string text;
  for (const ChatContent& item : message.content) {
    if (item.kind == ChatContent::Kind::Text) text += item.text;
  }
  return text;
}

void require_text_only(const ChatMessage& message, ChatStyle style) {
  for (const ChatContent& item : message.content) {
    if (item.kind != ChatContent::Kind::Text) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the {} chat template is text-only: it has no place for an image", chat_style_name(style)));
    }
  }
}

[[noreturn]] void refuse(const std::string& why) {
  throw Error(ErrorCode::InvalidArgument, "the chat template refuses this conversation: " + why);
}

// Qwen/Qwen2-VL-*-Instruct, Qwen/Qwen2.5-VL-*-Instruct (chat_template.json).
std::string render_qwen2_vl(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  std::string out;
  int image_count = 0;
  int video_count = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (i == 0 && message.role != "system") out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    out += "<|im_start|>" + message.role + "\n";
    for (const ChatContent& item : message.content) {  // in order, interleaving kept
      switch (item.kind) {
        case ChatContent::Kind::Image:
          ++image_count;
          if (options.add_vision_id) out += "Picture " + std::to_string(image_count) + ": ";
          out += "<|vision_start|><|image_pad|><|vision_end|>";
          break;
        case ChatContent::Kind::Video:
          ++video_count;
          if (options.add_vision_id) out += "Video " + std::to_string(video_count) + ": ";
          out += "<|vision_start|><|video_pad|><|vision_end|>";
          break;
        case ChatContent::Kind::Text:
          out += item.text;
          break;
      }
    }
    out += "<|im_end|>\n";
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// Appends every item of `kind` of `message` as `prefix + item + suffix`
// (llava-hf templates render a message's images, then videos, then texts).
void append_items(std::string& out, const ChatMessage& message, ChatContent::Kind kind, const std::string& prefix,
                  const std::string& placeholder, const std::string& suffix) {
  for (const ChatContent& item : message.content) {
    if (item.kind == kind) out += prefix + (kind == ChatContent::Kind::Text ? item.text : placeholder) + suffix;
  }
}

std::string render_llava_chatml(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options,
                                const ChatVariant& v) {
  const bool newline_after_image = !v.image.empty() && v.image.back() == '\n';
  std::string out;
  for (const ChatMessage& message : messages) {
    out += "<|im_start|>" + message.role + v.role_separator;
    append_items(out, message, ChatContent::Kind::Image, "", v.image, "");
    append_items(out, message, ChatContent::Kind::Video, "", newline_after_image ? "<video>\n" : "<video>", "");
    append_items(out, message, ChatContent::Kind::Text, v.text_prefix, "", "");
    out += v.turn_end;
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llava_vicuna(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  std::string out;
  for (const ChatMessage& message : messages) {
    if (message.role != "system") {
      std::string upper = message.role;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out += upper + ": ";
    }
    append_items(out, message, ChatContent::Kind::Image, "", "<image>\n", "");
    append_items(out, message, ChatContent::Kind::Text, "", "", " ");
  }
  if (options.add_generation_prompt) out += "ASSISTANT:";
  return out;
}

// The first text item of a message (`message['content'][0]['text']`).
const std::string& first_text(const ChatMessage& message) {
  if (message.content.empty() || message.content.front().kind != ChatContent::Kind::Text) {
    refuse(fmt::format("a {} message must start with text", message.role));
  }
  return message.content.front().text;
}

std::string render_llava_mistral(const std::vector<ChatMessage>& messages, const ChatVariant& v) {
  std::string out;
  for (const ChatMessage& message : messages) {
    if (message.role == "system" && v.system_allowed) {
      out += "<<SYS>>\n" + first_text(message) + "\n<</SYS>>\n\n";
    } else if (message.role == "user") {
      out += "[INST] ";
      append_items(out, message, ChatContent::Kind::Image, "", "<image>\n", "");
      append_items(out, message, ChatContent::Kind::Text, "", "", "");
      out += " [/INST]";
    } else if (message.role == "assistant") {
      out += " " + first_text(message) + v.assistant_end;
    } else {
      refuse("Only user and assistant roles are supported!");
    }
  }
  return out;  // this template has no generation prompt
}

std::string render_llava_llama3(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  std::string out;
  for (const ChatMessage& message : messages) {
    out += "<|start_header_id|>" + message.role + "<|end_header_id|>\n\n";
    append_items(out, message, ChatContent::Kind::Image, "", "<image>", "");
    append_items(out, message, ChatContent::Kind::Text, "\n", "", "<|eot_id|>");
  }
  if (options.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// Qwen2 / Qwen2.5 Instruct without tools.
std::string render_chatml(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options,
                          const ChatVariant& v) {
  std::string out;
  const bool first_is_system = !messages.empty() && messages.front().role == "system";
  if (first_is_system) {
    out += "<|im_start|>system\n" + text_of(messages.front()) + "<|im_end|>\n";
  } else if (!v.default_system.empty()) {
    out += "<|im_start|>system\n" + v.default_system + "<|im_end|>\n";
  }
  for (std::size_t i = first_is_system ? 1 : 0; i < messages.size(); ++i) {
    out += "<|im_start|>" + messages[i].role + "\n" + text_of(messages[i]) + "<|im_end|>\n";
  }
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options,
                          const ChatVariant& v, const std::string& bos) {
  std::size_t first = 0;
  std::string system;
  if (!messages.empty() && messages.front().role == "system") {
    system = trim(text_of(messages.front()));
    first = 1;
  }
  std::string out = bos + "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: December 2023\nToday Date: " + v.date + "\n\n" + system + "<|eot_id|>";
  for (std::size_t i = first; i < messages.size(); ++i) {
    out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + trim(text_of(messages[i])) + "<|eot_id|>";
  }
  if (options.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_mistral(const std::vector<ChatMessage>& messages, const ChatVariant& v, const std::string& bos,
                           const std::string& eos) {
  std::size_t first = 0;
  std::optional<std::string> system;
  if (v.system_allowed && !messages.empty() && messages.front().role == "system") {
    system = text_of(messages.front());
    first = 1;
  }
  std::string out = bos;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if ((message.role == "user") != ((i - first) % 2 == 0)) {
      refuse("conversation roles must alternate user/assistant/user/assistant/...");
    }
    const std::string inst = v.leading_space ? " [INST] " : "[INST] ";
    if (message.role == "user") {
      out += inst + (i == first && system ? *system + "\n\n" : "") + text_of(message) + " [/INST]";
    } else if (message.role == "assistant") {
      out += (v.leading_space ? " " : "") + text_of(message) + eos;
    } else {
      refuse("only user and assistant roles are supported, with an optional first system message");
    }
  }
  return out;  // this template has no generation prompt
}

// OpenGVLab conversation.py, SeparatorStyle.MPT (InternVL2 / 2.5): the
// system block always, then every turn; a turn whose text is empty is its
// role alone (Python's `if message:`), as the open assistant turn is.
std::string render_internvl(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options,
                            const ChatVariant& v) {
  std::size_t first = 0;
  std::string system = v.default_system;
  if (!messages.empty() && messages.front().role == "system") {
    require_text_only(messages.front(), ChatStyle::InternVL);
    system = text_of(messages.front());
    first = 1;
  }
  std::string out = v.system_prefix + system + v.separator;
  for (std::size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (message.role != "user" && message.role != "assistant") {
      refuse("only user and assistant turns after an optional first system message");
    }
    std::string text;
    for (const ChatContent& item : message.content) {
      switch (item.kind) {
        case ChatContent::Kind::Image: text += "<img><IMG_CONTEXT></img>\n"; break;
        case ChatContent::Kind::Text: text += item.text; break;
        case ChatContent::Kind::Video: refuse("InternVL conversations have no video items");
      }
    }
    out += (message.role == "user" ? v.user_role : v.assistant_role) + text;
    if (!text.empty()) out += v.separator;
  }
  if (options.add_generation_prompt) out += v.assistant_role;
  return out;
}

// A single-quoted Jinja string literal's value: Python escapes \n, \\ and
// \' are resolved, unknown ones (as "<\s>") keep their backslash.
std::string unescape(const std::string& literal) {
  std::string out;
  for (std::size_t i = 0; i < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 1 < literal.size()) {
      const char next = literal[i + 1];
      if (next == 'n' || next == '\\' || next == '\'') {
        out += next == 'n' ? '\n' : next;
        ++i;
        continue;
      }
    }
    out += literal[i];
  }
  return out;
}

// The literal an llava-hf Mistral template writes after an assistant turn
// (`' ' + message['content'][0]['text'] + '<\s> '`).
std::optional<std::string> mistral_assistant_end(const std::string& source) {
  const std::string before = "' ' + message['content'][0]['text'] + '";
  const auto start = source.find(before);
  if (start == std::string::npos) return std::nullopt;
  const auto begin = start + before.size();
  auto end = begin;
  while (end < source.size() && source[end] != '\'') end += source[end] == '\\' ? 2 : 1;
  if (end >= source.size()) return std::nullopt;
  return unescape(source.substr(begin, end - begin));
}

std::string today() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%d %b %Y", &local);
  return buffer;
}

// The template source of a folder and the file it came from ("" if none).
std::pair<std::string, std::string> folder_template(const std::string& dir) {
  const std::string jinja = util::join_path(dir, "chat_template.jinja");
  if (util::file_exists(jinja)) return {util::read_file_text(jinja, kMaxTemplateBytes), jinja};
  for (const char* name : {"chat_template.json", "tokenizer_config.json"}) {
    const std::string path = util::join_path(dir, name);
    if (!util::file_exists(path)) continue;
    const nlohmann::json json = util::parse_json(util::read_file_text(path, 16u << 20), path, ErrorCode::InvalidModel);
    if (!json.is_object() || !json.contains("chat_template") || json["chat_template"].is_null()) continue;
    const auto& value = json["chat_template"];
    if (value.is_string()) return {value.get<std::string>(), path};
    // A list of named templates: the "default" one.
    if (value.is_array()) {
      for (const auto& entry : value) {
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
            entry["template"].is_string()) {
          return {entry["template"].get<std::string>(), path};
        }
      }
    }
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: \"chat_template\" must be a string or a list with a \"default\" entry", path));
  }
  return {"", ""};
}

}  // namespace

const char* chat_style_name(ChatStyle style) {
  switch (style) {
    case ChatStyle::Qwen2VL: return "qwen2_vl";
    case ChatStyle::LlavaChatML: return "llava_chatml";
    case ChatStyle::LlavaVicuna: return "llava_vicuna";
    case ChatStyle::LlavaMistral: return "llava_mistral";
    case ChatStyle::LlavaLlama3: return "llava_llama3";
    case ChatStyle::ChatML: return "chatml";
    case ChatStyle::Llama3: return "llama3";
    case ChatStyle::Mistral: return "mistral";
    case ChatStyle::InternVL: return "internvl";
  }
  return "unknown";
}

std::optional<ChatTemplate> ChatTemplate::detect(const std::string& raw) {
  const std::string s = normalized_newlines(raw);
  const bool typed_images = contains(s, "selectattr('type', 'equalto', 'image')");
  ChatVariant v;
  if (contains(s, "<|vision_start|>") && contains(s, "<|image_pad|>")) return ChatTemplate(ChatStyle::Qwen2VL);
  if (contains(s, "<|im_start|>") && typed_images) {
    v.role_separator = contains(s, "message['role'] + ' '") ? " " : "\n";
    v.image = contains(s, "'<image>\n'") ? "<image>\n" : "<image>";
    v.text_prefix = contains(s, "'\n' + content['text']") ? "\n" : "";
    v.turn_end = contains(s, "'<|im_end|>' + '\n'") ? "<|im_end|>\n" : "<|im_end|>";
    return ChatTemplate(ChatStyle::LlavaChatML, v);
  }
  if (contains(s, "<|start_header_id|>") && typed_images) return ChatTemplate(ChatStyle::LlavaLlama3);
  if (contains(s, "[INST]") && typed_images) {
    const std::optional<std::string> assistant_end = mistral_assistant_end(raw);
    if (!assistant_end) return std::nullopt;
    v.system_allowed = contains(s, "<<SYS>>");
    v.assistant_end = *assistant_end;
    return ChatTemplate(ChatStyle::LlavaMistral, v);
  }
  if (contains(s, ".upper() + ': '") && contains(s, "'ASSISTANT:'") && typed_images &&
      !contains(s, "{% if message['role'] == 'system' %}{{ message['content'][0]['text'] }}")) {
    return ChatTemplate(ChatStyle::LlavaVicuna);
  }
  if (contains(s, "Cutting Knowledge Date:") && contains(s, "<|start_header_id|>")) {
    v.date = contains(s, "strftime_now") ? today() : "26 Jul 2024";
    return ChatTemplate(ChatStyle::Llama3, v);
  }
  if (contains(s, "[INST]") && contains(s, "bos_token") && !typed_images) {
    if (contains(s, "system_message is defined") && contains(s, "' [INST] '")) return ChatTemplate(ChatStyle::Mistral, v);
    if (contains(s, "'[INST] ' + message['content'] + ' [/INST]'") && !contains(s, "system_message")) {
      v.system_allowed = false;
      v.leading_space = false;
      return ChatTemplate(ChatStyle::Mistral, v);
    }
    return std::nullopt;
  }
  if (contains(s, "<|im_start|>") && !typed_images &&
      (contains(s, "'<|im_start|>' + message['role'] + '\n' + message['content']") ||
       contains(s, "'<|im_start|>' + message.role + '\n' + message.content"))) {
    if (contains(s, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")) {
      v.default_system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    } else if (contains(s, "You are a helpful assistant.")) {
      v.default_system = "You are a helpful assistant.";
    }
    return ChatTemplate(ChatStyle::ChatML, v);
  }
  return std::nullopt;
}

ChatTemplate ChatTemplate::internvl_conversation(const std::string& name,
                                                 const std::optional<std::string>& system_message) {
  // conversation.py's registrations, copied byte for byte (the system
  // messages are the templates' own; Hermes-2 and internlm2-chat render alike).
  static const std::string kInternVL25System =
      "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";
  static const std::string kInternVL2System =
      "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";
  ChatVariant v;
  v.system_prefix = "<|im_start|>system\n";
  v.user_role = "<|im_start|>user\n";
  v.assistant_role = "<|im_start|>assistant\n";
  v.default_system = kInternVL2System;
  if (name == "internvl2_5") {
    v.default_system = kInternVL25System;
    v.separator = "<|im_end|>\n";
  } else if (name == "internlm2-chat" || name == "Hermes-2") {
    v.separator = "<|im_end|>";
  } else if (name == "phi3-chat") {
    v.system_prefix = "<|system|>\n";
    v.user_role = "<|user|>\n";
    v.assistant_role = "<|assistant|>\n";
    v.separator = "<|end|>";
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("InternVL conversation template \"{}\" is not supported (internvl2_5, internlm2-chat, "
                            "Hermes-2, phi3-chat)",
                            name));
  }
  if (system_message) v.default_system = *system_message;
  return ChatTemplate(ChatStyle::InternVL, v);
}

ChatTemplate ChatTemplate::for_folder(const std::string& model_dir, std::optional<ChatTemplate> fallback) {
  const auto [source, file] = folder_template(model_dir);
  if (file.empty()) {
    if (fallback) return *fallback;
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: the folder has no chat template (chat_template.jinja, chat_template.json or "
                            "tokenizer_config.json \"chat_template\"), and its family has no default",
                            model_dir));
  }
  std::optional<ChatTemplate> detected = detect(source);
  if (!detected) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: the chat template is not one imgjudge can render (it renders the templates of "
                            "Qwen2-VL, LLaVA-1.5/NeXT/OneVision, LlavaGuard, Qwen2.5, Llama 3.1 and Mistral "
                            "Instruct; docs/tokenizers.md); rendering it approximately would change every score",
                            file));
  }
  detected->source_file_ = file;
  return *detected;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options,
                                 const ChatSpecialTokens& tokens) const {
  switch (style_) {
    case ChatStyle::Qwen2VL: return render_qwen2_vl(messages, options);
    case ChatStyle::LlavaChatML: return render_llava_chatml(messages, options, variant_);
    case ChatStyle::LlavaVicuna: return render_llava_vicuna(messages, options);
    case ChatStyle::LlavaMistral: return render_llava_mistral(messages, variant_);
    case ChatStyle::LlavaLlama3: return render_llava_llama3(messages, options);
    case ChatStyle::InternVL: return render_internvl(messages, options, variant_);
    default: break;
  }
  for (const ChatMessage& message : messages) require_text_only(message, style_);
  switch (style_) {
    case ChatStyle::ChatML: return render_chatml(messages, options, variant_);
    case ChatStyle::Llama3: return render_llama3(messages, options, variant_, tokens.bos);
    case ChatStyle::Mistral: return render_mistral(messages, variant_, tokens.bos, tokens.eos);
    default: break;
  }
  throw Error(ErrorCode::Internal, "unknown chat style");
}

const std::string& published_chat_template(const std::string& name) {
  // Verbatim from the checkpoints' chat_template.json (the same files as
  // tests/data/chat_templates/*.jinja, which a test compares).
  static const std::map<std::string, std::string> templates = {
      {"qwen2_vl", R"TEMPLATE({% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system
You are a helpful assistant.<|im_end|>
{% endif %}<|im_start|>{{ message['role'] }}
{% if message['content'] is string %}{{ message['content'] }}<|im_end|>
{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>
{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %})TEMPLATE"},
      {"llava", R"TEMPLATE({% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>
' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %})TEMPLATE"},
      {"llava_next_mistral", R"TEMPLATE({% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>
' + message['content'][0]['text'] + '
<</SYS>>

' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>
' }}{% endfor %}{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '<\s> '}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})TEMPLATE"},
      {"llava_onevision", R"TEMPLATE({% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})TEMPLATE"},
      {"qwen2_5_instruct", R"TEMPLATE({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %})TEMPLATE"},
      {"llama3_1_instruct", R"TEMPLATE({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %})TEMPLATE"},
      {"mistral_v02_instruct", R"TEMPLATE({%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %})TEMPLATE"},
  };
  const auto it = templates.find(name);
  if (it == templates.end()) throw Error(ErrorCode::InvalidArgument, "no published chat template named '" + name + "'");
  return it->second;
}

}  // namespace imgjudge::tokenizer
