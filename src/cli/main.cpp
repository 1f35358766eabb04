// imgjudge: command-line front end. `imgjudge --help` lists the subcommands.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/version.hpp"

namespace {

void print_help() {
  fmt::print("imgjudge {}: zero-shot image-safety judging with multimodal LLMs\n\n",
             imgjudge::version());
  fmt::print("usage: imgjudge <command> [options]\n\ncommands:\n");
  for (const auto& command : imgjudge::cli::commands()) {
    fmt::print("  {:<26} {}\n", command.name, command.summary);
  }
  fmt::print("\n`imgjudge <command> --help` shows a command's options.\n");
}

std::vector<std::string> words_of(const std::string& name) {
  std::vector<std::string> words;
  for (std::size_t start = 0; start <= name.size();) {
    std::size_t space = name.find(' ', start);
    if (space == std::string::npos) space = name.size();
    words.push_back(name.substr(start, space - start));
    start = space + 1;
  }
  return words;
}

// `imgjudge constitution` (a command group: a prefix of longer command names, never a
// command itself) lists its subcommands. Returns the exit status, or -1 if `args` does
// not start with a group.
int run_group(const std::vector<std::string>& args) {
  // The longest group prefix of args: "constitution" of "constitution frobnicate".
  std::size_t group_words = 0;
  for (const auto& command : imgjudge::cli::commands()) {
    const auto words = words_of(command.name);
    std::size_t common = 0;
    while (common + 1 < words.size() && common < args.size() && words[common] == args[common]) ++common;
    group_words = std::max(group_words, common);
  }
  if (group_words == 0) return -1;
  const std::vector<std::string> group(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(group_words));
  std::string group_name;
  for (const auto& word : group) group_name += (group_name.empty() ? "" : " ") + word;
  std::string listing;
  for (const auto& command : imgjudge::cli::commands()) {
    const auto words = words_of(command.name);
    if (words.size() > group.size() && std::equal(group.begin(), group.end(), words.begin())) {
      listing += fmt::format("  {:<26} {}\n", command.name, command.summary);
    }
  }
  const std::string help = fmt::format(
      "usage: imgjudge {} <subcommand> [options]\n\nsubcommands:\n{}\n`imgjudge {} <subcommand> --help` shows a "
      "subcommand's options.\n",
      group_name, listing, group_name);
  if (args.size() == group_words) {
    fmt::print(stderr, "imgjudge {}: a subcommand is needed\n\n{}", group_name, help);
    return 2;
  }
  const std::string& next = args[group_words];
  if (next == "--help" || next == "-h" || next == "help") {
    fmt::print("{}", help);
    return 0;
  }
  fmt::print(stderr, "imgjudge {}: unknown subcommand '{}'\n\n{}", group_name, imgjudge::cli::one_line(next), help);
  return 2;
}

bool writes_json(const imgjudge::cli::Command& command, const std::vector<std::string>& args) {
  if (command.json == imgjudge::cli::JsonOutput::Always) return true;
  if (command.json == imgjudge::cli::JsonOutput::Never) return false;
  for (const auto& arg : args) {
    if (arg == "--") break;
    if (arg == "--json") return true;
  }
  return false;
}

void print_output_error(const std::string& command, int error) {
  std::fprintf(stderr, "imgjudge %s: error [io]: cannot write the output to standard output: %s\n", command.c_str(),
               std::strerror(error));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_help();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    fmt::print("imgjudge {}\n", imgjudge::version());
    return 0;
  }
  // Longest match first: "constitution check" before a hypothetical "constitution".
  const imgjudge::cli::Command* best = nullptr;
  std::size_t best_words = 0;
  for (const auto& command : imgjudge::cli::commands()) {
    const std::vector<std::string> words = words_of(command.name);
    if (words.size() > args.size() || words.size() <= best_words) continue;
    if (std::equal(words.begin(), words.end(), args.begin())) {
      best = &command;
      best_words = words.size();
    }
  }
  if (!best) {
    if (const int status = run_group(args); status >= 0) return status;
    fmt::print(stderr, "imgjudge: unknown command '{}'; see `imgjudge --help`\n", imgjudge::cli::one_line(args[0]));
    return 2;
  }
  const std::vector<std::string> command_args(args.begin() + static_cast<std::ptrdiff_t>(best_words), args.end());
  try {
    const int status = best->run(command_args);
    // Verdicts that never reached their reader (a full disk, a closed stdout)
    // must not exit 0: the caller would read "no output" as "nothing unsafe".
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
      const int error = errno;
      print_output_error(best->name, error);
      return 2;
    }
    return status;
  } catch (const imgjudge::Error& e) {
    fmt::print(stderr, "imgjudge {}: error [{}]: {}\n", best->name,
               imgjudge::error_code_name(e.code()), imgjudge::cli::one_line(e.what()));
    if (writes_json(*best, command_args)) {
      // A reader of stdout gets the error in the same form as a per-item one.
      std::fputs(nlohmann::json{{"error", {{"code", imgjudge::error_code_name(e.code())}, {"message", e.what()}}}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                     .append("\n")
                     .c_str(),
                 stdout);
      std::fflush(stdout);
    }
    return 2;
  } catch (const std::system_error& e) {
    // fmt::print throws this when stdout cannot be written (and sets its error flag).
    if (std::ferror(stdout)) {
      print_output_error(best->name, e.code().value());
      return 2;
    }
    fmt::print(stderr, "imgjudge {}: internal error: {}\n", best->name, e.what());
    return 3;
  } catch (const std::exception& e) {
    fmt::print(stderr, "imgjudge {}: internal error: {}\n", best->name, e.what());
    return 3;
  }
}
