// Tokenizer factory and the UTF-8-safe streaming decoder shared by every tokenizer.
#include "engine/tokenizer/tokenizer.h"

#include "engine/error.h"
#include "engine/gguf.h"
#include "engine/tokenizer/tokenizer_factories.h"
#include "engine/tokenizer/unicode.h"

namespace tiller {

bool has_tokenizer(const std::filesystem::path& model) {
  namespace fs = std::filesystem;
  if (is_gguf_file(model)) {
    const auto type = GgufFile::open(model)->get_string("tokenizer.ggml.model");
    return type && *type != "none" && *type != "no_vocab";
  }
  return fs::exists(model / "tokenizer.json") || fs::exists(model / "tokenizer.model");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  if (is_gguf_file(model_dir)) {
#if TILLER_HAVE_TOKENIZERS
    return load_gguf_tokenizer(*GgufFile::open(model_dir));
#else
    fail(model_dir.string(), ": this tiller was built without tokenizers. Rebuild with libsentencepiece-dev and "
         "libpcre2-dev installed, or pass token ids with --tokens.");
#endif
  }
  const bool has_json = fs::exists(model_dir / "tokenizer.json");
  const bool has_spm = fs::exists(model_dir / "tokenizer.model");
#if TILLER_HAVE_TOKENIZERS
  if (has_json) return load_hf_tokenizer(model_dir);
  if (has_spm) return load_sentencepiece_tokenizer(model_dir);
  fail(model_dir.string(), ": no tokenizer found. Expected tokenizer.json (HF tokenizers) or tokenizer.model "
       "(sentencepiece) in the model folder; copy them from the original model, or pass token ids with --tokens.");
#else
  fail(model_dir.string(), ": this tiller was built without tokenizers (",
       has_json || has_spm ? "the folder has tokenizer files" : "and the folder has no tokenizer files",
       "). Rebuild with libsentencepiece-dev and libpcre2-dev installed, or pass token ids with --tokens.");
#endif
}

size_t take_complete_utf8(std::string_view s, std::string& out) {
  const size_t complete = s.size() - incomplete_utf8_suffix(s);
  append_utf8_lossy(s.substr(0, complete), out);
  return complete;
}

std::string StreamDecoder::push(int32_t id) {
  tokenizer_.append_token_bytes(id, first_, skip_special_, pending_);
  if (tokenizer_.ends_first(id, skip_special_)) first_ = false;
  std::string out;
  const size_t used = take_complete_utf8(pending_, out);
  pending_.erase(0, used);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  append_utf8_lossy(pending_, out);  // an incomplete character that never completed: U+FFFD
  pending_.clear();
  return out;
}

}  // namespace tiller
