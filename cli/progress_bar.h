// A one-line progress bar on stderr for long commands (attribute, probe): redrawn in place at most
// ten times a second on a terminal, a line every two seconds otherwise (logs stay short).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tiller::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled);
  void update(int64_t done, int64_t total);
  void set_label(std::string label) { label_ = std::move(label); }

 private:
  std::string label_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), drawn_{};
};

}  // namespace tiller::cli
