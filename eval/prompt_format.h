// How an evaluation item becomes prompt tokens: the model's chat template (default), Soteria's
// evaluation format (a per-language instruction glued to the question, no template; METHODS §3),
// or the raw text.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "serving/served_model.h"

namespace tiller::eval {

enum class PromptFormat { Chat, Soteria, Raw };
const char* prompt_format_name(PromptFormat format);
PromptFormat parse_prompt_format(const std::string& name);  // chat | soteria | raw

// Soteria's instructions, by language (NeuralSentinel/Soteria@b1c63d6a2adde4802f91f4fce564b7628b64dc10,
// src/Multilingual_Codes/Inference_{Base,Safe}.py `translated_prompt`; its "zh-CN" key is "zh" here).
// They cover ar, bg, bn, de, en, es, fr, hi, sw, ta, te, th, zh.
const std::map<std::string, std::string>& soteria_instructions();

class PromptBuilder {
 public:
  // `instructions` adds to or overrides Soteria's (LANG -> text). `system` is a system message for
  // the chat format ("" for none).
  PromptBuilder(const serving::ServedModel& model, PromptFormat format, std::string system,
                std::map<std::string, std::string> instructions = {});

  // Refuses, before anything runs, what this format cannot build for `items`: no tokenizer, no
  // chat template, a language Soteria has no instruction for, a conversation in a non-chat format.
  void check(const std::vector<EvalItem>& items) const;
  std::vector<int32_t> tokens(const EvalItem& item) const;
  // The text the model is given (the chat template's rendering for chat).
  std::string text(const EvalItem& item) const;
  // What decides the prompts, for the run's identity.
  json describe() const;

 private:
  nlohmann::ordered_json messages(const EvalItem& item) const;

  const serving::ServedModel& model_;
  PromptFormat format_;
  std::string system_;
  std::map<std::string, std::string> instructions_;
};

}  // namespace tiller::eval
