// The one progress line of the long jobs (attribute, probe, batch, eval, training), on stderr:
//
//   eval [#########...............] 1200/3150  3.21 items/s  412 tok/s  judging 3  ETA 10m07s
//
// (label, bar, done/total, the rate of `done` in the job's unit, the job's own figures, ETA).
//
// Redrawn in place on a terminal at most every 250 ms; elsewhere (a log file) a new line every
// 10 s, so logs stay short. The last update of a job is always drawn, with the time taken in place
// of the ETA, and ends the line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tiller {

// "42s", "3m05s", "1h02m"
std::string duration_text(double seconds);

class ProgressLine {
 public:
  // `unit` names what `done` counts ("items", "requests"); `done_before` is the work a resumed job
  // had already done, left out of its rate and ETA.
  ProgressLine(std::string label, std::string unit, bool enabled, int64_t done_before = 0);
  ~ProgressLine();  // ends a line left open on a terminal

  // Whether update() would draw now (for callers whose figures cost something to gather).
  bool due() const;
  // Draws the line when due, or always when `final` (with the time taken for the ETA: "in 3m05s");
  // nothing after a final update.
  void update(int64_t done, int64_t total, const std::string& figures = {}, bool final = false);
  // Erases the line on a terminal, before a message is printed under it.
  void clear();
  void set_label(std::string label) { label_ = std::move(label); }
  double elapsed_seconds() const;
  bool enabled() const { return enabled_; }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_, unit_;
  bool enabled_, tty_;
  int64_t done_before_;
  bool open_ = false;      // a line is drawn on the terminal and not yet ended
  bool finished_ = false;  // the final update is drawn
  Clock::time_point start_ = Clock::now(), drawn_{};
};

}  // namespace tiller
