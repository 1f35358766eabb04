// Hugging Face config.json with typed getters. Torch-free. Families build their
// own plain Config structs from it, with the defaults of transformers' config
// classes spelled out at the call site:
//
//   auto root = HfConfig::load(dir + "/config.json");
//   auto text = root.section("text_config");          // absent -> empty, all defaults
//   cfg.hidden_size = text.get_int("hidden_size", 512);
//   cfg.hidden_act  = text.get_string("hidden_act", "quick_gelu");
//
// A JSON null counts as absent (HF writes null for unset fields). A present
// value of the wrong type is an error: Error(InvalidModel) "<file>: key
// 'text_config.hidden_size': expected an integer, found string".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imgjudge::runtime {

class HfConfig {
 public:
  /// Reads and parses a JSON object file (Error(Io) / Error(InvalidModel)).
  static HfConfig load(const std::string& path);
  /// Wraps `json` (must be an object); `file` names it in messages.
  HfConfig(nlohmann::json json, std::string file, std::string key_prefix = "");

  bool has(const std::string& key) const;  ///< Present and not null.
  bool is_null(const std::string& key) const;  ///< Present with the value null.
  /// Nested object `key` (e.g. "text_config"); an empty section when absent.
  HfConfig section(const std::string& key) const;
  /// Nested object `key` whose absent keys are looked up here: a VL config's
  /// "text_config", whose keys older checkpoints keep at the top level.
  HfConfig section_with_fallback(const std::string& key) const;

  std::int64_t get_int(const std::string& key) const;  ///< Required: throws if absent.
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const;
  double get_double(const std::string& key) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& fallback) const;

  const nlohmann::json& json() const noexcept { return json_; }
  const std::string& file() const noexcept { return file_; }
  /// "text_config.hidden_size" for key "hidden_size" inside section text_config.
  std::string qualified(const std::string& key) const { return prefix_ + key; }

 private:
  /// The config that holds `key` (this one, else the fallback chain), or null.
  const HfConfig* holder(const std::string& key) const;
  const nlohmann::json& require(const std::string& key) const;
  [[noreturn]] void type_error(const std::string& key, const char* expected) const;
  nlohmann::json json_;
  std::string file_;
  std::string prefix_;
  std::shared_ptr<const HfConfig> fallback_;
};

}  // namespace imgjudge::runtime
