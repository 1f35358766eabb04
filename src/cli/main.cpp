// imgjudge: command-line front end. `imgjudge --help` lists the subcommands.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "cli/commands.hpp"
#include "imgjudge/error.hpp"
#include "imgjudge/version.hpp"

namespace {

void print_help() {
  fmt::print("imgjudge {}: zero-shot image-safety judging with multimodal LLMs\n\n",
             imgjudge::version());
  fmt::print("usage: imgjudge <command> [options]\n\ncommands:\n");
  for (const auto& command : imgjudge::cli::commands()) {
    fmt::print("  {:<22} {}\n", command.name, command.summary);
  }
  fmt::print("\n`imgjudge <command> --help` shows a command's options.\n");
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
    std::vector<std::string> words;
    std::string name = command.name;
    for (std::size_t start = 0; start <= name.size();) {
      std::size_t space = name.find(' ', start);
      if (space == std::string::npos) space = name.size();
      words.push_back(name.substr(start, space - start));
      start = space + 1;
    }
    if (words.size() > args.size() || words.size() <= best_words) continue;
    if (std::equal(words.begin(), words.end(), args.begin())) {
      best = &command;
      best_words = words.size();
    }
  }
  if (!best) {
    fmt::print(stderr, "imgjudge: unknown command '{}'; see `imgjudge --help`\n", args[0]);
    return 2;
  }
  try {
    return best->run(std::vector<std::string>(args.begin() + best_words, args.end()));
  } catch (const imgjudge::Error& e) {
    fmt::print(stderr, "imgjudge {}: error [{}]: {}\n", best->name,
               imgjudge::error_code_name(e.code()), e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "imgjudge {}: internal error: {}\n", best->name, e.what());
    return 3;
  }
}
