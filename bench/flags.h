// The command lines of the benchmark binaries: a walk over argv with --help and unknown flags
// answered as the tiller CLI answers them (usage on stdout and exit 0; the error and usage on
// stderr and exit 2).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"

namespace tiller::bench {

[[noreturn]] inline void usage_exit(const char* usage, const std::string& error = {}) {
  if (error.empty()) {
    std::fputs(usage, stdout);
    std::exit(0);
  }
  std::fprintf(stderr, "error: %s\n\n%s", error.c_str(), usage);
  std::exit(2);
}

// Calls on_flag(flag, value) for each argument; `value()` takes the flag's value (failing when
// there is none). on_flag returns false for a flag it does not know.
template <typename OnFlag>
void for_each_flag(int argc, char** argv, const char* usage, OnFlag&& on_flag) {
  for (int i = 1; i < argc; i++) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage_exit(usage);
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(flag, " needs a value");
      return argv[++i];
    };
    if (!on_flag(flag, value)) usage_exit(usage, "unknown flag " + flag);
  }
}

// "1,4,16" -> {1, 4, 16}
inline std::vector<int64_t> int_list(const std::string& s) {
  std::vector<int64_t> out;
  for (size_t b = 0; b < s.size();) {
    const size_t e = std::min(s.find(',', b), s.size());
    out.push_back(std::stoll(s.substr(b, e - b)));
    b = e + 1;
  }
  return out;
}

}  // namespace tiller::bench
