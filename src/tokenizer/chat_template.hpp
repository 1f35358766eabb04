// The Qwen2-VL / Qwen2.5-VL chat template, rendered in C++ exactly as the
// Jinja `chat_template` of those checkpoints (chat_template.json /
// tokenizer_config.json) renders it in transformers' apply_chat_template.
#pragma once

#include <string>
#include <vector>

namespace imgjudge::tokenizer {

/// One item of a message's content list.
struct ChatContent {
  enum class Kind { Text, Image, Video };
  Kind kind = Kind::Text;
  std::string text;  ///< Kind::Text only.

  static ChatContent make_text(std::string value) { return {Kind::Text, std::move(value)}; }
  static ChatContent image() { return {Kind::Image, {}}; }
  static ChatContent video() { return {Kind::Video, {}}; }
};

struct ChatMessage {
  std::string role;  ///< "system", "user", "assistant", ...
  std::vector<ChatContent> content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = false;  ///< End with "<|im_start|>assistant\n".
  bool add_vision_id = false;          ///< "Picture 1: " / "Video 1: " before each placeholder.
};

/// Renders the turns. Each message becomes `<|im_start|>{role}\n{content}<|im_end|>\n`;
/// an image item becomes `<|vision_start|><|image_pad|><|vision_end|>` (one
/// <|image_pad|>: the processor later repeats it once per merged vision
/// patch), a video item the same with <|video_pad|>. If the first message is
/// not a system message, the default system turn "You are a helpful
/// assistant." comes first.
std::string render_qwen2_vl_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {});

/// The template text itself (as in Qwen/Qwen2-VL-7B-Instruct), for reference
/// and for checking a model folder's chat_template against it.
const std::string& qwen2_vl_chat_template_source();

}  // namespace imgjudge::tokenizer
