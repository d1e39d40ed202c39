// Tokenizer invariants shared by the tokenizer targets.
#include "fuzz/tokenizer_checks.h"

#include "engine/error.h"
#include "fuzz/fuzz_target.h"

namespace tiller::fuzz {

namespace {

// Valid UTF-8 throughout: nothing held back, nothing replaced.
bool whole_utf8(std::string_view s) {
  std::string copy;
  return take_complete_utf8(s, copy) == s.size() && copy == s;
}

}  // namespace

void check_round_trip(const Tokenizer& tok, std::string_view text) {
  const int32_t vocab = tok.vocab_size();
  fuzz_check(vocab > 0, "a loaded tokenizer has a vocabulary");
  for (const bool add_special : {false, true}) {
    for (const bool parse_special : {false, true}) {
      std::vector<int32_t> ids;
      if (!accepted([&] { ids = tok.encode(text, {.add_special = add_special, .parse_special = parse_special}); }))
        continue;
      for (int32_t id : ids) fuzz_check(id >= 0 && id < vocab, "encoded ids lie inside the vocabulary");
      for (const bool skip : {false, true}) {
        std::string whole;
        accepted([&] { whole = tok.decode(ids, skip); });
        StreamDecoder stream(tok, skip);
        std::string streamed;
        accepted([&] {
          for (int32_t id : ids) streamed += stream.push(id);
          streamed += stream.finish();
        });
        (void)whole;
        fuzz_check(whole_utf8(streamed), "streamed text is valid UTF-8");
      }
    }
  }
}

}  // namespace tiller::fuzz
