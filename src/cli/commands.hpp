// The subcommands of the `imgjudge` tool. Each takes the arguments after its
// name and returns the process exit status (0 success, 1 a negative result
// such as an unsafe image or a failed check, 2 usage or input errors).
#pragma once

#include <string>
#include <vector>

namespace imgjudge::cli {

using Argv = std::vector<std::string>;

/// Whether a command writes JSON on stdout: then an error that stops it is also written
/// there, as {"error": {"code", "message"}}, the one error form of every JSON output.
enum class JsonOutput { Never, Always, WithFlag /* with --json */ };

struct Command {
  const char* name;     ///< e.g. "judge" or "constitution check"
  const char* summary;  ///< One line for `imgjudge --help`.
  int (*run)(const Argv& args);
  JsonOutput json = JsonOutput::Never;
};

/// `text` for one line of human-readable output: control characters (a
/// newline in a file name, in an error message quoting it, in a model's
/// rationale) written as \n, \r, \t or \xNN, so no input can forge lines.
std::string one_line(const std::string& text);

/// `message` without a leading "`path`: ", for a line that already starts with the path
/// (an error of load_image_file names its file; "a.png: ERROR [io] a.png: cannot open"
/// would say it twice).
std::string without_path(const std::string& message, const std::string& path);

/// Every subcommand, in the order `imgjudge --help` lists them.
const std::vector<Command>& commands();

int run_judge(const Argv& args);
int run_verify_fixture(const Argv& args);
int run_make_random_model(const Argv& args);
int run_constitution_check(const Argv& args);
int run_constitution_show_default(const Argv& args);
int run_constitution_objectify(const Argv& args);
int run_constitution_chains(const Argv& args);
int run_tokenize(const Argv& args);
int run_score(const Argv& args);
int run_eval(const Argv& args);
int run_inspect_image(const Argv& args);
int run_serve(const Argv& args);

}  // namespace imgjudge::cli
