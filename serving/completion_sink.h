// One API request in flight: receives the scheduler's callbacks for each of its prompts and
// choices, keeps every choice's text, tokens and logprobs, and hands them to the thread that
// answers the client, whole (OpenAI's response object) or as streaming chunks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serving/openai_request.h"
#include "serving/text_output.h"

namespace tiller::serving {

// News about one choice since the last wait().
struct ChoiceDelta {
  int index = 0;
  std::string text;
  std::vector<LogprobEntry> logprobs;
  std::vector<int32_t> token_ids;
  std::optional<FinishReason> finish;
  std::string error;
};

class CompletionSink : public std::enable_shared_from_this<CompletionSink> {
 public:
  CompletionSink(const ServedModel& model, ApiRequest request);

  // The scheduler request for prompt `i`, with callbacks that keep this sink alive.
  GenerationRequest generation_request(size_t i);

  // Waits up to `timeout` for news and moves it into `out`; true once every choice finished
  // (and `out` holds the last of it).
  bool wait(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout);
  bool finished() const;
  // The first error a choice finished with (empty when none).
  std::string error() const;

  // OpenAI's objects. `id` is the response id ("cmpl-..." / "chatcmpl-...").
  ojson response(const std::string& id) const;                          // after finished()
  ojson stream_chunk(const std::string& id, const ChoiceDelta& delta, bool first_of_choice) const;
  ojson usage_chunk(const std::string& id) const;
  ojson usage() const;
  // {"profile", "language", "route"}: which steering profile answered and why (the "tiller" field).
  ojson routing() const;

  const ApiRequest& request() const { return request_; }
  int n_choices() const { return int(choices_.size()); }
  // Completion tokens and finish reason of choice i (after finished()).
  int64_t completion_tokens(int i) const;
  FinishReason finish_reason(int i) const;
  std::string text(int i) const;

 private:
  struct Choice {
    ChoiceText text_state;
    std::string text;
    std::vector<int32_t> token_ids;
    std::vector<LogprobEntry> logprobs;
    int64_t completion_tokens = 0;
    std::optional<FinishReason> finish;
    std::string error;
  };
  void on_prompt(size_t prompt, const std::vector<TokenOutput>& tokens);
  bool on_token(int index, const TokenOutput& token);
  void on_finish(int index, FinishReason reason, const std::string& error);
  ChoiceDelta& delta_for(int index);
  ojson usage_unlocked() const;
  ojson choice_object(int index, const std::string& text, const std::vector<LogprobEntry>& logprobs,
                      const std::vector<int32_t>& token_ids, std::optional<FinishReason> finish, bool chunk,
                      bool first_of_choice) const;

  const ServedModel& model_;
  const ApiRequest request_;
  int64_t created_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Choice> choices_;    // [prompts * n]: prompt p's choice c is p * n + c
  std::vector<ChoiceDelta> pending_;
  int unfinished_;
};

// A fresh response id with the given prefix ("cmpl-", "chatcmpl-").
std::string response_id(const std::string& prefix);
// OpenAI's finish_reason for a scheduler reason (cancelled and error read "abort").
const char* api_finish_reason(FinishReason reason);

}  // namespace tiller::serving
