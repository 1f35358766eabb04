// `imgjudge constitution check|show-default`.
#include <cstdio>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "imgjudge/constitution.hpp"
#include "imgjudge/error.hpp"

namespace imgjudge::cli {
namespace {

const char* kCheckHelp = R"(usage: imgjudge constitution check FILE [--json]

Validates a constitution and prints a summary: rules, chain sizes, thresholds,
content hash, and warnings (rules without chains, unobjectified text, repeated,
near-empty or non-visual statements such as questions, intent or policy wording).
Errors name the line and column.

exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error
)";

}  // namespace

int run_constitution_check(const Argv& argv) {
  const Args args(argv, {}, {"json", "help"});
  if (args.flag("help")) {
    fmt::print("{}", kCheckHelp);
    return 0;
  }
  if (args.positionals().size() != 1) {
    fmt::print(stderr, "{}", kCheckHelp);
    return 2;
  }
  const std::string& path = args.positionals()[0];
  Constitution constitution;
  try {
    constitution = Constitution::from_file(path);
  } catch (const Error& e) {
    if (args.flag("json")) {
      fmt::print("{}\n", nlohmann::json{{"valid", false},
                                        {"error", {{"code", error_code_name(e.code())}, {"message", e.what()}}}}
                             .dump());
    } else {
      fmt::print(stderr, "{}\n", e.what());
    }
    return 1;
  }
  const auto warnings = lint_constitution(constitution);
  if (args.flag("json")) {
    nlohmann::json rules = nlohmann::json::array();
    for (const auto& rule : constitution.rules) {
      std::size_t statements = 0;
      for (const auto& item : rule.chain) statements += item.any_of.size();
      rules.push_back({{"id", rule.id},
                       {"category", rule.category},
                       {"severity", severity_name(rule.severity)},
                       {"chain_items", rule.chain.size()},
                       {"statements", statements}});
    }
    fmt::print("{}\n", nlohmann::json{{"valid", true},
                                      {"name", constitution.name},
                                      {"version", constitution.version},
                                      {"hash", constitution.hash},
                                      {"rules", rules},
                                      {"warnings", warnings}}
                           .dump());
    return 0;
  }
  fmt::print("{}: valid\n", path);
  fmt::print("  name     {} (version {})\n", constitution.name, constitution.version);
  fmt::print("  hash     {}\n", constitution.hash);
  const auto& d = constitution.defaults;
  fmt::print("  defaults relevance {} | reject {} | accept {} | region {} | locator {} | small region {} | cascade {} | "
             "answer spellings {}\n",
             d.relevance, d.reject_factor, d.accept_factor, d.region_delta, d.locator_confidence,
             d.small_region_fraction, d.cascade ? "on" : "off", answer_spellings_name(constitution.answer_spellings));
  fmt::print("  {} rules:\n", constitution.rules.size());
  for (const auto& rule : constitution.rules) {
    std::size_t statements = 0;
    for (const auto& item : rule.chain) statements += item.any_of.size();
    fmt::print("    {:<28} {:<10} {:<8} {} items, {} statements\n", rule.id, rule.category,
               severity_name(rule.severity), rule.chain.size(), statements);
  }
  for (const auto& warning : warnings) fmt::print("  warning: {}\n", warning);
  return 0;
}

int run_constitution_show_default(const Argv& argv) {
  const Args args(argv, {}, {"help"});
  if (args.flag("help") || !args.positionals().empty()) {
    fmt::print("usage: imgjudge constitution show-default\n\nPrints the bundled default constitution (TOML).\n");
    return args.flag("help") ? 0 : 2;
  }
  fmt::print("{}", Constitution::builtin_default_text());
  return 0;
}

}  // namespace imgjudge::cli
