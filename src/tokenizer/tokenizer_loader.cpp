// Building a tokenizer pipeline from a model folder: tokenizer.json (HF fast
// format) or the slow classes' vocab.json + merges.txt + tokenizer_config.json.
#include <algorithm>
#include <limits>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "imgjudge/error.hpp"
#include "tokenizer/pipeline.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/unicode_text.hpp"
#include "util/files.hpp"
#include "util/json.hpp"

namespace imgjudge::tokenizer {
namespace {

using nlohmann::json;
using Impl = Tokenizer::Impl;

constexpr std::size_t kMaxTokenizerFileBytes = 256u << 20;

// The pre-tokenizer regexes of the reference slow classes.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kClipPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
// CLIPTokenizer keeps only this many merges (49152 ids - 256 bytes - 2 specials).
constexpr std::size_t kClipMergeLimit = 49152 - 256 - 2;

json parse_json_file(const std::string& path) {
  if (!util::file_exists(path)) throw Error(ErrorCode::InvalidModel, fmt::format("{}: file not found", path));
  return util::parse_json(util::read_file_text(path, kMaxTokenizerFileBytes), path, ErrorCode::InvalidModel);
}

[[noreturn]] void bad_field(const std::string& origin, const std::string& field, const std::string& problem) {
  throw Error(ErrorCode::InvalidModel, fmt::format("{}: {} {}", origin, field, problem));
}

std::string string_field(const json& object, const char* key, const std::string& origin, const std::string& where,
                         const std::string& fallback = "") {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  if (!found->is_string()) bad_field(origin, where + "." + key, "must be a string");
  return found->get<std::string>();
}

bool bool_field(const json& object, const char* key, const std::string& origin, const std::string& where,
                bool fallback = false) {
  const auto found = object.find(key);
  if (found == object.end() || found->is_null()) return fallback;
  if (!found->is_boolean()) bad_field(origin, where + "." + key, "must be true or false");
  return found->get<bool>();
}

BpeModel::Vocab parse_vocab(const json& vocab, const std::string& origin, const std::string& where) {
  if (!vocab.is_object()) bad_field(origin, where, "must be an object of token -> id");
  BpeModel::Vocab out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() > std::numeric_limits<std::int32_t>::max()) {
      bad_field(origin, fmt::format("{} entry '{}'", where, token), "must have a non-negative integer id");
    }
    out.emplace(token, static_cast<std::int32_t>(id.get<long long>()));
  }
  return out;
}

// merges.txt: an optional "#version" first line, then "left right" per line.
BpeModel::Merges parse_merges_txt(const std::string& path, std::size_t limit) {
  if (!util::file_exists(path)) throw Error(ErrorCode::InvalidModel, fmt::format("{}: file not found", path));
  const std::string text = util::read_file_text(path, kMaxTokenizerFileBytes);
  BpeModel::Merges merges;
  std::size_t line_number = 0;
  for (std::size_t start = 0; start < text.size() && merges.size() < limit;) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    ++line_number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || (line_number == 1 && line.substr(0, 9) == "#version:")) continue;
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || line.find(' ', space + 1) != std::string_view::npos) {
      throw Error(ErrorCode::InvalidModel,
                  fmt::format("{}: line {}: expected two tokens separated by one space, got '{}'", path, line_number,
                              std::string(line.substr(0, 80))));
    }
    unicode::check_utf8(line, fmt::format("{} line {}", path, line_number));
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
  }
  return merges;
}

// tokenizer_config.json names special tokens as a string or an AddedToken
// dict {"content": ...}; null means "none".
std::optional<std::string> special_token_name(const json& config, const char* key, const std::string& origin,
                                              std::optional<std::string> class_default) {
  const auto found = config.find(key);
  if (found == config.end()) return class_default;
  if (found->is_null()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  if (found->is_object()) return string_field(*found, "content", origin, key);
  bad_field(origin, key, "must be a string, an AddedToken object or null");
}

std::optional<std::size_t> max_length_field(const json& config) {
  const auto found = config.find("model_max_length");
  if (found == config.end() || !found->is_number()) return std::nullopt;
  const double value = found->get<double>();
  // HF writes 1e30 for "no limit".
  if (value < 1 || value > 1e9) return std::nullopt;
  return static_cast<std::size_t>(value);
}

AddedToken parse_added_token(const json& entry, std::int32_t id, const std::string& origin, const std::string& where) {
  if (!entry.is_object()) bad_field(origin, where, "must be an object");
  AddedToken token;
  token.id = id;
  token.content = string_field(entry, "content", origin, where);
  if (token.content.empty()) bad_field(origin, where + ".content", "must be a non-empty string");
  unicode::check_utf8(token.content, origin + " " + where);
  token.special = bool_field(entry, "special", origin, where);
  token.lstrip = bool_field(entry, "lstrip", origin, where);
  token.rstrip = bool_field(entry, "rstrip", origin, where);
  token.normalized = bool_field(entry, "normalized", origin, where);
  token.single_word = bool_field(entry, "single_word", origin, where);
  return token;
}

// The added tokens of a slow (non tokenizer.json) folder: tokenizer_config.json's
// added_tokens_decoder (id -> AddedToken), then the older added_tokens.json
// (content -> id) for ids not given already.
void add_slow_added_tokens(Impl& impl, const json& config, const std::string& config_path, const std::string& dir) {
  const auto decoder_entries = config.find("added_tokens_decoder");
  if (decoder_entries != config.end() && decoder_entries->is_object()) {
    for (const auto& [key, entry] : decoder_entries->items()) {
      std::int32_t id = 0;
      try {
        id = std::stoi(key);
      } catch (const std::exception&) {
        bad_field(config_path, "added_tokens_decoder key '" + key + "'", "must be an integer id");
      }
      impl.add_token(parse_added_token(entry, id, config_path, "added_tokens_decoder." + key));
    }
  }
  const std::string added_path = util::join_path(dir, "added_tokens.json");
  if (util::file_exists(added_path)) {
    for (const auto& [content, id] : parse_vocab(parse_json_file(added_path), added_path, "added tokens")) {
      if (impl.added_by_id.count(id)) continue;
      AddedToken token;
      token.content = content;
      token.id = id;
      impl.add_token(token);
    }
  }
}

std::optional<std::int32_t> id_of(const Impl& impl, const std::string& token) {
  const auto added = impl.added_by_content.find(token);
  if (added != impl.added_by_content.end()) return impl.added_tokens[added->second].id;
  return impl.base_token_to_id(token);
}

// Reads bos/eos/pad/unk names from a config and resolves them to ids. A
// named special token is matched in text and skipped by decode(skip_special)
// even where added_tokens_decoder does not list it (the slow classes do so).
struct SpecialNames {
  std::optional<std::string> bos, eos, pad, unk;
  std::vector<std::string> additional;
};

SpecialNames read_special_names(const json& config, const std::string& origin, const SpecialNames& defaults) {
  SpecialNames names;
  names.bos = special_token_name(config, "bos_token", origin, defaults.bos);
  names.eos = special_token_name(config, "eos_token", origin, defaults.eos);
  names.pad = special_token_name(config, "pad_token", origin, defaults.pad);
  names.unk = special_token_name(config, "unk_token", origin, defaults.unk);
  const auto additional = config.find("additional_special_tokens");
  if (additional != config.end() && additional->is_array()) {
    for (const json& entry : *additional) {
      if (entry.is_string()) names.additional.push_back(entry.get<std::string>());
      else if (entry.is_object()) names.additional.push_back(string_field(entry, "content", origin, "additional_special_tokens"));
    }
  }
  return names;
}

void register_special_names(Impl& impl, const SpecialNames& names) {
  std::vector<std::string> all;
  for (const auto* name : {&names.bos, &names.eos, &names.unk, &names.pad}) {
    if (*name) all.push_back(**name);
  }
  all.insert(all.end(), names.additional.begin(), names.additional.end());
  for (const std::string& content : all) {
    auto id = id_of(impl, content);
    AddedToken token;
    if (id) {
      const auto existing = impl.added_by_id.find(*id);
      if (existing != impl.added_by_id.end()) token = impl.added_tokens[existing->second];
    } else {
      // Like the Python classes, a special token missing from the files is
      // appended as a new token after all existing ids.
      const std::size_t end = std::max<std::size_t>(impl.base_id_end(), impl.added_tokens.empty() ? 0 :
                                                    static_cast<std::size_t>(impl.added_tokens.back().id) + 1);
      id = static_cast<std::int32_t>(end);
    }
    token.id = *id;
    token.content = content;
    token.special = true;
    impl.add_token(token);
    impl.index_added_tokens();
  }
  const auto resolve = [&](const std::optional<std::string>& name) -> std::optional<std::int32_t> {
    if (!name) return std::nullopt;
    return id_of(impl, *name);
  };
  impl.bos = resolve(names.bos);
  impl.eos = resolve(names.eos);
  impl.pad = resolve(names.pad);
  impl.unk = resolve(names.unk);
}

std::shared_ptr<const UnicodeRegex> make_regex(std::string_view pattern, bool caseless, const std::string& origin) {
  return std::make_shared<const UnicodeRegex>(pattern, caseless, origin);
}

// ---------------------------------------------------------------- slow files

std::shared_ptr<Impl> load_slow(const std::string& dir) {
  const std::string vocab_path = util::join_path(dir, "vocab.json");
  const std::string merges_path = util::join_path(dir, "merges.txt");
  const std::string config_path = util::join_path(dir, "tokenizer_config.json");
  if (!util::file_exists(vocab_path)) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: file not found (a tokenizer needs tokenizer.json, or vocab.json + merges.txt)", vocab_path));
  }
  if (!util::file_exists(merges_path)) throw Error(ErrorCode::InvalidModel, fmt::format("{}: file not found", merges_path));
  const json config = util::file_exists(config_path) ? parse_json_file(config_path) : json::object();
  if (!config.is_object()) bad_field(config_path, "top level", "must be a JSON object");

  std::string tokenizer_class = string_field(config, "tokenizer_class", config_path, "tokenizer_class");
  if (tokenizer_class.size() > 4 && tokenizer_class.compare(tokenizer_class.size() - 4, 4, "Fast") == 0) {
    tokenizer_class.resize(tokenizer_class.size() - 4);
  }
  auto impl = std::make_shared<Impl>();
  SpecialNames defaults;
  BpeOptions bpe;
  std::size_t merge_limit = std::numeric_limits<std::size_t>::max();
  if (tokenizer_class == "CLIPTokenizer") {
    impl->flavour = "clip";
    defaults.bos = "<|startoftext|>";
    defaults.eos = defaults.unk = defaults.pad = "<|endoftext|>";
    bpe.end_of_word_suffix = "</w>";
    merge_limit = kClipMergeLimit;
  } else if (tokenizer_class == "Qwen2Tokenizer") {
    impl->flavour = "qwen2";
    defaults.eos = defaults.unk = defaults.pad = "<|endoftext|>";
  } else {
    // GPT2Tokenizer and the byte-level BPE classes derived from it.
    impl->flavour = "gpt2";
    defaults.bos = defaults.eos = defaults.unk = "<|endoftext|>";
  }

  const json vocab_json = parse_json_file(vocab_path);
  BpeModel::Vocab vocab = parse_vocab(vocab_json, vocab_path, "vocabulary");
  const BpeModel::Merges merges = parse_merges_txt(merges_path, merge_limit);
  const SpecialNames names = read_special_names(config, config_path, defaults);
  if (names.unk && vocab.count(*names.unk)) bpe.unk_token = names.unk;
  impl->model = std::make_unique<BpeModel>(std::move(vocab), merges, bpe, vocab_path);

  add_slow_added_tokens(*impl, config, config_path, dir);
  // Indexed while the normalizer is still empty: the Python classes look
  // for added tokens by their content, whatever their `normalized` flag.
  impl->index_added_tokens();
  register_special_names(*impl, names);
  impl->model_max_length = max_length_field(config);
  impl->clean_up_tokenization_spaces = bool_field(config, "clean_up_tokenization_spaces", config_path, "config");

  // Decode: added tokens that are not special, and additional special tokens
  // beyond the base vocab, are kept out of the byte-level decoding.
  std::unordered_set<std::string> special_contents;
  for (const auto* name : {&names.bos, &names.eos, &names.unk, &names.pad}) {
    if (*name) special_contents.insert(**name);
  }
  special_contents.insert(names.additional.begin(), names.additional.end());
  for (const AddedToken& token : impl->added_tokens) {
    if (!special_contents.count(token.content)) impl->legacy_decode_ids.insert(token.id);
  }
  for (const std::string& content : names.additional) {
    const auto id = id_of(*impl, content);
    if (id && *id >= static_cast<std::int32_t>(impl->model->vocab_size())) impl->legacy_decode_ids.insert(*id);
  }

  const std::string origin = config_path;
  if (impl->flavour == "clip") {
    impl->normalizer.push_back({NormalizerStep::Kind::BertCleanup, nullptr, "", false, false});
    impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::Split, make_regex(kClipPattern, true, origin),
                                   SplitBehavior::Removed, true});
    impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::ByteLevel, nullptr, SplitBehavior::Isolated, false});
    impl->decoder = {{DecoderStep::Kind::ByteLevel, "", "", 0, 0},
                     {DecoderStep::Kind::Replace, "</w>", " ", 0, 0},
                     {DecoderStep::Kind::PythonStrip, "", "", 0, 0}};
    impl->spaces_between_special_tokens = true;
    if (impl->bos) impl->prefix_ids.push_back(*impl->bos);
    if (impl->eos) impl->suffix_ids.push_back(*impl->eos);
  } else {
    const bool qwen2 = impl->flavour == "qwen2";
    if (qwen2) impl->prepare.push_back({NormalizerStep::Kind::Nfc, nullptr, "", false, false});
    if (bool_field(config, "add_prefix_space", config_path, "config")) {
      impl->prepare.push_back({NormalizerStep::Kind::Prepend, nullptr, " ", false, false});
    }
    impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::Split,
                                   make_regex(qwen2 ? kQwen2Pattern : kGpt2Pattern, false, origin),
                                   SplitBehavior::Removed, true});
    impl->pre_tokenizer.push_back({PreTokenizerStep::Kind::ByteLevel, nullptr, SplitBehavior::Isolated, false});
    impl->decoder = {{DecoderStep::Kind::ByteLevel, "", "", 0, 0}};
    impl->spaces_between_special_tokens = !qwen2;
    if (!qwen2 && bool_field(config, "add_bos_token", config_path, "config") && impl->bos) {
      impl->prefix_ids.push_back(*impl->bos);
    }
  }
  return impl;
}

// ------------------------------------------------------------ tokenizer.json

std::shared_ptr<const UnicodeRegex> pattern_field(const json& object, const std::string& origin, const std::string& where,
                                                  bool caseless = false) {
  const auto found = object.find("pattern");
  if (found == object.end() || !found->is_object()) bad_field(origin, where + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
  if (found->contains("Regex") && (*found)["Regex"].is_string()) {
    return make_regex((*found)["Regex"].get<std::string>(), caseless, origin + " " + where);
  }
  if (found->contains("String") && (*found)["String"].is_string()) {
    return make_regex(UnicodeRegex::escape((*found)["String"].get<std::string>()), caseless, origin + " " + where);
  }
  bad_field(origin, where + ".pattern", "must be {\"Regex\": ...} or {\"String\": ...}");
}

void parse_normalizer(const json& node, const std::string& origin, const std::string& where,
                      std::vector<NormalizerStep>& steps) {
  if (node.is_null()) return;
  const std::string type = string_field(node, "type", origin, where);
  if (type == "Sequence") {
    const auto& list = node.at("normalizers");
    for (std::size_t i = 0; i < list.size(); ++i) {
      parse_normalizer(list[i], origin, fmt::format("{}.normalizers[{}]", where, i), steps);
    }
  } else if (type == "NFC") {
    steps.push_back({NormalizerStep::Kind::Nfc, nullptr, "", false, false});
  } else if (type == "NFD") {
    steps.push_back({NormalizerStep::Kind::Nfd, nullptr, "", false, false});
  } else if (type == "NFKC") {
    steps.push_back({NormalizerStep::Kind::Nfkc, nullptr, "", false, false});
  } else if (type == "NFKD") {
    steps.push_back({NormalizerStep::Kind::Nfkd, nullptr, "", false, false});
  } else if (type == "Lowercase") {
    steps.push_back({NormalizerStep::Kind::Lowercase, nullptr, "", false, false});
  } else if (type == "Replace") {
    steps.push_back({NormalizerStep::Kind::Replace, pattern_field(node, origin, where),
                     string_field(node, "content", origin, where), false, false});
  } else if (type == "Strip") {
    steps.push_back({NormalizerStep::Kind::Strip, nullptr, "", bool_field(node, "strip_left", origin, where, true),
                     bool_field(node, "strip_right", origin, where, true)});
  } else if (type == "Prepend") {
    steps.push_back({NormalizerStep::Kind::Prepend, nullptr, string_field(node, "prepend", origin, where), false, false});
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: {} type '{}' is not supported", origin, where, type));
  }
}

SplitBehavior parse_behavior(const json& node, const std::string& origin, const std::string& where) {
  const std::string behavior = string_field(node, "behavior", origin, where, "Isolated");
  if (behavior == "Removed") return SplitBehavior::Removed;
  if (behavior == "Isolated") return SplitBehavior::Isolated;
  if (behavior == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (behavior == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (behavior == "Contiguous") return SplitBehavior::Contiguous;
  bad_field(origin, where + ".behavior", "'" + behavior + "' is not a known split behavior");
}

// Metaspace (pre-tokenizer and decoder share the JSON) as the Rust
// deserializer reads it: prepend_scheme defaults to "always" and split to
// true; the legacy add_prefix_space=false means "never" and contradicts any
// other declared scheme.
struct MetaspaceSettings {
  std::string replacement;
  PrependScheme prepend_scheme = PrependScheme::Always;
  bool split = true;
};

MetaspaceSettings parse_metaspace(const json& node, const std::string& origin, const std::string& where) {
  MetaspaceSettings settings;
  settings.replacement = string_field(node, "replacement", origin, where);
  unicode::check_utf8(settings.replacement, origin + " " + where + ".replacement");
  std::size_t first_length = 0;
  if (!settings.replacement.empty()) unicode::decode_at(settings.replacement, 0, first_length);
  if (settings.replacement.empty() || first_length != settings.replacement.size()) {
    bad_field(origin, where + ".replacement", "must be exactly one character");
  }
  const std::string scheme = string_field(node, "prepend_scheme", origin, where, "always");
  if (scheme == "always") {
    settings.prepend_scheme = PrependScheme::Always;
  } else if (scheme == "first") {
    settings.prepend_scheme = PrependScheme::First;
  } else if (scheme == "never") {
    settings.prepend_scheme = PrependScheme::Never;
  } else {
    bad_field(origin, where + ".prepend_scheme", "must be \"always\", \"first\" or \"never\", not '" + scheme + "'");
  }
  const auto add_prefix_space = node.find("add_prefix_space");
  if (add_prefix_space != node.end() && add_prefix_space->is_boolean() && !add_prefix_space->get<bool>()) {
    if (settings.prepend_scheme != PrependScheme::Never) {
      bad_field(origin, where + ".add_prefix_space", "is false but prepend_scheme is not \"never\"");
    }
  }
  settings.split = bool_field(node, "split", origin, where, true);
  return settings;
}

void parse_pre_tokenizer(const json& node, const std::string& origin, const std::string& where,
                         std::vector<PreTokenizerStep>& steps) {
  if (node.is_null()) return;
  const std::string type = string_field(node, "type", origin, where);
  if (type == "Sequence") {
    const auto& list = node.at("pretokenizers");
    for (std::size_t i = 0; i < list.size(); ++i) {
      parse_pre_tokenizer(list[i], origin, fmt::format("{}.pretokenizers[{}]", where, i), steps);
    }
  } else if (type == "Split") {
    steps.push_back({PreTokenizerStep::Kind::Split, pattern_field(node, origin, where), parse_behavior(node, origin, where),
                     bool_field(node, "invert", origin, where)});
  } else if (type == "ByteLevel") {
    // As in the reference: the prefix space first, then the GPT-2 regex
    // split (use_regex), then the byte mapping.
    if (bool_field(node, "add_prefix_space", origin, where, true)) {
      steps.push_back({PreTokenizerStep::Kind::PrefixSpace, nullptr, SplitBehavior::Isolated, false});
    }
    if (bool_field(node, "use_regex", origin, where, true)) {
      steps.push_back({PreTokenizerStep::Kind::Split, make_regex(kGpt2Pattern, false, origin), SplitBehavior::Isolated,
                       false});
    }
    steps.push_back({PreTokenizerStep::Kind::ByteLevel, nullptr, SplitBehavior::Isolated, false});
  } else if (type == "Metaspace") {
    const MetaspaceSettings metaspace = parse_metaspace(node, origin, where);
    PreTokenizerStep step{PreTokenizerStep::Kind::Metaspace, nullptr, SplitBehavior::MergedWithNext, false};
    step.replacement = metaspace.replacement;
    step.prepend_scheme = metaspace.prepend_scheme;
    step.split_on_replacement = metaspace.split;
    steps.push_back(std::move(step));
  } else if (type == "Digits") {
    const bool individual = bool_field(node, "individual_digits", origin, where);
    steps.push_back({PreTokenizerStep::Kind::Split, make_regex(individual ? R"(\p{N})" : R"(\p{N}+)", false, origin),
                     SplitBehavior::Isolated, false});
  } else if (type == "WhitespaceSplit") {
    steps.push_back({PreTokenizerStep::Kind::Split, make_regex(R"(\s+)", false, origin), SplitBehavior::Removed, false});
  } else if (type == "Whitespace") {
    steps.push_back({PreTokenizerStep::Kind::Split, make_regex(R"(\w+|[^\w\s]+)", false, origin),
                     SplitBehavior::Removed, true});
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: {} type '{}' is not supported", origin, where, type));
  }
}

void parse_decoder(const json& node, const std::string& origin, const std::string& where, std::vector<DecoderStep>& steps) {
  if (node.is_null()) return;
  const std::string type = string_field(node, "type", origin, where);
  if (type == "Sequence") {
    const auto& list = node.at("decoders");
    for (std::size_t i = 0; i < list.size(); ++i) parse_decoder(list[i], origin, fmt::format("{}.decoders[{}]", where, i), steps);
  } else if (type == "ByteLevel") {
    steps.push_back({DecoderStep::Kind::ByteLevel, "", "", 0, 0});
  } else if (type == "BPEDecoder") {
    steps.push_back({DecoderStep::Kind::BpeSuffix, string_field(node, "suffix", origin, where, "</w>"), "", 0, 0});
  } else if (type == "Fuse") {
    steps.push_back({DecoderStep::Kind::Fuse, "", "", 0, 0});
  } else if (type == "Replace") {
    // The Rust decoder is the Replace normalizer run on each token: a String
    // pattern is literal, a Regex pattern a regex.
    DecoderStep step{DecoderStep::Kind::Replace, "", string_field(node, "content", origin, where), 0, 0};
    const auto& pattern = node.at("pattern");
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      step.pattern = pattern["String"].get<std::string>();
    } else {
      step.regex = pattern_field(node, origin, where);
    }
    steps.push_back(std::move(step));
  } else if (type == "Strip") {
    steps.push_back({DecoderStep::Kind::Strip, "", string_field(node, "content", origin, where, " "),
                     node.value("start", std::size_t{0}), node.value("stop", std::size_t{0})});
  } else if (type == "ByteFallback") {
    steps.push_back({DecoderStep::Kind::ByteFallback, "", "", 0, 0});
  } else if (type == "Metaspace") {
    const MetaspaceSettings metaspace = parse_metaspace(node, origin, where);
    DecoderStep step{DecoderStep::Kind::Metaspace, metaspace.replacement, " ", 0, 0};
    step.drop_replacement_in_first_token = metaspace.prepend_scheme != PrependScheme::Never;
    steps.push_back(std::move(step));
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: {} type '{}' is not supported", origin, where, type));
  }
}

// The single-sequence part of the post-processor: what goes before and after.
void parse_post_processor(const json& node, Impl& impl, const std::string& origin, const std::string& where) {
  if (node.is_null()) return;
  const std::string type = string_field(node, "type", origin, where);
  const auto special_id = [&](const json& pair, const std::string& field) {
    // RobertaProcessing/BertProcessing: ["<s>", 0].
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer()) bad_field(origin, where + "." + field, "must be [token, id]");
    return pair[1].get<std::int32_t>();
  };
  if (type == "Sequence") {
    const auto& list = node.at("processors");
    for (std::size_t i = 0; i < list.size(); ++i) parse_post_processor(list[i], impl, origin, fmt::format("{}.processors[{}]", where, i));
  } else if (type == "ByteLevel") {
    // Offsets only.
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    impl.prefix_ids.push_back(special_id(node.at("cls"), "cls"));
    impl.suffix_ids.push_back(special_id(node.at("sep"), "sep"));
  } else if (type == "TemplateProcessing") {
    const auto& single = node.at("single");
    bool after_sequence = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken")) bad_field(origin, where + ".single", "items must be Sequence or SpecialToken");
      const std::string name = item["SpecialToken"].at("id").get<std::string>();
      const auto& specials = node.at("special_tokens");
      if (!specials.contains(name)) bad_field(origin, where + ".special_tokens", "lacks '" + name + "'");
      for (const json& id : specials[name].at("ids")) {
        (after_sequence ? impl.suffix_ids : impl.prefix_ids).push_back(id.get<std::int32_t>());
      }
    }
  } else {
    throw Error(ErrorCode::Unsupported, fmt::format("{}: {} type '{}' is not supported", origin, where, type));
  }
}

// `dropout` randomises merges (training only); inference files have null.
void check_dropout(const json& model, const std::string& path) {
  const auto dropout = model.find("dropout");
  if (dropout == model.end() || dropout->is_null()) return;
  if (!dropout->is_number() || dropout->get<double>() < 0.0 || dropout->get<double>() > 1.0) {
    bad_field(path, "model.dropout", "must be null or a number in [0, 1]");
  }
  if (dropout->get<double>() > 0.0) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: model.dropout {} makes encoding random; only null or 0 is supported", path,
                            dropout->get<double>()));
  }
}

// transformers' LlamaTokenizerFast (AutoTokenizer maps "LlamaTokenizer" to
// it when tokenizer.json exists) changes what tokenizer.json says: class
// default special tokens, and a post-processor of its own (below).
bool is_llama_class(const std::string& tokenizer_class) {
  return tokenizer_class == "LlamaTokenizer" || tokenizer_class == "LlamaTokenizerFast";
}

SpecialNames llama_special_names() {
  SpecialNames names;
  names.bos = "<s>";
  names.eos = "</s>";
  names.unk = "<unk>";
  return names;
}

// A non-null add_prefix_space makes LlamaTokenizerFast rebuild itself from
// tokenizer.model with sentencepiece (from_slow=True), ignoring
// tokenizer.json; that conversion is not implemented here.
void check_llama_config_uses_tokenizer_json(const json& config, const std::string& config_path) {
  const auto add_prefix_space = config.find("add_prefix_space");
  if (add_prefix_space != config.end() && !add_prefix_space->is_null()) {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: add_prefix_space is set, which makes transformers rebuild this Llama tokenizer "
                            "from tokenizer.model (SentencePiece) and ignore tokenizer.json; that conversion is not "
                            "supported here. Save the rebuilt tokenizer once with "
                            "AutoTokenizer.from_pretrained(dir).save_pretrained(out) and remove add_prefix_space "
                            "from out/tokenizer_config.json",
                            config_path));
  }
}

// LlamaTokenizerFast.update_post_processor(), run by its __init__: the
// file's post-processor is replaced by "<bos> $A <eos>" with bos if
// add_bos_token (default true) and eos if add_eos_token (default false).
void rebuild_llama_post_processor(Impl& impl, const json& config, const std::string& config_path) {
  const bool add_bos = bool_field(config, "add_bos_token", config_path, "config", true);
  const bool add_eos = bool_field(config, "add_eos_token", config_path, "config", false);
  if (add_bos && !impl.bos) bad_field(config_path, "add_bos_token", "is true but there is no bos_token");
  if (add_eos && !impl.eos) bad_field(config_path, "add_eos_token", "is true but there is no eos_token");
  impl.prefix_ids.clear();
  impl.suffix_ids.clear();
  if (add_bos) impl.prefix_ids.push_back(*impl.bos);
  if (add_eos) impl.suffix_ids.push_back(*impl.eos);
}

std::shared_ptr<Impl> load_fast(const std::string& dir) {
  const std::string path = util::join_path(dir, "tokenizer.json");
  const json root = parse_json_file(path);
  if (!root.is_object()) bad_field(path, "top level", "must be a JSON object");
  auto impl = std::make_shared<Impl>();
  impl->flavour = "tokenizer.json";
  try {
    const json& model = root.at("model");
    const std::string type = string_field(model, "type", path, "model", "BPE");
    if (type != "BPE") {
      throw Error(ErrorCode::Unsupported, fmt::format("{}: model type '{}' is not supported (only BPE)", path, type));
    }
    BpeOptions bpe;
    bpe.reference = BpeReference::RustTokenizers;
    bpe.end_of_word_suffix = string_field(model, "end_of_word_suffix", path, "model");
    bpe.continuing_subword_prefix = string_field(model, "continuing_subword_prefix", path, "model");
    bpe.ignore_merges = bool_field(model, "ignore_merges", path, "model");
    bpe.byte_fallback = bool_field(model, "byte_fallback", path, "model");
    bpe.fuse_unk = bool_field(model, "fuse_unk", path, "model");
    const std::string unk = string_field(model, "unk_token", path, "model");
    if (!unk.empty()) bpe.unk_token = unk;
    check_dropout(model, path);
    BpeModel::Merges merges;
    const json& merge_list = model.at("merges");
    if (!merge_list.is_array()) bad_field(path, "model.merges", "must be an array");
    merges.reserve(merge_list.size());
    for (std::size_t i = 0; i < merge_list.size(); ++i) {
      const json& merge = merge_list[i];
      // Either "left right" (tokenizers < 0.20) or ["left", "right"].
      if (merge.is_string()) {
        const std::string text = merge.get<std::string>();
        const std::size_t space = text.find(' ');
        if (space == std::string::npos || space == 0 || text.find(' ', space + 1) != std::string::npos) {
          bad_field(path, fmt::format("model.merges[{}]", i), "must be two tokens separated by one space");
        }
        merges.emplace_back(text.substr(0, space), text.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        bad_field(path, fmt::format("model.merges[{}]", i), "must be \"a b\" or [\"a\", \"b\"]");
      }
    }
    impl->model = std::make_unique<BpeModel>(parse_vocab(model.at("vocab"), path, "model.vocab"), merges, bpe, path);

    // Normalized added tokens are matched as normalizer(content), so the
    // normalizer comes before the added tokens are indexed.
    parse_normalizer(root.value("normalizer", json()), path, "normalizer", impl->normalizer);
    if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
      const json& added = root["added_tokens"];
      for (std::size_t i = 0; i < added.size(); ++i) {
        const std::string where = fmt::format("added_tokens[{}]", i);
        if (!added[i].contains("id") || !added[i]["id"].is_number_integer()) bad_field(path, where + ".id", "must be an integer");
        impl->add_token(parse_added_token(added[i], added[i]["id"].get<std::int32_t>(), path, where));
      }
    }
    impl->index_added_tokens();
    parse_pre_tokenizer(root.value("pre_tokenizer", json()), path, "pre_tokenizer", impl->pre_tokenizer);
    parse_post_processor(root.value("post_processor", json()), *impl, path, "post_processor");
    parse_decoder(root.value("decoder", json()), path, "decoder", impl->decoder);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidModel, fmt::format("{}: unexpected structure: {}", path, e.what()));
  }

  // Special-token names and limits live in tokenizer_config.json.
  const std::string config_path = util::join_path(dir, "tokenizer_config.json");
  const json config = util::file_exists(config_path) ? parse_json_file(config_path) : json::object();
  if (!config.is_object()) bad_field(config_path, "top level", "must be a JSON object");
  const bool llama_class = is_llama_class(string_field(config, "tokenizer_class", config_path, "tokenizer_class"));
  if (llama_class) check_llama_config_uses_tokenizer_json(config, config_path);
  register_special_names(*impl, read_special_names(config, config_path, llama_class ? llama_special_names() : SpecialNames{}));
  if (llama_class) rebuild_llama_post_processor(*impl, config, config_path);
  impl->decode_skips_unknown_ids = true;
  impl->model_max_length = max_length_field(config);
  impl->clean_up_tokenization_spaces = bool_field(config, "clean_up_tokenization_spaces", config_path, "config");
  // These two are read outside the try above, so their types are checked here
  // (found by tests/fuzz: a string pad_id escaped as a json::type_error).
  if (!impl->pad && root.contains("padding") && root["padding"].is_object() && root["padding"].contains("pad_id")) {
    const json& pad_id = root["padding"]["pad_id"];
    if (!pad_id.is_number_integer()) bad_field(path, "padding.pad_id", "must be an integer");
    impl->pad = pad_id.get<std::int32_t>();
  }
  if (!impl->model_max_length && root.contains("truncation") && root["truncation"].is_object() &&
      root["truncation"].contains("max_length") && !root["truncation"]["max_length"].is_null()) {
    const json& max_length = root["truncation"]["max_length"];
    if (!max_length.is_number_unsigned()) bad_field(path, "truncation.max_length", "must be a non-negative integer");
    impl->model_max_length = max_length.get<std::size_t>();
    if (impl->model_max_length == std::size_t{0}) impl->model_max_length.reset();
  }
  return impl;
}

// ------------------------------------------------------------ SentencePiece

// The SentencePiece model file of a folder: tokenizer.model (Llama, InternLM2)
// or spiece.model (SigLIP, T5); "" when there is none.
std::string sentencepiece_file(const std::string& dir) {
  for (const char* name : {"tokenizer.model", "spiece.model"}) {
    const std::string path = util::join_path(dir, name);
    if (util::file_exists(path)) return path;
  }
  return "";
}

std::string tokenizer_class_of(const std::string& dir) {
  const std::string config_path = util::join_path(dir, "tokenizer_config.json");
  if (!util::file_exists(config_path)) return "";
  const json config = parse_json_file(config_path);
  if (!config.is_object()) return "";
  std::string name = string_field(config, "tokenizer_class", config_path, "tokenizer_class");
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Fast") == 0) name.resize(name.size() - 4);
  return name;
}

// A tokenizer.model / spiece.model folder as transformers' slow class of its
// tokenizer_config.json runs it (InternLM2Tokenizer, LlamaTokenizer,
// SiglipTokenizer): the model through libsentencepiece, the added tokens of
// tokenizer_config.json / added_tokens.json split off first, the class's
// special tokens and prefix rules.
std::shared_ptr<Impl> load_sentencepiece(const std::string& dir) {
  const std::string model_path = sentencepiece_file(dir);
  if (model_path.empty()) {
    throw Error(ErrorCode::InvalidModel,
                fmt::format("{}: no SentencePiece model (tokenizer.model or spiece.model)", dir));
  }
  const std::string config_path = util::join_path(dir, "tokenizer_config.json");
  const json config = util::file_exists(config_path) ? parse_json_file(config_path) : json::object();
  if (!config.is_object()) bad_field(config_path, "top level", "must be a JSON object");
  std::string tokenizer_class = tokenizer_class_of(dir);
  const bool spiece = model_path.size() >= 12 && model_path.compare(model_path.size() - 12, 12, "spiece.model") == 0;
  if (tokenizer_class.empty()) tokenizer_class = spiece ? "SiglipTokenizer" : "LlamaTokenizer";

  auto impl = std::make_shared<Impl>();
  SentencePieceRules& rules = impl->sentencepiece_rules;
  SpecialNames defaults;
  defaults.unk = "<unk>";
  defaults.eos = "</s>";
  bool keep_dummy_prefix = true;
  bool add_bos = false, add_eos = false;
  if (tokenizer_class == "InternLM2Tokenizer") {
    rules.kind = SentencePieceClass::InternLM2;
    defaults.bos = "<s>";
    defaults.pad = "</s>";
    add_bos = bool_field(config, "add_bos_token", config_path, "config", true);
    add_eos = bool_field(config, "add_eos_token", config_path, "config", false);
    impl->spaces_between_special_tokens = true;
  } else if (tokenizer_class == "LlamaTokenizer") {
    // legacy: None (absent) means True, with a warning, in transformers 4.50.
    const bool legacy = bool_field(config, "legacy", config_path, "config", true);
    rules.kind = legacy ? SentencePieceClass::LlamaLegacy : SentencePieceClass::Llama;
    rules.add_prefix_space = bool_field(config, "add_prefix_space", config_path, "config", true);
    keep_dummy_prefix = legacy;
    defaults.bos = "<s>";
    add_bos = bool_field(config, "add_bos_token", config_path, "config", true);
    add_eos = bool_field(config, "add_eos_token", config_path, "config", false);
    impl->spaces_between_special_tokens =
        bool_field(config, "spaces_between_special_tokens", config_path, "config", false);
  } else if (tokenizer_class == "SiglipTokenizer") {
    rules.kind = SentencePieceClass::Siglip;
    keep_dummy_prefix = false;
    defaults.pad = "</s>";
    add_eos = true;
    impl->suffix_if_absent = true;
    impl->spaces_between_special_tokens = true;
    if (!bool_field(config, "do_lower_case", config_path, "config", true)) {
      throw Error(ErrorCode::Unsupported, fmt::format("{}: SiglipTokenizer with do_lower_case false is not supported",
                                                      config_path));
    }
  } else {
    throw Error(ErrorCode::Unsupported,
                fmt::format("{}: tokenizer_class \"{}\" over {} is not supported (SentencePiece folders: "
                            "InternLM2Tokenizer, LlamaTokenizer, SiglipTokenizer)",
                            config_path, tokenizer_class, model_path));
  }
  impl->flavour = "sentencepiece";
  impl->sentencepiece = std::make_shared<const SentencePieceModel>(model_path, keep_dummy_prefix);

  add_slow_added_tokens(*impl, config, config_path, dir);
  impl->index_added_tokens();
  const SpecialNames names = read_special_names(config, config_path, defaults);
  register_special_names(*impl, names);
  impl->model_max_length = max_length_field(config);
  impl->clean_up_tokenization_spaces = bool_field(config, "clean_up_tokenization_spaces", config_path, "config");
  if (rules.kind == SentencePieceClass::InternLM2) {
    // InternLM2Tokenizer's bos_token_id / eos_token_id are the model's own.
    const SentencePieceModel& model = *impl->sentencepiece;
    if (model.bos_id() >= 0) impl->bos = model.bos_id();
    if (model.eos_id() >= 0) impl->eos = model.eos_id();
  }
  if (rules.kind == SentencePieceClass::Llama || rules.kind == SentencePieceClass::Siglip) {
    rules.unk_token = names.unk.value_or("<unk>");
    rules.unk_token_pieces = impl->sentencepiece->encode_pieces(rules.unk_token).size();
  }
  if (add_bos && !impl->bos) bad_field(config_path, "add_bos_token", "is true but there is no bos_token");
  if (add_eos && !impl->eos) bad_field(config_path, "eos_token", "is needed but there is none");
  if (add_bos) impl->prefix_ids.push_back(*impl->bos);
  if (add_eos) impl->suffix_ids.push_back(*impl->eos);

  // Decode as _decode does: added tokens that are not special (and
  // additional special tokens beyond the model) are joined apart.
  std::unordered_set<std::string> special_contents;
  for (const auto* name : {&names.bos, &names.eos, &names.unk, &names.pad}) {
    if (*name) special_contents.insert(**name);
  }
  special_contents.insert(names.additional.begin(), names.additional.end());
  for (const AddedToken& token : impl->added_tokens) {
    if (!special_contents.count(token.content)) impl->legacy_decode_ids.insert(token.id);
  }
  for (const std::string& content : names.additional) {
    const auto id = id_of(*impl, content);
    if (id && *id >= impl->base_id_end()) impl->legacy_decode_ids.insert(*id);
  }
  return impl;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& model_dir, TokenizerFormat format) {
  switch (format) {
    case TokenizerFormat::Fast: return Tokenizer(load_fast(model_dir));
    case TokenizerFormat::Slow: return Tokenizer(load_slow(model_dir));
    case TokenizerFormat::SentencePiece: return Tokenizer(load_sentencepiece(model_dir));
    case TokenizerFormat::Auto: break;
  }
  const bool has_fast = util::file_exists(util::join_path(model_dir, "tokenizer.json"));
  const bool has_slow = util::file_exists(util::join_path(model_dir, "vocab.json"));
  const bool has_sentencepiece = !sentencepiece_file(model_dir).empty();
  // InternVL's chat() loads InternLM2Tokenizer with use_fast=False: its
  // tokenizer.model is the reference even where a tokenizer.json lies beside it.
  if (has_sentencepiece && tokenizer_class_of(model_dir) == "InternLM2Tokenizer") {
    return Tokenizer(load_sentencepiece(model_dir));
  }
  if (has_fast) return Tokenizer(load_fast(model_dir));
  if (has_slow) return Tokenizer(load_slow(model_dir));
  if (has_sentencepiece) return Tokenizer(load_sentencepiece(model_dir));
  throw Error(ErrorCode::InvalidModel,
              fmt::format("{}: no tokenizer: the folder has none of tokenizer.json, vocab.json + merges.txt, or a "
                          "SentencePiece tokenizer.model / spiece.model",
                          model_dir));
}

}  // namespace imgjudge::tokenizer
