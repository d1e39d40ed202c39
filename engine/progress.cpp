#include "engine/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace tiller {

std::string duration_text(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%ds", int(s));
  return buf;
}

namespace {

// "0.52", "3.21", "41.7", "1532"
std::string rate_text(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, r < 10 ? "%.2f" : r < 100 ? "%.1f" : "%.0f", r);
  return buf;
}

}  // namespace

ProgressLine::ProgressLine(std::string label, std::string unit, bool enabled, int64_t done_before)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO)),
      done_before_(done_before) {}

ProgressLine::~ProgressLine() {
  if (open_) std::fputc('\n', stderr);
}

bool ProgressLine::due() const {
  if (!enabled_) return false;
  const auto every = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10000);
  return drawn_ == Clock::time_point{} || Clock::now() - drawn_ >= every;
}

double ProgressLine::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void ProgressLine::update(int64_t done, int64_t total, const std::string& figures, bool final) {
  if (!enabled_ || finished_ || !(final || due())) return;
  drawn_ = Clock::now();
  finished_ = final;
  const double elapsed = elapsed_seconds();
  const int64_t done_now = done - done_before_, left = total - done;
  const std::string eta = done_now > 0 && elapsed > 0 ? duration_text(elapsed * double(left) / double(done_now)) : "?";
  constexpr int kWidth = 24;
  const int filled = total > 0 ? int(kWidth * std::clamp<int64_t>(done, 0, total) / total) : kWidth;
  const std::string rate = rate_text(elapsed > 0 ? double(done_now) / elapsed : 0) + " " + unit_ + "/s";
  const std::string when = final ? "in " + duration_text(elapsed) : "ETA " + eta;
  std::fprintf(stderr, "%s%s [%s%s] %lld/%lld  %s%s%s  %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               std::string(size_t(filled), '#').c_str(), std::string(size_t(kWidth - filled), '.').c_str(),
               (long long)done, (long long)total, rate.c_str(), figures.empty() ? "" : "  ", figures.c_str(),
               when.c_str(), tty_ && !final ? "" : "\n");
  std::fflush(stderr);
  open_ = tty_ && !final;
}

void ProgressLine::clear() {
  if (!enabled_ || !tty_ || !open_) return;
  std::fputs("\r\033[K", stderr);
  open_ = false;
}

}  // namespace tiller
