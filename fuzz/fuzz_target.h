// A fuzz target is one plain function over arbitrary bytes. It returns normally for every input
// the code under test handles, including refusals (tiller::Error and its subclasses, which must
// say what was wrong); anything else is a finding: a crash or hang, a sanitizer report, an
// exception that is not a tiller::Error (a raw library message is not a clear error), or a broken
// invariant (fuzz_check). The same functions run under libFuzzer (TILLER_FUZZ=ON, clang) and in
// tiller_fuzz_replay, which replays the committed corpus with any compiler.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::fuzz {

using TargetFn = void (*)(std::string_view data);

struct Target {
  const char* name;  // also the corpus folder: fuzz/corpus/<name>, fuzz/regressions/<name>
  TargetFn fn;
  const char* what;  // one line for --list
};

const std::vector<Target>& targets();
const Target* find_target(std::string_view name);

struct Register {
  Register(const char* name, TargetFn fn, const char* what);
};

// Defines and registers `void fuzz_<name>(std::string_view data)`.
#define TILLER_FUZZ_TARGET(name, what)                                              \
  static void fuzz_##name(std::string_view data);                                   \
  static const ::tiller::fuzz::Register fuzz_register_##name{#name, fuzz_##name, what}; \
  static void fuzz_##name(std::string_view data)

// A broken invariant: not a tiller::Error, so it is reported as a finding.
class InvariantBroken : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};
inline void fuzz_check(bool ok, const char* what) {
  if (!ok) throw InvariantBroken(std::string("invariant broken: ") + what);
}

// Runs `f`; a tiller::Error (a refusal with a message) is an expected outcome and is swallowed.
// Returns whether f completed without one.
bool accepted(const std::function<void()>& f);

// Structured inputs hold several parts (a template and its messages, tokenizer.json and its
// config) separated by this line; make_seeds.py writes seeds that way. Missing parts are empty.
inline constexpr std::string_view kPartSeparator = "\n#--tiller-fuzz-part--#\n";
std::vector<std::string_view> split_parts(std::string_view data, size_t parts);

// A per-process scratch folder (removed at exit) for code that only reads files.
const std::filesystem::path& scratch_dir();
void write_file(const std::filesystem::path& path, std::string_view bytes);

// The source tree (committed fixtures) and ../shared (real tokenizers; may be absent, and then
// the targets that would use it fall back to committed reduced copies).
std::filesystem::path source_dir();
std::filesystem::path shared_dir();

}  // namespace tiller::fuzz
