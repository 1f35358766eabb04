#include "serve/constitution_registry.hpp"

#include <exception>
#include <utility>

#include <fmt/format.h>

#include "imgjudge/error.hpp"

namespace imgjudge::serve {

StageSwitches StageSwitches::of(const JudgeOptions& options) {
  StageSwitches s;
  s.relevance = options.relevance;
  s.debias = options.debias;
  s.locator = options.locator;
  s.chains = options.chains;
  s.cascade = options.cascade;
  s.early_exit = options.early_exit;
  return s;
}

void StageSwitches::apply_to(JudgeOptions& options) const {
  options.relevance = relevance;
  options.debias = debias;
  options.locator = locator;
  options.chains = chains;
  options.cascade = cascade;
  options.early_exit = early_exit;
}

unsigned StageSwitches::key() const {
  return unsigned(relevance) | unsigned(debias) << 1 | unsigned(locator) << 2 | unsigned(chains) << 3 |
         unsigned(cascade) << 4 | unsigned(early_exit) << 5;
}

LoadedConstitution::LoadedConstitution(Constitution constitution, std::string path, Models models,
                                       JudgeOptions options)
    : path_(std::move(path)),
      models_(std::move(models)),
      options_(std::move(options)),
      judge_(std::make_shared<const Judge>(std::move(constitution), models_, options_)),
      loaded_at_(std::chrono::system_clock::now()) {}

std::shared_ptr<const Judge> LoadedConstitution::judge(const StageSwitches& switches) const {
  if (switches == StageSwitches::of(options_)) return judge_;
  std::lock_guard lock(variants_mutex_);
  auto& variant = variants_[switches.key()];
  if (!variant) {
    JudgeOptions options = options_;
    switches.apply_to(options);
    variant = std::make_shared<const Judge>(judge_->constitution(), models_, options);
  }
  return variant;
}

namespace {

Constitution read_constitution(const std::string& path) {
  return path.empty() ? Constitution::builtin_default() : Constitution::from_file(path);
}

}  // namespace

ConstitutionRegistry::ConstitutionRegistry(std::vector<std::string> paths, Models models, JudgeOptions options)
    : paths_(std::move(paths)), models_(std::move(models)), options_(std::move(options)) {
  if (paths_.empty()) paths_.push_back("");  // the bundled default
  std::map<std::string, std::string> path_of_name;
  for (const auto& path : paths_) {
    Constitution constitution = read_constitution(path);
    const auto [it, inserted] = path_of_name.emplace(constitution.name, path);
    if (!inserted) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{} and {} both define the constitution '{}'; a request names a constitution by "
                              "its name, so each needs its own",
                              it->second, path, constitution.name));
    }
    entries_.push_back(std::make_shared<const LoadedConstitution>(std::move(constitution), path, models_, options_));
  }
}

std::vector<ReloadOutcome> ConstitutionRegistry::reload() {
  std::lock_guard reload_lock(reload_mutex_);
  std::vector<std::shared_ptr<const LoadedConstitution>> next = all();
  std::vector<ReloadOutcome> outcomes;
  for (std::size_t i = 0; i < paths_.size(); ++i) {
    ReloadOutcome outcome;
    outcome.path = paths_[i];
    try {
      if (paths_[i].empty()) {
        outcome.ok = true;  // the bundled default does not change while the server runs
      } else {
        Constitution constitution = Constitution::from_file(paths_[i]);
        for (std::size_t j = 0; j < next.size(); ++j) {
          if (j != i && next[j]->constitution().name == constitution.name) {
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("{} now defines the constitution '{}', which {} already defines", paths_[i],
                                    constitution.name, paths_[j].empty() ? "the bundled default" : paths_[j]));
          }
        }
        outcome.changed = constitution.hash != next[i]->constitution().hash;
        if (outcome.changed) {
          next[i] = std::make_shared<const LoadedConstitution>(std::move(constitution), paths_[i], models_, options_);
        }
        outcome.ok = true;
      }
    } catch (const Error& e) {
      outcome.error_code = error_code_name(e.code());
      outcome.error_message = e.what();
    } catch (const std::exception& e) {
      // Not an imgjudge::Error (an allocation that failed building the Judge): the old one stays too.
      outcome.error_code = error_code_name(ErrorCode::Internal);
      outcome.error_message = e.what();
    }
    outcome.name = next[i]->constitution().name;
    outcome.version = next[i]->constitution().version;
    outcome.hash = next[i]->constitution().hash;
    outcomes.push_back(std::move(outcome));
  }
  std::lock_guard lock(mutex_);
  entries_ = std::move(next);
  return outcomes;
}

std::shared_ptr<const LoadedConstitution> ConstitutionRegistry::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  if (name.empty()) return entries_.front();
  for (const auto& entry : entries_) {
    if (entry->constitution().name == name) return entry;
  }
  return nullptr;
}

std::vector<std::shared_ptr<const LoadedConstitution>> ConstitutionRegistry::all() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

}  // namespace imgjudge::serve
