// A fixed table of mapped ranges the SIGBUS handler can read without locks or allocation.
#include "engine/mapping_registry.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace tiller {

namespace {

struct Entry {
  std::atomic<const char*> base{nullptr};
  size_t size = 0;
  char path[480] = {};
};

constexpr size_t kEntries = 256;  // more mappings than this are still served, just not named
Entry table[kEntries];
std::mutex table_mutex;

void say(const char* s) { (void)!::write(STDERR_FILENO, s, std::strlen(s)); }

void on_bus_error(int sig, siginfo_t* info, void*) {
  const char* addr = static_cast<const char*>(info->si_addr);
  const char* path = nullptr;
  for (const Entry& e : table) {
    const char* base = e.base.load(std::memory_order_acquire);
    if (base && addr >= base && addr < base + e.size) path = e.path;
  }
  if (path) {
    say("\ntiller: fatal: ");
    say(path);
    say(" was cut short while tiller had it mapped (a read fell past its new end): another program is writing "
        "it in place. Let it finish, then start again; replace model files by writing a new file and renaming "
        "it over the old one.\n");
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void register_mapping(const void* base, size_t size, const std::filesystem::path& path) {
  std::lock_guard lock(table_mutex);
  for (Entry& e : table) {
    if (e.base.load(std::memory_order_relaxed)) continue;
    e.size = size;
    std::strncpy(e.path, path.c_str(), sizeof e.path - 1);
    e.path[sizeof e.path - 1] = '\0';
    e.base.store(static_cast<const char*>(base), std::memory_order_release);
    return;
  }
}

void unregister_mapping(const void* base) {
  std::lock_guard lock(table_mutex);
  for (Entry& e : table)
    if (e.base.load(std::memory_order_relaxed) == base) e.base.store(nullptr, std::memory_order_release);
}

void install_mapping_fault_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_bus_error;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, nullptr);
}

}  // namespace tiller
