// Arbitrary bytes encoded (and decoded, and stream-decoded) by real tokenizers: the first byte
// picks the tokenizer, the rest is the text. Slots 0-3 are the reduced tokenizers committed in
// fuzz/tokenizers (always present); slots 4-9 are the real ones in ../shared (skipped where it
// is absent), so an input means the same thing on every machine that has its tokenizer.
#include "engine/tokenizer/tokenizer.h"
#include "fuzz/fuzz_target.h"
#include "fuzz/tokenizer_checks.h"

using namespace tiller;

namespace {

#if TILLER_HAVE_TOKENIZERS
const std::vector<std::unique_ptr<Tokenizer>>& tokenizers() {
  static const std::vector<std::unique_ptr<Tokenizer>> all = [] {
    const auto committed = fuzz::source_dir() / "fuzz" / "tokenizers";
    const auto shared = fuzz::shared_dir() / "data" / "tokenizers";
    const std::filesystem::path slots[] = {
        committed / "llama3",  committed / "qwen2",  committed / "smollm2",  committed / "mistral-v0.3",
        shared / "llama3",     shared / "qwen2",     shared / "smollm2",     shared / "mistral-7b-instruct-v0.3",
        shared / "llama2-spm", fuzz::shared_dir() / "models" / "stories260K"};
    std::vector<std::unique_ptr<Tokenizer>> out;
    for (const auto& dir : slots) {
      std::unique_ptr<Tokenizer> t;
      if (std::filesystem::exists(dir)) t = load_tokenizer(dir);  // a committed one failing to load is a bug
      out.push_back(std::move(t));
    }
    return out;
  }();
  return all;
}
#endif

}  // namespace

TILLER_FUZZ_TARGET(tokenizer_encode, "arbitrary bytes through the real tokenizers (byte 0 picks one)") {
#if TILLER_HAVE_TOKENIZERS
  const auto& all = tokenizers();  // loaded by the first (empty) input, before fuzzing starts
  if (data.empty()) return;
  const Tokenizer* tok = all[uint8_t(data[0]) % all.size()].get();
  if (!tok) return;
  fuzz::check_round_trip(*tok, data.substr(1));
#else
  (void)data;
#endif
}
