// The error reporting every TOML reader of imgjudge shares (constitutions, the
// scripted backend's answer scripts): each error is one imgjudge::Error with the
// reader's code, naming the source, line and column, and unknown keys are
// errors that list the allowed ones.
#pragma once

#include <set>
#include <string>

#include <toml++/toml.h>

#include "imgjudge/error.hpp"

namespace imgjudge::util {

class TomlReader {
 public:
  /// `source` names the input in messages (a path or "<string>").
  TomlReader(std::string source, ErrorCode code) : source_(std::move(source)), code_(code) {}

  /// Throws "<source>:<line>:<column>: <what>".
  [[noreturn]] void fail(const toml::source_region& where, const std::string& what) const;
  /// Throws "<source>: <what>", for what has no position (a missing key, the size).
  [[noreturn]] void fail_at_file(const std::string& what) const;
  /// Rejects the first key of `table` not in `allowed`:
  /// "unknown key 'x' in <section> (allowed: a, b, c)".
  void check_keys(const toml::table& table, const std::set<std::string>& allowed, const std::string& section) const;
  /// Parses `text`; a syntax error fails at its position.
  toml::table parse(const std::string& text) const;

 private:
  std::string source_;
  ErrorCode code_;
};

}  // namespace imgjudge::util
