// libFuzzer's entry point for one target (TILLER_FUZZ_ONLY names it): escaping exceptions abort,
// which libFuzzer reports as a crash with the input saved.
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz/fuzz_target.h"

// Targets load what they keep (tokenizers, a model) on their first input: an empty one, here, so
// loading is not timed as the first input.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const tiller::fuzz::Target* t = tiller::fuzz::find_target(TILLER_FUZZ_ONLY)) t->fn({});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const tiller::fuzz::Target* target = tiller::fuzz::find_target(TILLER_FUZZ_ONLY);
  if (!target) {
    std::fprintf(stderr, "no fuzz target named %s\n", TILLER_FUZZ_ONLY);
    std::abort();
  }
  try {
    target->fn(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiller fuzz %s: escaping exception: %s\n", TILLER_FUZZ_ONLY, e.what());
    std::abort();
  }
  return 0;
}
