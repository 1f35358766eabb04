// `imgjudge constitution objectify|chains`: the offline stages of the method, run with a
// local model's text generation; they write a new constitution for a person to review
// (docs/constitution-tools.md).
#include <cstdio>
#include <fstream>

#include <fmt/core.h>

#include "cli/args.hpp"
#include "cli/model_options.hpp"
#include "cli/commands.hpp"
#include "imgjudge/backend.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"
#include "tools/constitution_tools.hpp"

namespace imgjudge::cli {
namespace {

const char* kObjectifyHelp = R"(usage: imgjudge constitution objectify FILE --model DIR [options]

Asks a model to rate each rule's objectiveness from 1 to 10; rules under the target
are rewritten and re-rated, up to --rounds times, and the best-rated wording becomes
the rule's objective_text (its text stays as written). Scores, explanations and what
to review are written as comments: "# REVIEW:" for numbers the model introduced and
targets not reached, "# NOT PROCESSED:" for rules left unchanged.

model:
  --backend NAME         torch (default) or scripted
  --model DIR            Hugging Face folder of the model (torch)
  --script FILE          answer script of the scripted backend
  --device DEV           cpu (default) or cuda[:N]
  --dtype T              auto (default), float32, bfloat16 or int8
  --threads N            intra-op threads (default: all cores)
  --max-new-tokens N     per answer (default 384)
method:
  --target N             rewrite rules rated below N (1-10, default 9)
  --rounds N             at most N rewrites per rule (default 3)
  --prompts FILE         prompt templates (TOML) replacing the built-in ones
  --print-prompts        print the prompt templates as TOML and exit
output:
  --out FILE             write the new constitution here (default: standard output)
  --quiet                no per-rule progress on standard error

exit status: 0 every rule processed, 1 some rules not processed (the file is still
             written), 2 usage, input or model error
)";

const char* kChainsHelp = R"(usage: imgjudge constitution chains FILE --model DIR [options]

Asks a model to turn each rule's objective_text into a precondition chain: an AND of
items, each an OR of short visual statements, with central object words per item.
The answer is parsed from JSON or a numbered list; what the parser skipped is written
as "# REVIEW:" comments, and a rule whose answer could not be read is kept unchanged
with a "# NOT PROCESSED:" comment. New chains are checked like `constitution check`.

model:
  --backend NAME         torch (default) or scripted
  --model DIR            Hugging Face folder of the model (torch)
  --script FILE          answer script of the scripted backend
  --device DEV           cpu (default) or cuda[:N]
  --dtype T              auto (default), float32, bfloat16 or int8
  --threads N            intra-op threads (default: all cores)
  --max-new-tokens N     per answer (default 768)
method:
  --only-missing         keep the rules that already have a chain
  --prompts FILE         prompt templates (TOML) replacing the built-in ones
  --print-prompts        print the prompt templates as TOML and exit
output:
  --out FILE             write the new constitution here (default: standard output)
  --quiet                no per-rule progress on standard error

exit status: 0 every rule processed, 1 some rules not processed (the file is still
             written), 2 usage, input or model error
)";

const std::vector<std::string> kValueOptions = {"backend", "model", "script", "device", "dtype", "threads",
                                                "max-new-tokens", "prompts", "out", "target", "rounds"};

// The model named on the command line; only its text generation is used.
std::shared_ptr<const VisionLanguageModel> load_text_model(const Args& args) {
  const ModelConfig config = model_config_from(args);
  if (config.backend == "torch" && config.model_dir.empty()) {
    throw Error(ErrorCode::InvalidArgument, "no model given (--model DIR)");
  }
  auto models = load_models(config);
  if (!models.vlm) throw Error(ErrorCode::InvalidArgument, "the backend loaded no language model");
  return models.vlm;
}

int max_new_tokens(const Args& args, int fallback) {
  const int value = args.int_value_or("max-new-tokens", fallback);
  if (value < 1 || value > 32768) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--max-new-tokens {} is outside 1-32768", value));
  }
  return value;
}

tools::ToolPrompts load_prompts(const Args& args) {
  if (auto path = args.value("prompts")) return tools::ToolPrompts::from_file(*path);
  return tools::ToolPrompts::defaults();
}

// Writes next to the target and renames, so a failed run never leaves half a file.
void write_file(const std::string& path, const std::string& content) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write {}", temporary));
    out << content;
    out.flush();
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write {}", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    std::remove(temporary.c_str());
    throw Error(ErrorCode::Io, fmt::format("cannot rename {} to {}", temporary, path));
  }
}

// Checks that the output reads back (it always should), then writes it.
int emit(const Args& args, const tools::ToolOutput& output, const std::vector<std::string>& header,
         const std::string& command) {
  const std::string toml = tools::write_constitution_toml(output.constitution, output.comments, header);
  const std::string out_path = args.value_or("out", "");
  try {
    Constitution::from_string(toml, out_path.empty() ? "<output>" : out_path);
  } catch (const Error& e) {
    throw Error(ErrorCode::Internal, fmt::format("the written constitution does not parse back: {}", e.what()));
  }
  if (out_path.empty()) {
    fmt::print("{}", toml);
  } else {
    write_file(out_path, toml);
  }
  if (!args.flag("quiet")) {
    fmt::print(stderr, "{}: {} rules, {} changed, {} not processed, {} to review{}\n", command,
               output.constitution.rules.size(), output.rules_changed, output.rules_not_processed,
               output.rules_to_review, out_path.empty() ? "" : " -> " + out_path);
  }
  return output.rules_not_processed == 0 ? 0 : 1;
}

tools::ToolProgress progress_printer(const Args& args, const std::string& command) {
  if (args.flag("quiet")) return {};
  return [command](std::size_t index, std::size_t count, const std::string& line) {
    fmt::print(stderr, "{} [{}/{}] {}\n", command, index + 1, count, line);
    std::fflush(stderr);
  };
}

}  // namespace

int run_constitution_objectify(const Argv& argv) {
  const Args args(argv, kValueOptions, {"help", "quiet", "print-prompts"});
  if (args.flag("help")) {
    fmt::print("{}", kObjectifyHelp);
    return 0;
  }
  if (args.flag("print-prompts")) {
    fmt::print("{}", load_prompts(args).to_toml());
    return 0;
  }
  if (args.positionals().size() != 1) {
    fmt::print(stderr, "{}", kObjectifyHelp);
    return 2;
  }
  const std::string& path = args.positionals()[0];
  const Constitution input = Constitution::from_file(path);
  tools::ObjectifyOptions options;
  options.target = args.int_value_or("target", 9);
  options.rounds = args.int_value_or("rounds", 3);
  options.max_new_tokens = max_new_tokens(args, 384);
  options.prompts = load_prompts(args);
  if (options.target < 1 || options.target > 10) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--target {} is outside 1-10", options.target));
  }
  if (options.rounds < 0 || options.rounds > 100) {
    throw Error(ErrorCode::InvalidArgument, fmt::format("--rounds {} is outside 0-100", options.rounds));
  }
  const auto model = load_text_model(args);
  const auto output =
      tools::objectify_constitution(*model, input, options, progress_printer(args, "objectify"));
  const std::vector<std::string> header = {
      fmt::format("Written by `imgjudge constitution objectify` from {} with {} (target {}/10, at most {} "
                  "rewrites per rule). Comments of the input file are not carried over.",
                  path, model->model_id(), options.target, options.rounds),
      "Before shipping, review every rule: the objective_text must keep the scope of its text; set each number "
      "marked REVIEW for your policy; rewrite by hand what is marked NOT PROCESSED or below target. Then run "
      "`imgjudge constitution chains` on the reviewed file.",
  };
  return emit(args, output, header, "objectify");
}

int run_constitution_chains(const Argv& argv) {
  const Args args(argv, kValueOptions, {"help", "quiet", "print-prompts", "only-missing"});
  if (args.flag("help")) {
    fmt::print("{}", kChainsHelp);
    return 0;
  }
  if (args.flag("print-prompts")) {
    fmt::print("{}", load_prompts(args).to_toml());
    return 0;
  }
  if (args.positionals().size() != 1 || args.value("target") || args.value("rounds")) {
    fmt::print(stderr, "{}", kChainsHelp);
    return 2;
  }
  const std::string& path = args.positionals()[0];
  const Constitution input = Constitution::from_file(path);
  tools::ChainsOptions options;
  options.max_new_tokens = max_new_tokens(args, 768);
  options.only_missing = args.flag("only-missing");
  options.prompts = load_prompts(args);
  const auto model = load_text_model(args);
  const auto output = tools::extract_chains(*model, input, options, progress_printer(args, "chains"));
  const std::vector<std::string> header = {
      fmt::format("Written by `imgjudge constitution chains` from {} with {}. Comments of the input file are not "
                  "carried over.",
                  path, model->model_id()),
      "Before shipping, review every chain: together its items must mean the rule, no more and no less; each "
      "statement must be checkable by looking at the image; general items first. Then run `imgjudge "
      "constitution check`.",
  };
  return emit(args, output, header, "chains");
}

}  // namespace imgjudge::cli
