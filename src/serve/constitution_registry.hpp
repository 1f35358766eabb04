// The constitutions `imgjudge serve` judges by, over one shared set of models,
// and their reloading on SIGHUP: a file that no longer loads is rejected and
// its previous version kept, and a request always holds the Judge it started
// with, so a reload never disturbs one in flight.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/judge.hpp"

namespace imgjudge::serve {

/// The stage switches of JudgeOptions, as a request may set them (`relevance=false`).
struct StageSwitches {
  bool relevance = true, debias = true, locator = true, chains = true, cascade = true, early_exit = true;
  static StageSwitches of(const JudgeOptions& options);
  void apply_to(JudgeOptions& options) const;
  unsigned key() const;  ///< One bit per switch.
  bool operator==(const StageSwitches& other) const { return key() == other.key(); }
};

/// One constitution as loaded from its file (or the bundled default), with its Judges.
class LoadedConstitution {
 public:
  /// Builds the Judge with `options` (the server's stage switches): the
  /// image-independent work (rule embeddings, m0 of every statement) runs here.
  LoadedConstitution(Constitution constitution, std::string path, Models models, JudgeOptions options);

  const Constitution& constitution() const noexcept { return judge_->constitution(); }
  const std::string& path() const noexcept { return path_; }  ///< Empty for the bundled default.
  std::chrono::system_clock::time_point loaded_at() const noexcept { return loaded_at_; }

  /// The Judge for `switches`: the server's own, or one built on first use for
  /// another combination (as costly as a reload; kept for later requests).
  std::shared_ptr<const Judge> judge(const StageSwitches& switches) const;

 private:
  std::string path_;
  Models models_;
  JudgeOptions options_;
  std::shared_ptr<const Judge> judge_;
  std::chrono::system_clock::time_point loaded_at_;
  mutable std::mutex variants_mutex_;  // held while a variant is built: one build at a time
  mutable std::map<unsigned, std::shared_ptr<const Judge>> variants_;
};

/// What a reload did to one file.
struct ReloadOutcome {
  std::string path;
  bool ok = false;
  bool changed = false;       ///< The constitution's hash differs from the one served before.
  std::string name, version, hash;  ///< Of the constitution served after the reload.
  std::string error_code, error_message;  ///< When rejected.
};

class ConstitutionRegistry {
 public:
  /// Loads every file (none: the bundled default) and builds its Judge. Any
  /// error is thrown: a server does not start with a constitution it cannot serve.
  /// Two files with the same constitution name are Error(InvalidArgument).
  ConstitutionRegistry(std::vector<std::string> paths, Models models, JudgeOptions options);

  /// Reads every file again. A file that fails (unreadable, invalid, a name
  /// another file already has) keeps its previous constitution. Requests in
  /// flight keep the Judge they hold; new ones get the new Judges.
  std::vector<ReloadOutcome> reload();

  /// By name; an empty name is the first file's constitution. Null if unknown.
  std::shared_ptr<const LoadedConstitution> find(const std::string& name) const;
  /// In the order of the files.
  std::vector<std::shared_ptr<const LoadedConstitution>> all() const;

 private:
  std::vector<std::string> paths_;
  Models models_;
  JudgeOptions options_;
  mutable std::mutex mutex_;  // guards entries_ (swapped whole, never changed in place)
  std::vector<std::shared_ptr<const LoadedConstitution>> entries_;  // one per path, same order
  std::mutex reload_mutex_;   // one reload at a time
};

}  // namespace imgjudge::serve
