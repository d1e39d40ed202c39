// --help and unknown flags for the benchmark binaries: the usage text, on stdout (exit 0) or
// after the error on stderr (exit 2), as the tiller CLI does.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tiller::bench {

[[noreturn]] inline void usage_exit(const char* usage, const std::string& error = {}) {
  if (error.empty()) {
    std::fputs(usage, stdout);
    std::exit(0);
  }
  std::fprintf(stderr, "error: %s\n\n%s", error.c_str(), usage);
  std::exit(2);
}

}  // namespace tiller::bench
