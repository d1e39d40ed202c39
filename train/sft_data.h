// Supervised fine-tuning data: JSON lines in the formats TRL's SFTTrainer reads, each turned into
// tokens and the mask of tokens the loss is taken on.
//
//   {"messages": [{"role": ..., "content": ...}, ...]}   the chat template; loss on assistant turns
//   {"prompt": ..., "completion": ...}                   strings, or lists of messages; loss on the completion
//   {"text": ...}                                        loss on every token
//   {"input_ids": [...], "completion_mask": [...]}       already tokenized (mask optional: all tokens)
//
// As TRL: text and string completions get the tokenizer's EOS appended; a string prompt and its
// completion are tokenized together and the prompt's own token count marks where the loss starts.
// An assistant turn's tokens are found by rendering the conversation up to it (with the generation
// prompt) and through it: the difference, end-of-turn token included, is trained on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/chat/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

namespace tiller {

struct SftExample {
  std::vector<int32_t> tokens;  // [n]
  std::vector<uint8_t> target;  // [n] 1: token i is predicted from tokens[0..i) and trained on (target[0] = 0)
  int64_t n_targets() const;
};

struct SftSource {
  const Tokenizer* tokenizer = nullptr;     // null: only input_ids records are accepted
  const ChatTemplate* chat_template = nullptr;  // null: messages records are refused
  ChatRenderOptions render;                 // bos/eos token text etc. (chat_options_for)
  int64_t max_length = 1024;                // longer examples are cut (from the right, as TRL)
};

// Reads every line; throws Error naming the file, the line and what was expected. Examples left
// without a target after truncation are dropped, counted through `warn`.
std::vector<SftExample> read_sft_data(const std::filesystem::path& path, const SftSource& source,
                                      const std::function<void(const std::string&)>& warn);

}  // namespace tiller
