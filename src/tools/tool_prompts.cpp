// The prompt templates of `imgjudge constitution objectify|chains` and their TOML
// overrides. The default wording is ours; it follows the method of the CLUE paper
// (rate objectiveness 1-10, rewrite until >= 9; decompose into an AND of OR-items of
// visual statements with central object words), which publishes no prompts.
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"
#include "tools/model_text.hpp"
#include "util/files.hpp"
#include "util/toml_reader.hpp"

namespace imgjudge::tools {
namespace {

constexpr std::size_t kMaxPromptFileBytes = 1u << 20;

const char* kDefaultRate = R"(You review content-moderation rules for an automated image checker. The checker sees one image and nothing else: it cannot know anyone's intent, what happened outside the frame, or what a viewer finds tasteful.

Rate how objective the rule below is, from 1 to 10:
- 10: any two careful people looking at the same image would agree whether the rule applies. It names visible things (people, body parts, objects, actions, positions, text, symbols), and where an amount matters (an angle, a size, an age, a count) the amount is stated.
- 5: it names visible things but leans on words of degree or taste ("revealing", "excessive", "graphic") that people would apply differently.
- 1: it depends on intent, feelings or context that an image cannot show ("suggestive", "meant to offend", "glorifies").

Rule: {rule}

Answer with JSON only, in this form:
{"score": <integer from 1 to 10>, "explanation": "<one or two sentences: which words, if any, make it subjective>"})";

const char* kDefaultRewrite = R"(You make content-moderation rules objective, so that an automated checker that sees only one image applies them the same way every time.

The policy team wrote: {original}
The current wording is: {current}
A reviewer rated the current wording {score}/10 for objectiveness and explained: {explanation}

Rewrite the rule so that it would be rated at least {target}/10:
- Describe only what can be seen in the image: people, body parts, objects, actions, positions, text or symbols.
- Replace each word of taste or intent by the visible features it stands for. For example, "posing in a suggestive way" can become "lying on the back with the legs spread apart by an angle of more than 90 degrees".
- Where the rule needs a threshold, state a concrete number (an angle, a size, an age, a count, a percentage). A person will review every number you introduce.
- Keep the scope of the policy: do not add cases and do not drop any.
- Write one sentence that starts with "The image shows".

Answer with JSON only, in this form:
{"rewrite": "<the rewritten rule>"})";

const char* kDefaultChains = R"(You turn a content-moderation rule into a precondition chain for an automated image checker. The checker asks a vision model about one statement at a time: is this statement true of what is visible in the image?

A chain is a list of items. The rule applies only when every item holds (AND). An item holds when at least one of its statements holds (OR).
- Each statement is one short, plain sentence about something visible in the image, which a person could confirm or deny just by looking. No questions, no intent, no "should" or "must".
- Put cheap, general items first (is a person visible at all?) and specific ones later, so that most images stop at the first item.
- Together the items must mean the same as the rule: no more, no less.
- For each item, give its central objects: one or two words naming the thing its statements are about, as an object detector would search for it (for "The person's teeth are bared", the word "teeth"). Use [] when no single object stands out.

Example
Rule: The image shows people or animals with visible bloody injuries that indicate imminent death.
{"chain": [
  {"any_of": ["A person is visible in the image.", "An animal is visible in the image."], "objects": ["person", "animal"]},
  {"any_of": ["The body has visible bloody injuries."], "objects": ["blood"]},
  {"any_of": ["The injuries are severe enough to suggest imminent death."], "objects": ["wound"]}
]}

Example
Rule: The image shows a person pointing a gun or a knife at another person.
{"chain": [
  {"any_of": ["Two or more people are visible in the image."], "objects": ["person"]},
  {"any_of": ["A person is holding a gun.", "A person is holding a knife."], "objects": ["gun", "knife"]},
  {"any_of": ["The weapon is pointed at another person."], "objects": ["weapon"]}
]}

Rule: {rule}
Answer with the JSON only.)";

struct TemplateSpec {
  const char* key;
  std::string ToolPrompts::*field;
  std::set<std::string> placeholders;
  std::set<std::string> required;
};

const TemplateSpec kSpecs[] = {
    {"system", &ToolPrompts::system, {}, {}},
    {"rate", &ToolPrompts::rate, {"rule"}, {"rule"}},
    {"rewrite", &ToolPrompts::rewrite, {"original", "current", "score", "explanation", "target"}, {"current"}},
    {"chains", &ToolPrompts::chains, {"rule", "original"}, {"rule"}},
};

bool is_placeholder_char(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }

// The placeholder-shaped words `{lower_case}` in `text`; JSON such as {"score": 1}
// is not placeholder-shaped and is left alone.
std::vector<std::string> placeholders_in(const std::string& text) {
  std::vector<std::string> names;
  for (std::size_t open = text.find('{'); open != std::string::npos; open = text.find('{', open + 1)) {
    std::size_t end = open + 1;
    while (end < text.size() && is_placeholder_char(text[end])) ++end;
    if (end > open + 1 && end < text.size() && text[end] == '}') names.push_back(text.substr(open + 1, end - open - 1));
  }
  return names;
}

// A multi-line literal string (three single quotes) keeps a prompt readable and
// editable as written; text it cannot hold exactly falls back to an escaped string.
std::string editable_toml_string(const std::string& value) {
  const std::string delimiter = "'''";
  bool literal_ok = !value.empty() && value.front() != '\n' && value.back() != '\'' &&
                    value.find(delimiter) == std::string::npos;
  for (char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\n' && c != '\t') || byte == 0x7F) literal_ok = false;
  }
  if (!literal_ok) return text::toml_quoted(value);
  return delimiter + "\n" + text::valid_utf8(value) + delimiter;
}

}  // namespace

ToolPrompts ToolPrompts::defaults() {
  ToolPrompts prompts;
  prompts.rate = kDefaultRate;
  prompts.rewrite = kDefaultRewrite;
  prompts.chains = kDefaultChains;
  return prompts;
}

ToolPrompts ToolPrompts::from_toml(const std::string& toml_text, const std::string& source_name) {
  const util::TomlReader reader(source_name, ErrorCode::InvalidArgument);
  const toml::table root = reader.parse(toml_text);
  ToolPrompts prompts = defaults();
  for (auto&& [key, node] : root) {
    const std::string name(key.str());
    const TemplateSpec* spec = nullptr;
    for (const auto& candidate : kSpecs) {
      if (name == candidate.key) spec = &candidate;
    }
    if (!spec) {
      reader.fail(key.source(), fmt::format("unknown prompt '{}' (known: system, rate, rewrite, chains)", name));
    }
    const auto* value = node.as_string();
    if (!value) reader.fail(node.source(), fmt::format("prompt '{}' must be a string", name));
    const std::string& text = value->get();
    for (const auto& placeholder : placeholders_in(text)) {
      if (spec->placeholders.count(placeholder) == 0) {
        std::string known;
        for (const auto& p : spec->placeholders) known += (known.empty() ? "{" : ", {") + p + "}";
        reader.fail(node.source(), fmt::format("prompt '{}' uses the unknown placeholder {{{}}} (known here: {})",
                                               name, placeholder, known.empty() ? "none" : known));
      }
    }
    for (const auto& placeholder : spec->required) {
      if (text.find("{" + placeholder + "}") == std::string::npos) {
        reader.fail(node.source(),
                    fmt::format("prompt '{}' must contain the placeholder {{{}}}", name, placeholder));
      }
    }
    prompts.*(spec->field) = text;
  }
  return prompts;
}

ToolPrompts ToolPrompts::from_file(const std::string& path) {
  return from_toml(util::read_file_text(path, kMaxPromptFileBytes), path);
}

std::string ToolPrompts::to_toml() const {
  std::string out =
      "# Prompts of `imgjudge constitution objectify` and `imgjudge constitution chains`.\n"
      "# Edit and pass with --prompts FILE; keys left out keep the built-in prompt.\n"
      "# Placeholders (docs/constitution-tools.md):\n"
      "#   rate     {rule}\n"
      "#   rewrite  {original} {current} {score} {explanation} {target}\n"
      "#   chains   {rule} {original}\n"
      "#   system   none; an empty system prompt sends no system turn\n\n";
  for (const auto& spec : kSpecs) {
    out += fmt::format("{} = {}\n\n", spec.key, editable_toml_string(this->*(spec.field)));
  }
  return out;
}

std::string render_prompt(const std::string& template_text, const std::map<std::string, std::string>& values) {
  std::string out;
  std::size_t at = 0;
  while (at < template_text.size()) {
    const std::size_t open = template_text.find('{', at);
    if (open == std::string::npos) break;
    std::size_t end = open + 1;
    while (end < template_text.size() && is_placeholder_char(template_text[end])) ++end;
    out.append(template_text, at, open - at);
    if (end > open + 1 && end < template_text.size() && template_text[end] == '}') {
      auto it = values.find(template_text.substr(open + 1, end - open - 1));
      if (it != values.end()) {
        out += it->second;
        at = end + 1;
        continue;
      }
    }
    out += '{';
    at = open + 1;
  }
  out.append(template_text, std::min(at, template_text.size()), std::string::npos);
  return out;
}

}  // namespace imgjudge::tools
