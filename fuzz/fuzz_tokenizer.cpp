// tokenizer.json + tokenizer_config.json as a model folder holds them: loading (BPE model,
// normalizer, pre-tokenizer, decoder, post-processor, added tokens, special tokens) and then
// encoding and decoding a text with what was loaded.
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "fuzz/fuzz_target.h"
#include "fuzz/tokenizer_checks.h"

using namespace tiller;

TILLER_FUZZ_TARGET(tokenizer, "tokenizer.json + tokenizer_config.json loaded, then a text encoded and decoded") {
  const auto parts = fuzz::split_parts(data, 3);
  const auto dir = fuzz::scratch_dir() / "tokenizer";
  std::filesystem::create_directories(dir);
  fuzz::write_file(dir / "tokenizer.json", parts[0]);
  if (parts[1].empty()) std::filesystem::remove(dir / "tokenizer_config.json");
  else fuzz::write_file(dir / "tokenizer_config.json", parts[1]);
  fuzz::accepted([&] { (void)read_tokenizer_config(dir); });
#if TILLER_HAVE_TOKENIZERS
  std::unique_ptr<Tokenizer> tok;
  if (!fuzz::accepted([&] { tok = load_tokenizer(dir); })) return;
  fuzz::check_round_trip(*tok, parts[2]);
#endif
}
