// The progress bar: rate and ETA from the time since it was made.
#include "cli/progress_bar.h"

#include <unistd.h>

#include <cstdio>

namespace tiller::cli {

ProgressBar::ProgressBar(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled), tty_(isatty(2)) {}

void ProgressBar::update(int64_t done, int64_t total) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - drawn_).count();
  if (done < total && since < (tty_ ? 0.1 : 2.0)) return;
  drawn_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? double(done) / elapsed : 0;
  constexpr int kWidth = 30;
  const int filled = total > 0 ? int(kWidth * done / total) : kWidth;
  std::fprintf(stderr, "%s%s [%s%s] %3d%% %lld/%lld %.0f/s ETA %.0fs%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               std::string(size_t(filled), '#').c_str(), std::string(size_t(kWidth - filled), '.').c_str(),
               total > 0 ? int(100 * done / total) : 100, (long long)done, (long long)total, rate,
               rate > 0 ? double(total - done) / rate : 0.0, tty_ && done < total ? "" : "\n");
}

}  // namespace tiller::cli
