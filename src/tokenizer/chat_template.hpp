// Chat templates of the checkpoints imgjudge loads, rendered in C++ exactly as
// transformers' apply_chat_template renders their Jinja source.
//
// There is no Jinja engine: a model folder's template source is matched to
// one of the known *styles* (each a small renderer, written from the
// published templates; docs/tokenizers.md lists them), and a folder whose
// template is none of them is refused with a message naming the file, never
// rendered approximately. Folders without a template get their family's
// style. tests/data/chat_templates holds the published template texts with
// renderings made by jinja2 as transformers configures it.
#pragma once

#include <optional>
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
  std::string role;  ///< "system", "user", "assistant"
  std::vector<ChatContent> content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = false;  ///< End with the assistant turn's opening.
  bool add_vision_id = false;          ///< Qwen2-VL: "Picture 1: " before each image.
};

enum class ChatStyle {
  /// Qwen2-VL / Qwen2.5-VL: `<|im_start|>{role}\n{content}<|im_end|>\n`, the
  /// default system turn "You are a helpful assistant.", an image is
  /// `<|vision_start|><|image_pad|><|vision_end|>` where it stands.
  Qwen2VL,
  /// The llava-hf ChatML templates (LLaVA-OneVision, LLaVA-v1.6-34B,
  /// LlavaGuard v1.2): `<|im_start|>{role}` + separator, every image, then
  /// every text, `<|im_end|>`; no default system turn. The separators differ
  /// between revisions (ChatVariant).
  LlavaChatML,
  /// llava-hf Vicuna templates (LLaVA-1.5, LLaVA-v1.6-Vicuna, LlavaGuard
  /// v1.0/1.1): `USER: <image>\n{text} ASSISTANT:`.
  LlavaVicuna,
  /// llava-hf/llava-v1.6-mistral-7b-hf: `[INST] <image>\n{text} [/INST]`.
  LlavaMistral,
  /// llava-hf/llama3-llava-next-8b-hf: Llama 3 headers, each text `\n{text}<|eot_id|>`.
  LlavaLlama3,
  /// Text ChatML (Qwen2 / Qwen2.5 Instruct): a default system turn when the
  /// first message is not one (the template's own text).
  ChatML,
  /// Llama 3.1 Instruct: BOS, a system header with the knowledge cut-off and
  /// date lines, `<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>`.
  Llama3,
  /// Mistral Instruct v0.2: `<s> [INST] {text} [/INST]`, the system text
  /// merged into the first user turn (the older revision: `<s>[INST] ...`, no system).
  Mistral,
  /// InternVL2 / 2.5: the SeparatorStyle.MPT conversations of OpenGVLab's
  /// conversation.py, named by config.json "template" rather than written in
  /// Jinja (ChatTemplate::internvl_conversation): `{system_prefix}{system}{sep}`,
  /// then `{role}{text}{sep}` per turn (the role alone for an empty one), the
  /// generation prompt is the assistant role. An image item is
  /// `<img><IMG_CONTEXT></img>\n` where it stands (chat()'s "<image>\n"; the
  /// model repeats <IMG_CONTEXT> once per image feature row).
  InternVL,
};

/// The parts in which revisions of one style differ, read from the template source.
struct ChatVariant {
  std::string role_separator = "\n";  ///< LlavaChatML: after `<|im_start|>{role}` (" " in OneVision's current template).
  std::string image = "<image>";      ///< LlavaChatML: an image item ("<image>\n" in older revisions).
  std::string text_prefix;            ///< LlavaChatML: before each text item ("\n" in OneVision's current template).
  std::string turn_end = "<|im_end|>\n";  ///< LlavaChatML: "<|im_end|>" in OneVision's current template.
  std::string default_system;         ///< ChatML: the default system text ("" = none).
  std::string assistant_end;          ///< LlavaMistral: after an assistant turn ("<\\s> " or "</s> ").
  bool system_allowed = true;         ///< LlavaMistral / Mistral: the revision renders a system message.
  bool leading_space = true;          ///< Mistral: " [INST] " (current) or "[INST] " (older).
  std::string date = "26 Jul 2024";   ///< Llama3: the "Today Date" line.
  /// InternVL: the system template before the message ("<|im_start|>system\n"),
  /// the roles ("<|im_start|>user\n", "<|im_start|>assistant\n") and the
  /// separator after each turn ("<|im_end|>" or "<|im_end|>\n"); the system
  /// message is default_system.
  std::string system_prefix, user_role, assistant_role, separator;
};

/// What a template writes for {{ bos_token }} / {{ eos_token }} (the tokenizer's).
struct ChatSpecialTokens {
  std::string bos, eos;
};

/// "qwen2_vl", "llava_chatml", ...
const char* chat_style_name(ChatStyle style);

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatStyle style, ChatVariant variant = {}, std::string source_file = "")
      : style_(style), variant_(std::move(variant)), source_file_(std::move(source_file)) {}

  /// The style (and its variant) of a Jinja template source, or nullopt when
  /// it is none of the known ones.
  static std::optional<ChatTemplate> detect(const std::string& source);

  /// The template of a model folder: chat_template.jinja, else
  /// chat_template.json, else tokenizer_config.json's "chat_template"; its
  /// style must be known (Error(Unsupported) naming the file otherwise).
  /// `fallback` when the folder has none; Error(InvalidModel) when it has
  /// none and there is no fallback.
  static ChatTemplate for_folder(const std::string& model_dir, std::optional<ChatTemplate> fallback);

  /// The InternVL conversation template `name` of OpenGVLab's
  /// conversation.py ("internvl2_5", "internlm2-chat", "Hermes-2",
  /// "phi3-chat"), with its system message or `system_message` when given
  /// (config.json "system_message" overrides the template's).
  /// Error(Unsupported) naming the known ones for another name.
  static ChatTemplate internvl_conversation(const std::string& name,
                                            const std::optional<std::string>& system_message = std::nullopt);

  /// The rendered text; `tokens` fill {{ bos_token }} / {{ eos_token }}
  /// (Llama 3, Mistral). Error(InvalidArgument) for a conversation the
  /// template itself refuses (an image in a text-only template, a system turn
  /// where the revision has none, roles that do not alternate).
  std::string render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options = {},
                     const ChatSpecialTokens& tokens = {}) const;

  ChatStyle style() const { return style_; }
  const ChatVariant& variant() const { return variant_; }
  /// The file the template came from ("" for a family default).
  const std::string& source_file() const { return source_file_; }

 private:
  ChatStyle style_;
  ChatVariant variant_;
  std::string source_file_;
};

/// The template text published checkpoints ship: "qwen2_vl" (Qwen2-VL and
/// Qwen2.5-VL Instruct), "llava" (llava-1.5-*-hf), "llava_next_mistral"
/// (llava-v1.6-mistral-7b-hf), "llava_onevision" (llava-onevision-qwen2-*-ov-hf),
/// "qwen2_5_instruct", "llama3_1_instruct", "mistral_v02_instruct" (text);
/// make-random-model writes them, tests compare them with the real files.
/// Error(InvalidArgument) for another name.
const std::string& published_chat_template(const std::string& name);

}  // namespace imgjudge::tokenizer
