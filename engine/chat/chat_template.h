// Chat templates: renders an OpenAI-style conversation to the prompt text exactly as HF's
// tokenizer.apply_chat_template(tokenize=False) does, and picks the template for a model
// (its own, or a built-in Llama-2 / Llama-3 / ChatML fallback).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/chat/jinja.h"
#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer_config.h"

namespace tiller {

class Tokenizer;

struct ChatRenderOptions {
  // Append the assistant header so the model answers next. HF's default is False; a server
  // rendering a request for completion wants true.
  bool add_generation_prompt = true;
  // Special-token variables. Unset means the variable is undefined in the template, as in HF
  // when the model has no such token; an empty string is a defined, empty token.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // Fixes strftime_now(): "2024-07-26", "2024-07-26T10:00" or "26 Jul 2024". Unset: now.
  std::optional<std::string> date;
  // Passed as `tools` / `documents`; null means None. ordered_json keeps the caller's key order,
  // which tojson output depends on (a plain tiller::json converts, with its keys sorted).
  nlohmann::ordered_json tools;
  nlohmann::ordered_json documents;
  // More top-level variables (enable_thinking, pad_token, custom_tools, ...); an object or null.
  nlohmann::ordered_json extra_context;
  // Bounds on the render (steps, nesting, sizes): a template that would run away stops with an error.
  jinja::RenderLimits limits;
};

// Renders `source` once (parse + render). Servers should keep a ChatTemplate instead.
// Throws jinja::JinjaError: Syntax/Unsupported with the template position, Raised with the
// template's own raise_exception() message in detail().
std::string render_chat_template(const std::string& source, const json& messages, const ChatRenderOptions& options);
std::string render_chat_template(const std::string& source, const nlohmann::ordered_json& messages,
                                 const ChatRenderOptions& options);

enum class BuiltinChatFormat { Llama2, Llama3, ChatML };

// The template text of a built-in format (the models' published HF templates).
const std::string& builtin_chat_template(BuiltinChatFormat format);

// A parsed chat template: parse once, render many times; render() is const and thread-safe.
class ChatTemplate {
 public:
  ChatTemplate(std::string source, std::string name);
  static ChatTemplate builtin(BuiltinChatFormat format);

  // Picks a model's template. `choice` (a --chat-template style option, case-insensitive):
  //   ""/"auto"                 the model's default template if it ships one, otherwise a built-in
  //                             chosen by the vocabulary (below);
  //   "model"/"default"         the model's default template (error if it has none);
  //   "llama2"|"llama3"|"chatml" that built-in format;
  //   any other name            a named template of tokenizer_config.json ("tool_use", "rag", ...).
  // Built-in choice by vocabulary, looking at tokenizer_config's added tokens and, when given,
  // the tokenizer's vocabulary: <|start_header_id|>, <|end_header_id|> and <|eot_id|> -> llama3;
  // <|im_start|> and <|im_end|> -> chatml; [INST] and [/INST], or BOS "<s>" with EOS "</s>"
  // (the sentencepiece Llama/Mistral family) -> llama2; anything else is an error that asks for
  // an explicit choice, since guessing a format silently would prompt the model wrongly.
  static ChatTemplate select(const TokenizerConfig& config, std::string_view choice = {},
                             const Tokenizer* vocabulary = nullptr);

  std::string render(const json& messages, const ChatRenderOptions& options) const;
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const;

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  std::string name_;
  std::string source_;
  std::shared_ptr<const jinja::Template> template_;
};

// Render options carrying a model's special tokens (bos/eos, plus pad_token and unk_token in
// extra_context), the variables HF passes from the tokenizer's special_tokens_map.
ChatRenderOptions chat_options_for(const TokenizerConfig& config);

}  // namespace tiller
