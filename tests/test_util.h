// Shared helpers for tests: where the data lives, and how a test skips with a reason.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace tiller::test {

inline std::filesystem::path source_dir() { return TILLER_SOURCE_DIR; }
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }

// ../shared beside the checkout (CI has it; a user's machine may not). TILLER_SHARED overrides.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TILLER_SHARED")) return env;
  return source_dir().parent_path() / "shared";
}

inline bool have_shared() { return std::filesystem::exists(shared_dir() / "models"); }


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
