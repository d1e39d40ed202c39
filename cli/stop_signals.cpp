#include "cli/stop_signals.h"

#include <pthread.h>

#include <cstdlib>
#include <ctime>

namespace tiller::cli {

StopWatcher::StopWatcher(std::shared_ptr<std::atomic<bool>> done, std::thread thread)
    : done_(std::move(done)), thread_(std::move(thread)) {}

StopWatcher::~StopWatcher() {
  if (!thread_.joinable()) return;  // moved from
  *done_ = true;
  thread_.join();
}

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
}

StopWatcher StopSignals::watch(std::function<void(const char*)> on_stop) const {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread thread([done, signals = signals_, on_stop = std::move(on_stop)] {
    const timespec tick{0, 200 * 1000 * 1000};  // how often `done` is looked at
    while (!*done) {
      const int sig = sigtimedwait(&signals, nullptr, &tick);
      if (sig != SIGINT && sig != SIGTERM) continue;
      std::thread([signals] {  // a second signal ends the process at once
        sigset_t again = signals;
        int next = 0;
        sigwait(&again, &next);
        std::_Exit(128 + next);
      }).detach();
      on_stop(sig == SIGINT ? "SIGINT" : "SIGTERM");
      return;
    }
  });
  return StopWatcher(std::move(done), std::move(thread));
}

}  // namespace tiller::cli
