// What the front ends (server, batch runner) know about the model they serve: its name, tokenizer,
// chat template, generation defaults and context, and how its tokens read as text.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/chat/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "models/model.h"
#include "serving/language_detect.h"

namespace tiller::serving {

struct ServedModel {
  std::string name;                   // the id clients pass as "model"
  const Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;  // null: prompts are token ids and text is the ids, spaced
  std::optional<ChatTemplate> chat_template;  // absent without a tokenizer or a usable template
  std::string chat_template_error;    // why it is absent
  ChatRenderOptions chat_options;
  GenerationDefaults defaults;
  std::vector<int32_t> eos_ids;       // generation_config's, else config.json's
  int64_t ctx = 0;                    // tokens per sequence, prompt included
  int64_t created = 0;                // unix time the server loaded it

  // Steering profiles served beside the base model: adapter a (1..n) is profiles[a - 1].
  struct Profile {
    std::string name, method, source;
    std::vector<std::string> languages;
  };
  std::vector<Profile> profiles;
  int32_t default_adapter = 0;        // requests that name no profile and are not routed
  // --route-by-language: the detector chooses among the keys of `routes` (language -> adapter).
  std::shared_ptr<const LanguageDetector> router;
  std::map<std::string, int32_t> routes;

  std::string profile_name(int32_t adapter) const { return adapter == 0 ? "base" : profiles[size_t(adapter - 1)].name; }
  std::optional<int32_t> find_profile(const std::string& name) const;

  int64_t vocab_size() const { return model->config().vocab_size; }
  // The raw bytes one token contributes to text (special tokens give their text; the id itself
  // without a tokenizer).
  std::string token_bytes(int32_t id) const;
  // Text of generated ids: the tokenizer's decoding, or the ids separated by spaces.
  std::string decode(std::span<const int32_t> ids) const;
};

// Describes a loaded model. `chat_template_choice` is a --chat-template value ("" = auto).
ServedModel describe_model(const Model& model, const Tokenizer* tokenizer, const std::filesystem::path& dir,
                           std::string name, int64_t ctx, const std::string& chat_template_choice = {});
// The same from the folder alone, before (or without) loading the weights: enough to build prompts
// (tokenizer, chat template, context); `model` stays null.
ServedModel describe_model_files(const ModelConfig& config, const Tokenizer* tokenizer, const std::filesystem::path& dir,
                                 std::string name, int64_t ctx, const std::string& chat_template_choice = {});

// OpenAI's rendering of a token that may be part of a UTF-8 character: the text when the bytes
// are valid UTF-8, else "bytes:\xNN..." (as the OpenAI API and vLLM spell partial tokens).
std::string token_text(const std::string& bytes);

// Index of the first byte that is not part of valid UTF-8, or npos when all of `s` is valid.
size_t invalid_utf8_at(std::string_view s);

}  // namespace tiller::serving
