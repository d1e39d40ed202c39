// Shared helpers for tests: where the data lives, and how a test skips with a reason.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace tiller::test {

inline std::filesystem::path source_dir() { return TILLER_SOURCE_DIR; }
inline std::filesystem::path fixtures_dir() { return source_dir() / "tests" / "fixtures"; }

// ../shared beside the checkout (CI has it; a user's machine may not). TILLER_SHARED overrides.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TILLER_SHARED")) return env;
  return source_dir().parent_path() / "shared";
}

inline bool have_shared() { return std::filesystem::exists(shared_dir() / "models"); }

// The rows of an RFC 4180 CSV file (quoted fields, "" escapes, CRLF or LF, a UTF-8 BOM skipped).
inline std::vector<std::vector<std::string>> read_csv(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.erase(0, 3);
  std::vector<std::vector<std::string>> rows(1);
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); i++) {
    const char c = s[i];
    if (quoted) {
      if (c != '"') cell += c;
      else if (i + 1 < s.size() && s[i + 1] == '"') cell += s[++i];
      else quoted = false;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(cell));
      cell.clear();
    } else if (c == '\n') {
      rows.back().push_back(std::move(cell));
      cell.clear();
      rows.emplace_back();
    } else if (c != '\r') {
      cell += c;
    }
  }
  if (!cell.empty() || !rows.back().empty()) rows.back().push_back(std::move(cell));
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

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
