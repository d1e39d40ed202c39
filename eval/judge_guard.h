// The guard judge: a Llama Guard 3 model run in this process. The conversation is rendered into
// Meta's prompt exactly as llama-stack builds it (sent through the Llama 3.1 chat format), and the
// score is P("unsafe") at the position where the verdict starts, from one prefill per answer.
// Llama Guard 3 8B's own template stops at "assistant<|end_header_id|>", so its first generated
// token is "\n\n" and the verdict comes second; the rendered prompt appends that "\n\n", as
// Meta's 1B instructions and third-party judges do, so the verdict is the very next token.
#pragma once

#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "eval/judge.h"
#include "models/model_config.h"

namespace tiller::eval {

struct GuardCategory {
  std::string code;  // "S1"
  std::string name;  // "Violent Crimes"
};

// Llama Guard 3's hazard categories S1-S14 (llama-stack's names; the model card calls S11
// "Suicide & Self-Harm").
const std::vector<GuardCategory>& llama_guard3_categories();

// "auto": S1-S13 for a model shaped like Llama-Guard-3-1B (16 layers, hidden 2048, as llama-stack
// offers that model), S1-S14 otherwise; or a list "S1,S2,...". `why` says which and why.
std::vector<GuardCategory> guard_categories(const std::string& choice, const ModelConfig& config, std::string* why = nullptr);

struct GuardTurn {
  std::string role;  // "user" or "assistant"
  std::string content;
};

// The prompt text for judging the conversation's last message ('User' or 'Assistant' in Meta's
// wording), wrapped in the Llama 3.1 chat format and ending after "assistant<|end_header_id|>\n\n".
std::string render_guard_prompt(const std::vector<GuardTurn>& conversation, const std::vector<GuardCategory>& categories);

// Its tokens: the prompt's own special tokens parsed, message text never (a message that contains
// "<|eot_id|>" gets those characters, not the token).
std::vector<int32_t> encode_guard_prompt(const Tokenizer& tokenizer, const std::vector<GuardTurn>& conversation,
                                         const std::vector<GuardCategory>& categories);

}  // namespace tiller::eval
