#include "util/toml_reader.hpp"

#include <fmt/format.h>

namespace imgjudge::util {

void TomlReader::fail(const toml::source_region& where, const std::string& what) const {
  throw Error(code_, fmt::format("{}:{}:{}: {}", source_, where.begin.line, where.begin.column, what));
}

void TomlReader::fail_at_file(const std::string& what) const {
  throw Error(code_, fmt::format("{}: {}", source_, what));
}

void TomlReader::check_keys(const toml::table& table, const std::set<std::string>& allowed,
                            const std::string& section) const {
  for (auto&& [key, value] : table) {
    if (allowed.count(std::string(key.str())) != 0) continue;
    std::string list;
    for (const auto& name : allowed) list += (list.empty() ? "" : ", ") + name;
    fail(key.source(), fmt::format("unknown key '{}' in {} (allowed: {})", key.str(), section, list));
  }
}

toml::table TomlReader::parse(const std::string& text) const {
  try {
    return toml::parse(text, source_);
  } catch (const toml::parse_error& e) {
    fail(e.source(), fmt::format("TOML syntax error: {}", e.description()));
  }
}

}  // namespace imgjudge::util
