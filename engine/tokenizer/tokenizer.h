// The tokenizer interface every model family's tokenizer implements, and its factory.
//
// Implementations: sentencepiece `tokenizer.model` (sentencepiece_tokenizer.cpp) and HF
// `tokenizer.json` (hf_tokenizer.cpp). A model folder with both uses tokenizer.json, as HF does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tiller {

struct EncodeOptions {
  // Add the model's template tokens (BOS, and EOS where tokenizer_config.json asks for it).
  bool add_special = true;
  // Match special-token text ("<|eot_id|>") as the special token. Off for user content, so text
  // can never inject a control token; on when encoding a rendered chat template.
  bool parse_special = false;
};

// Token ids and special-token facts read from the model's tokenizer files.
struct SpecialTokens {
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::optional<int32_t> pad;
  std::optional<int32_t> unk;
  std::string bos_text;  // "<s>", "<|begin_of_text|>", ... (empty when none)
  std::string eos_text;
  bool add_bos = false;  // tokenizer_config.json add_bos_token (or the format's default)
  bool add_eos = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;

  // Text of ids as the reference decoder gives it (special tokens skipped when asked).
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = true) const = 0;

  // Raw bytes token `id` contributes to the output (may be part of a UTF-8 character).
  // `first` is true until a token that ends_first() has been decoded: the text's start, where
  // sentencepiece drops the dummy-prefix space. Special tokens give their text unless skip_special.
  virtual void append_token_bytes(int32_t id, bool first, bool skip_special, std::string& out) const = 0;

  // Whether token `id` is the one whose leading space `first` refers to, so later tokens keep
  // theirs. sentencepiece skips control tokens here; HF's Strip decoder counts every token shown.
  virtual bool ends_first(int32_t id, bool skip_special) const { return !(skip_special && is_special(id)); }

  virtual int32_t vocab_size() const = 0;
  virtual const SpecialTokens& special() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // The id of a token given by its exact text (e.g. "<|eot_id|>"), if it exists.
  virtual std::optional<int32_t> token_id(std::string_view text) const = 0;
};

// Loads the tokenizer of a model folder (tokenizer.json if present, else tokenizer.model) or of a
// GGUF file (its tokenizer.ggml.* metadata). Throws tiller::Error naming the folder and the files
// it looked for when neither is usable.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& model_dir);
// Whether the folder has tokenizer files, or the GGUF file a vocabulary.
bool has_tokenizer(const std::filesystem::path& model);

// Turns a stream of token ids into text pieces that are always valid UTF-8: bytes of an
// incomplete character are held back until it completes; invalid bytes become U+FFFD.
class StreamDecoder {
 public:
  // `continuation`: the ids continue text already shown (a completion after its prompt), so the
  // first token keeps the leading space a fresh decode would drop.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = true, bool continuation = false)
      : tokenizer_(tokenizer), skip_special_(skip_special), first_(!continuation) {}

  std::string push(int32_t id);  // the text that became complete with this token
  std::string finish();          // whatever is held back, with incomplete bytes as U+FFFD

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool first_;
  std::string pending_;  // bytes not yet emitted
};

// Length of the longest prefix of `s` that holds only complete characters, assuming the rest
// may still complete. Bytes that can never be valid are replaced by U+FFFD in `out`.
size_t take_complete_utf8(std::string_view s, std::string& out);

}  // namespace tiller
