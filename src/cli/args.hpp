// A small command-line parser for the imgjudge subcommands: --name VALUE,
// --name=VALUE, boolean --flag, repeatable options and positionals.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace imgjudge::cli {

class Args {
 public:
  /// `value_options`: names that take a value; `flags`: names that do not.
  /// Throws Error(InvalidArgument) for an unknown option or a missing value.
  Args(const std::vector<std::string>& argv, const std::vector<std::string>& value_options,
       const std::vector<std::string>& flags);

  bool flag(const std::string& name) const;
  std::optional<std::string> value(const std::string& name) const;  ///< Throws if given more than once.
  std::string value_or(const std::string& name, const std::string& fallback) const;
  std::string required(const std::string& name) const;  ///< Throws if absent.
  std::vector<std::string> values(const std::string& name) const;  ///< Every occurrence.
  int int_value_or(const std::string& name, int fallback) const;
  double double_value_or(const std::string& name, double fallback) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, bool> flags_;
  std::vector<std::string> positionals_;
};

}  // namespace imgjudge::cli
