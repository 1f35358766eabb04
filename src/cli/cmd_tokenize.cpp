// `imgjudge tokenize --model DIR`: JSON lines in, token ids and strings out.
#include <cstdio>
#include <iostream>

#include <fmt/core.h>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "tokenizer/json_lines.hpp"
#include "tokenizer/tokenizer.hpp"

namespace imgjudge::cli {
namespace {

const char* kTokenizeHelp = R"(usage: imgjudge tokenize --model DIR [--format auto|fast|slow|sentencepiece]

Tokenizes JSON lines read from stdin with the tokenizer of a model folder
(tokenizer.json, or vocab.json + merges.txt + tokenizer_config.json, or a
SentencePiece tokenizer.model / spiece.model + tokenizer_config.json).
Input, one per line:   {"text": "...", "add_special_tokens": true}
Output, one per line:  {"ids": [...], "tokens": [...]}
A bad line is answered with {"error": {"code": "...", "message": "line N: ..."}}
and processing goes on.

exit status: 0 every line tokenized, 1 some line failed, 2 usage or model error
)";

}  // namespace

int run_tokenize(const Argv& argv) {
  const Args args(argv, {"model", "format"}, {"help"});
  if (args.flag("help")) {
    fmt::print("{}", kTokenizeHelp);
    return 0;
  }
  if (!args.value("model") || !args.positionals().empty()) {
    fmt::print(stderr, "{}", kTokenizeHelp);
    return 2;
  }
  const std::string format_name = args.value_or("format", "auto");
  tokenizer::TokenizerFormat format = tokenizer::TokenizerFormat::Auto;
  if (format_name == "fast") {
    format = tokenizer::TokenizerFormat::Fast;
  } else if (format_name == "slow") {
    format = tokenizer::TokenizerFormat::Slow;
  } else if (format_name == "sentencepiece") {
    format = tokenizer::TokenizerFormat::SentencePiece;
  } else if (format_name != "auto") {
    fmt::print(stderr, "imgjudge tokenize: --format must be auto, fast, slow or sentencepiece, not '{}'\n", format_name);
    return 2;
  }
  const auto tokenizer = tokenizer::Tokenizer::load(*args.value("model"), format);
  std::ios::sync_with_stdio(false);
  const auto result = tokenizer::tokenize_json_lines(tokenizer, std::cin, std::cout);
  return result.errors == 0 ? 0 : 1;
}

}  // namespace imgjudge::cli
