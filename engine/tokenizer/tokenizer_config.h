// tokenizer_config.json: the HF settings that sit beside a tokenizer (BOS/EOS policy, special
// token texts, added tokens, the chat template).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace tiller {

struct AddedTokenInfo {
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

struct TokenizerConfig {
  bool present = false;                // the file exists
  std::optional<bool> add_bos_token;   // absent: the tokenizer format's default
  std::optional<bool> add_eos_token;
  std::string bos_token;               // text of the token ("<s>"), empty when unset
  std::string eos_token;
  std::string pad_token;
  std::string unk_token;
  std::string tokenizer_class;         // "LlamaTokenizer", "PreTrainedTokenizerFast", ...
  std::map<int32_t, AddedTokenInfo> added_tokens;  // added_tokens_decoder, by id
  // The default chat template; a named list ([{"name": "default", "template": ...}]) is reduced
  // to its "default" entry, the rest kept in named_chat_templates.
  std::string chat_template;
  std::map<std::string, std::string> named_chat_templates;
  std::optional<int64_t> model_max_length;
};

// Reads <dir>/tokenizer_config.json; a missing file gives {present = false}. A chat template in
// a separate chat_template.jinja (newer HF layout) is read too. Malformed JSON throws Error.
// A GGUF file (instead of a folder) gives the same settings from its tokenizer.* metadata.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& dir);

class GgufFile;
// The tokenizer.* metadata of a GGUF file as tokenizer_config.json settings: special tokens by
// text, BOS/EOS policy (llama.cpp's defaults when the file says nothing), added tokens
// (CONTROL tokens special, USER_DEFINED ones not), the chat template(s).
TokenizerConfig gguf_tokenizer_config(const GgufFile& file);

}  // namespace tiller
