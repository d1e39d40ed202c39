// OpenAI request bodies (/v1/completions, /v1/chat/completions, batch lines) parsed and checked
// into prompts and decoding settings. Every refusal is an ApiError with the HTTP status, OpenAI's
// error type and the offending parameter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/json_file.h"
#include "serving/profile_routing.h"
#include "serving/scheduler.h"
#include "serving/served_model.h"

namespace tiller::serving {

using ojson = nlohmann::ordered_json;

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = {}, std::string type = "invalid_request_error",
           std::string code = {})
      : Error(message), status(status), param(std::move(param)), type(std::move(type)), code(std::move(code)) {}
  int status;
  std::string param, type, code;
};

// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
ojson error_body(const std::string& message, const std::string& type, const std::string& param = {},
                 const std::string& code = {});

enum class Endpoint { Completions, Chat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::vector<std::vector<int32_t>> prompts;  // one per prompt of a batched completions request
  std::vector<std::string> prompt_texts;      // the prompts as text, for echo
  int64_t max_tokens = 16;
  SamplingParams sampling;
  uint64_t seed = 0;
  int n = 1;
  std::vector<std::string> stop;              // stop strings: not part of the returned text
  std::vector<int32_t> stop_ids;              // end-of-sequence ids (unless ignore_eos) and stop_token_ids
  int logprobs = -1;                          // < 0: none; else the number of top alternatives
  bool echo = false;                          // completions: prompt text (and logprobs) included
  bool stream = false;
  bool include_usage = false;                 // stream_options.include_usage
  bool return_token_ids = false;              // vLLM's extension: token ids beside the text
  ProfileChoice profile;                      // the steering profile its rows use, and why
};

// `default_max_tokens` replaces the endpoint's default (completions 16, chat: the rest of the
// context) when the body gives none; the batch runner passes its --max-tokens.
ApiRequest parse_completion_request(const ojson& body, const ServedModel& model,
                                    std::optional<int64_t> default_max_tokens = {});
ApiRequest parse_chat_request(const ojson& body, const ServedModel& model,
                              std::optional<int64_t> default_max_tokens = {});

// Parses a request body as JSON, refusing invalid UTF-8 and malformed JSON with 400.
ojson parse_body(const std::string& body);

// The chat prompt of a messages array (the /tokenize endpoint uses it too).
std::vector<int32_t> encode_messages(const ojson& messages, const ojson& tools, const ServedModel& model);
// A completions prompt: a string (tokenized as HF does, BOS included) or a list of token ids.
std::vector<int32_t> encode_prompt(const ojson& prompt, const ServedModel& model, const std::string& param);

// The scheduler request for prompt `i` of a parsed request (callbacks left for the caller).
GenerationRequest generation_request(const ApiRequest& request, size_t i);

}  // namespace tiller::serving
