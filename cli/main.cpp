// tiller: command-line entry point. Dispatches to a subcommand and turns errors into messages.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "engine/error.h"
#include "engine/mapping_registry.h"

namespace tiller::cli {

namespace {

std::vector<Subcommand>& registry() {
  static std::vector<Subcommand> all;  // function-local: safe from static initialisation order
  return all;
}

}  // namespace

RegisterSubcommand::RegisterSubcommand(int order, const Command& (*spec)(), int (*run)(const Args& args)) {
  registry().push_back({order, spec, run});
}

std::vector<Subcommand> subcommands() {
  std::vector<Subcommand> all = registry();
  std::sort(all.begin(), all.end(), [](const Subcommand& a, const Subcommand& b) { return a.order < b.order; });
  return all;
}

int run_subcommand(const std::string& name, const std::vector<std::string>& args) {
  for (const auto& s : subcommands()) {
    if (s.spec().name == name) return s.run(Args(s.spec(), args));
  }
  fail("no subcommand '", name, "'");
}

namespace {

// Commands whose name starts with `group` ("" for all).
void print_overview(const std::string& group = {}) {
  if (group.empty())
    std::printf("tiller: run, attribute, steer and measure Llama / Mistral / Qwen2 models\n\n"
                "Usage: tiller <command> [options]   (tiller <command> --help for its options)\n\nCommands:\n");
  else std::printf("Usage: tiller %s <command> [options]\n\nCommands:\n", group.c_str());
  for (const auto& s : subcommands()) {
    if (s.spec().name.rfind(group, 0) == 0) std::printf("  %-16s %s\n", s.spec().name.c_str(), s.spec().summary.c_str());
  }
}

}  // namespace
}  // namespace tiller::cli

int main(int argc, char** argv) {
  using namespace tiller::cli;
  tiller::install_mapping_fault_handler();  // a weight file truncated while mapped: say which
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    print_overview();
    return argc < 2 ? 2 : 0;
  }
  // Two-word commands ("steer soteria") take precedence over one-word ones.
  std::string name = argv[1];
  int first_arg = 2;
  if (argc >= 3) {
    const std::string two = name + " " + argv[2];
    for (const auto& s : subcommands()) {
      if (s.spec().name == two) {
        name = two;
        first_arg = 3;
      }
    }
  }
  if (first_arg == 2) {
    bool group = false;
    for (const auto& s : subcommands()) group = group || s.spec().name.rfind(name + " ", 0) == 0;
    if (group) {  // "tiller steer" or "tiller steer bogus": the group's commands
      const bool asked = argc == 2 || std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h";
      if (!asked) std::fprintf(stderr, "tiller: unknown command '%s %s'\n", name.c_str(), argv[2]);
      print_overview(name + " ");
      return asked ? 0 : 2;
    }
  }
  const std::vector<std::string> rest(argv + first_arg, argv + argc);
  for (const auto& s : subcommands()) {
    if (s.spec().name != name) continue;
    try {
      const Args args(s.spec(), rest);
      if (args.help()) {
        std::fputs(help_text(s.spec()).c_str(), stdout);
        return 0;
      }
      return s.run(args);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "tiller %s: %s\n", name.c_str(), e.message.c_str());
      return 2;
    } catch (const tiller::Error& e) {
      std::fprintf(stderr, "tiller %s: error: %s\n", name.c_str(), e.what());
      return 1;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "tiller %s: error: out of memory\n", name.c_str());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tiller %s: error: %s\n", name.c_str(), e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "tiller: unknown command '%s' (see tiller --help)\n", name.c_str());
  return 2;
}
