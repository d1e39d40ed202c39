// The subcommands of the tiller binary. Each cli/cmd_*.cpp registers itself with
// RegisterSubcommand, so adding a command touches no shared file.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"

namespace tiller::cli {

struct Subcommand {
  int order;  // position in `tiller --help`
  const Command& (*spec)();
  int (*run)(const Args& args);
};

struct RegisterSubcommand {
  RegisterSubcommand(int order, const Command& (*spec)(), int (*run)(const Args& args));
};

// Every registered subcommand, in `order`.
std::vector<Subcommand> subcommands();

// Runs subcommand `name` ("attribute", "steer soteria") with `args` in this process, as the
// command line would; errors propagate as exceptions (a command composed of others: tiller demo).
int run_subcommand(const std::string& name, const std::vector<std::string>& args);

}  // namespace tiller::cli
