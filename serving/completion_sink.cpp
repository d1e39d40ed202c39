// A request in flight: scheduler callbacks in, OpenAI response objects and stream chunks out.
#include "serving/completion_sink.h"

#include <random>

namespace tiller::serving {

std::string response_id(const std::string& prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx%08llx", (unsigned long long)rng(), (unsigned long long)(rng() & 0xffffffffu));
  return prefix + buf;
}

const char* api_finish_reason(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    default: return "abort";
  }
}

CompletionSink::CompletionSink(const ServedModel& model, ApiRequest request)
    : model_(model), request_(std::move(request)) {
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  const size_t n = size_t(request_.n);
  for (size_t p = 0; p < request_.prompts.size(); p++) {
    for (size_t c = 0; c < n; c++) {
      const bool continuation = request_.endpoint == Endpoint::Completions;
      choices_.push_back(Choice{ChoiceText(model_, request_.stop, request_.stop_ids, continuation), {}, {}, {}, 0, {}, {}});
      if (request_.echo) {
        choices_.back().text = request_.prompt_texts[p];
        pending_.push_back(ChoiceDelta{int(choices_.size() - 1), request_.prompt_texts[p], {}, {}, {}, {}});
      }
    }
  }
  unfinished_ = int(choices_.size());
}

GenerationRequest CompletionSink::generation_request(size_t i) {
  GenerationRequest g = serving::generation_request(request_, i);
  auto self = shared_from_this();
  const int base = int(i) * request_.n;
  g.on_prompt = [self, i](const std::vector<TokenOutput>& tokens) { self->on_prompt(i, tokens); };
  g.on_token = [self, base](int c, const TokenOutput& t) { return self->on_token(base + c, t); };
  g.on_finish = [self, base](int c, FinishReason r, const std::string& e) { self->on_finish(base + c, r, e); };
  return g;
}

ChoiceDelta& CompletionSink::delta_for(int index) {
  for (auto& d : pending_) {
    if (d.index == index && !d.finish) return d;
  }
  pending_.push_back(ChoiceDelta{index, {}, {}, {}, {}, {}});
  return pending_.back();
}

void CompletionSink::on_prompt(size_t prompt, const std::vector<TokenOutput>& tokens) {
  std::lock_guard lock(mutex_);
  for (int c = 0; c < request_.n; c++) {
    const int index = int(prompt) * request_.n + c;
    for (size_t t = 0; t < tokens.size(); t++) {
      LogprobEntry e = logprob_entry(model_, tokens[t], t > 0);
      choices_[size_t(index)].logprobs.push_back(e);
      if (request_.stream) delta_for(index).logprobs.push_back(std::move(e));
    }
  }
  changed_.notify_all();
}

bool CompletionSink::on_token(int index, const TokenOutput& token) {
  std::lock_guard lock(mutex_);
  Choice& ch = choices_[size_t(index)];
  ch.completion_tokens++;
  ch.token_ids.push_back(token.id);
  const std::string piece = ch.text_state.push(token.id);
  ch.text += piece;
  std::optional<LogprobEntry> entry;
  if (request_.logprobs >= 0) {
    entry = logprob_entry(model_, token);
    ch.logprobs.push_back(*entry);
  }
  if (request_.stream) {
    ChoiceDelta& d = delta_for(index);
    d.text += piece;
    d.token_ids.push_back(token.id);
    if (entry) d.logprobs.push_back(std::move(*entry));
  }
  changed_.notify_all();
  return !ch.text_state.stopped();
}

void CompletionSink::on_finish(int index, FinishReason reason, const std::string& error) {
  std::lock_guard lock(mutex_);
  Choice& ch = choices_[size_t(index)];
  const std::string tail = ch.text_state.finish();
  ch.text += tail;
  ch.finish = ch.text_state.stopped() ? FinishReason::Stop : reason;
  ch.error = error;
  ChoiceDelta& d = delta_for(index);
  d.text += tail;
  d.finish = ch.finish;
  d.error = error;
  unfinished_--;
  changed_.notify_all();
}

bool CompletionSink::wait(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !pending_.empty() || unfinished_ == 0; });
  for (auto& d : pending_) out.push_back(std::move(d));
  pending_.clear();
  return unfinished_ == 0;
}

bool CompletionSink::finished() const {
  std::lock_guard lock(mutex_);
  return unfinished_ == 0;
}

std::string CompletionSink::error() const {
  std::lock_guard lock(mutex_);
  for (const Choice& ch : choices_) {
    if (!ch.error.empty()) return ch.error;
  }
  return {};
}

int64_t CompletionSink::completion_tokens(int i) const {
  std::lock_guard lock(mutex_);
  return choices_[size_t(i)].completion_tokens;
}

FinishReason CompletionSink::finish_reason(int i) const {
  std::lock_guard lock(mutex_);
  return choices_[size_t(i)].finish.value_or(FinishReason::Cancelled);
}

std::string CompletionSink::text(int i) const {
  std::lock_guard lock(mutex_);
  return choices_[size_t(i)].text;
}

ojson CompletionSink::usage() const {
  std::lock_guard lock(mutex_);
  return usage_unlocked();
}

ojson CompletionSink::usage_unlocked() const {
  int64_t prompt = 0, completion = 0;
  for (const auto& p : request_.prompts) prompt += int64_t(p.size());
  for (const Choice& ch : choices_) completion += ch.completion_tokens;
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

namespace {

ojson byte_list(const std::string& bytes) {
  ojson out = ojson::array();
  for (unsigned char c : bytes) out.push_back(int(c));
  return out;
}

ojson chat_logprobs(const std::vector<LogprobEntry>& entries) {
  ojson content = ojson::array();
  for (const LogprobEntry& e : entries) {
    ojson top = ojson::array();
    for (const auto& [bytes, lp] : e.top) top.push_back({{"token", token_text(bytes)}, {"logprob", lp}, {"bytes", byte_list(bytes)}});
    content.push_back({{"token", token_text(e.bytes)}, {"logprob", e.logprob.value_or(0.0f)}, {"bytes", byte_list(e.bytes)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

ojson completion_logprobs(const std::vector<LogprobEntry>& entries) {
  ojson tokens = ojson::array(), lps = ojson::array(), tops = ojson::array(), offsets = ojson::array();
  int64_t offset = 0;
  for (const LogprobEntry& e : entries) {
    tokens.push_back(token_text(e.bytes));
    lps.push_back(e.logprob ? ojson(*e.logprob) : ojson(nullptr));
    if (!e.logprob) {
      tops.push_back(nullptr);
    } else {
      ojson top = ojson::object();
      for (const auto& [bytes, lp] : e.top) top[token_text(bytes)] = lp;
      tops.push_back(top);
    }
    offsets.push_back(offset);
    offset += int64_t(e.bytes.size());
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

}  // namespace

ojson CompletionSink::choice_object(int index, const std::string& text, const std::vector<LogprobEntry>& logprobs,
                                    const std::vector<int32_t>& token_ids, std::optional<FinishReason> finish, bool chunk,
                                    bool first_of_choice) const {
  const bool want_lp = request_.logprobs >= 0;
  ojson c = {{"index", index}};
  if (request_.endpoint == Endpoint::Completions) {
    c["text"] = text;
    c["logprobs"] = want_lp ? completion_logprobs(logprobs) : ojson(nullptr);
  } else if (!chunk) {
    c["message"] = {{"role", "assistant"}, {"content", text}};
    c["logprobs"] = want_lp ? chat_logprobs(logprobs) : ojson(nullptr);
  } else {
    ojson delta = ojson::object();
    if (first_of_choice) delta["role"] = "assistant";
    if (first_of_choice || !text.empty()) delta["content"] = text;
    c["delta"] = delta;
    c["logprobs"] = want_lp && !logprobs.empty() ? chat_logprobs(logprobs) : ojson(nullptr);
  }
  c["finish_reason"] = finish ? ojson(api_finish_reason(*finish)) : ojson(nullptr);
  if (request_.return_token_ids) {
    c["token_ids"] = token_ids;
    if (!chunk || first_of_choice) c["prompt_token_ids"] = request_.prompts[size_t(index / request_.n)];
  }
  return c;
}

ojson CompletionSink::response(const std::string& id) const {
  std::lock_guard lock(mutex_);
  ojson choices = ojson::array();
  for (size_t i = 0; i < choices_.size(); i++) {
    const Choice& ch = choices_[i];
    choices.push_back(choice_object(int(i), ch.text, ch.logprobs, ch.token_ids, ch.finish, false, false));
  }
  const bool chat = request_.endpoint == Endpoint::Chat;
  return {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created_},
          {"model", request_.profile.model}, {"choices", choices}, {"usage", usage_unlocked()}, {"tiller", routing()}};
}

ojson CompletionSink::stream_chunk(const std::string& id, const ChoiceDelta& d, bool first_of_choice) const {
  const bool chat = request_.endpoint == Endpoint::Chat;
  ojson chunk = {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
                 {"model", request_.profile.model},
                 {"choices", ojson::array({choice_object(d.index, d.text, d.logprobs, d.token_ids, d.finish, true,
                                                         first_of_choice)})}};
  if (request_.include_usage) chunk["usage"] = nullptr;
  if (first_of_choice) chunk["tiller"] = routing();
  return chunk;
}

ojson CompletionSink::usage_chunk(const std::string& id) const {
  std::lock_guard lock(mutex_);
  const bool chat = request_.endpoint == Endpoint::Chat;
  return {{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
          {"model", request_.profile.model}, {"choices", ojson::array()}, {"usage", usage_unlocked()}};
}

ojson CompletionSink::routing() const {
  const ProfileChoice& p = request_.profile;
  return {{"profile", p.profile}, {"language", p.language.empty() ? ojson(nullptr) : ojson(p.language)}, {"route", p.reason}};
}

}  // namespace tiller::serving
