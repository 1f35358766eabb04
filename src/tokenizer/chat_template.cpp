#include "tokenizer/chat_template.hpp"

namespace imgjudge::tokenizer {

std::string render_qwen2_vl_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  std::string out;
  int image_count = 0;
  int video_count = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (i == 0 && message.role != "system") out += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    out += "<|im_start|>" + message.role + "\n";
    // The template's "content is string" branch renders like a single text item.
    for (const ChatContent& item : message.content) {
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

const std::string& qwen2_vl_chat_template_source() {
  static const std::string source =
      "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
      "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
      "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
      "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if "
      "content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
      "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
      "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% "
      "set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% "
      "endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% "
      "endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt "
      "%}<|im_start|>assistant\n{% endif %}";
  return source;
}

}  // namespace imgjudge::tokenizer
