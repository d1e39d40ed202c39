// Runs the tiller binary from a test and collects its exit status and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "test_util.h"

namespace tiller::test {

struct CliRun {
  int status;
  std::string out;  // stdout and stderr
};

// Runs `command` under /bin/sh, stderr folded into stdout.
inline CliRun run_shell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

inline CliRun run_tiller_cli(const std::string& args) { return run_shell(std::string(TILLER_BINARY) + " " + args); }

// A per-process scratch path under the system temp folder.
inline std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("tiller-test-" + std::to_string(::getpid()) + "-" + name);
}

}  // namespace tiller::test
