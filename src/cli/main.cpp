// imgjudge: command-line front end. `imgjudge --help` lists the subcommands.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
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
    fmt::print(stderr, "imgjudge: unknown command '{}'; see `imgjudge --help`\n", imgjudge::cli::one_line(args[0]));
    return 2;
  }
  try {
    const int status = best->run(std::vector<std::string>(args.begin() + best_words, args.end()));
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
