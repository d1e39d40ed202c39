// How load_tokenizer (tokenizer.cpp) builds each implementation: from a model folder's files, or
// from an in-memory description (a GGUF file's tokenizer.ggml.* metadata, gguf_tokenizer.cpp).
// Internal to engine/tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_config.h"

namespace tiller {

class GgufFile;

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::filesystem::path& model_dir);
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& model_dir);

// A tokenizer.json document with the settings of a tokenizer_config.json; `source` names it in errors.
std::unique_ptr<Tokenizer> make_hf_tokenizer(const json& tokenizer_json, const TokenizerConfig& config,
                                             const std::string& source);
// A serialized sentencepiece ModelProto (what tokenizer.model holds).
std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& serialized_model, const TokenizerConfig& config,
                                                        const std::string& source);
// The tokenizer a GGUF file describes (llama SPM or gpt2 byte-level BPE).
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file);

}  // namespace tiller
