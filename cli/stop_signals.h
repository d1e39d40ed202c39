// SIGINT / SIGTERM for the long-running commands (serve, eval): the first signal asks the work to
// stop cleanly, a second one ends the process at once (exit status 128 + signal).
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

namespace tiller::cli {

// Watches for the first signal until it is destroyed (then it joins its thread). Declare it after
// everything its callback touches, so it is gone before they are.
class StopWatcher {
 public:
  StopWatcher(StopWatcher&&) = default;
  ~StopWatcher();

 private:
  friend class StopSignals;
  StopWatcher(std::shared_ptr<std::atomic<bool>> done, std::thread thread);
  std::shared_ptr<std::atomic<bool>> done_;
  std::thread thread_;
};

class StopSignals {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread, so construct it before any thread starts
  // (the backend's pool included) and every thread inherits the mask. Both signals get their
  // default action back: a shell starts background jobs with SIGINT ignored, and an ignored signal
  // never reaches sigwait. SIGPIPE is ignored (a client closing its socket must not end the process).
  StopSignals();

  // On the first signal, calls on_stop("SIGINT" or "SIGTERM") once from the watcher's thread, then
  // leaves a thread waiting for a second signal to end the process.
  [[nodiscard]] StopWatcher watch(std::function<void(const char* signal_name)> on_stop) const;

 private:
  sigset_t signals_;
};

}  // namespace tiller::cli
