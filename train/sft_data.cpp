// Reading SFT records into (tokens, target mask).
#include "train/sft_data.h"

#include <fstream>

#include "engine/chat/chat_prompt.h"
#include "engine/error.h"

namespace tiller {
namespace {

using ojson = nlohmann::ordered_json;

struct Line {
  std::string where;  // "file:line"
  const ojson& j;
};

std::vector<int32_t> encode_text(const SftSource& s, const std::string& text, const Line& l) {
  if (!s.tokenizer) fail(l.where, ": the model folder has no tokenizer; give records as input_ids");
  EncodeOptions o;
  o.add_special = true;
  return s.tokenizer->encode(text, o);
}

int32_t eos_id(const SftSource& s, const Line& l) {
  const auto eos = s.tokenizer->special().eos;
  if (!eos) fail(l.where, ": the tokenizer has no EOS token to end the text with");
  return *eos;
}

std::vector<int32_t> encode_chat(const SftSource& s, const ojson& messages, bool generation_prompt, const Line& l) {
  if (!s.tokenizer || !s.chat_template)
    fail(l.where, ": chat records need the model's tokenizer and a chat template (--chat-template)");
  ChatRenderOptions o = s.render;
  o.add_generation_prompt = generation_prompt;
  return encode_chat_prompt(*s.chat_template, *s.tokenizer, messages, o);
}

bool starts_with(const std::vector<int32_t>& a, const std::vector<int32_t>& prefix) {
  return prefix.size() <= a.size() && std::equal(prefix.begin(), prefix.end(), a.begin());
}

void check_messages(const ojson& m, const char* field, const Line& l) {
  if (!m.is_array() || m.empty()) fail(l.where, ": \"", field, "\" must be a non-empty list of {role, content} messages");
  for (const auto& msg : m) {
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      fail(l.where, ": every message of \"", field, "\" needs a string \"role\"");
  }
}

SftExample from_messages(const SftSource& s, const Line& l) {
  const ojson& msgs = l.j["messages"];
  check_messages(msgs, "messages", l);
  SftExample e;
  e.tokens = encode_chat(s, msgs, false, l);
  e.target.assign(e.tokens.size(), 0);
  int assistants = 0;
  for (size_t i = 0; i < msgs.size(); i++) {
    if (msgs[i]["role"] != "assistant") continue;
    assistants++;
    const ojson before(msgs.begin(), msgs.begin() + long(i)), through(msgs.begin(), msgs.begin() + long(i + 1));
    const std::vector<int32_t> start = before.empty() ? std::vector<int32_t>{} : encode_chat(s, before, true, l);
    const std::vector<int32_t> end = encode_chat(s, through, false, l);
    if (!starts_with(e.tokens, end) || !starts_with(end, start))
      fail(l.where, ": the chat template does not render this conversation incrementally (the tokens up to "
           "assistant turn ", assistants, " are not a prefix of the whole), so its tokens cannot be located; "
           "use prompt/completion records instead");
    std::fill(e.target.begin() + long(start.size()), e.target.begin() + long(end.size()), 1);
  }
  if (assistants == 0) fail(l.where, ": \"messages\" has no assistant turn to train on");
  return e;
}

SftExample from_prompt_completion(const SftSource& s, const Line& l) {
  const ojson& p = l.j["prompt"];
  const ojson& c = l.j["completion"];
  SftExample e;
  std::vector<int32_t> prompt;
  if (p.is_string() && c.is_string()) {
    prompt = encode_text(s, p.get<std::string>(), l);
    e.tokens = encode_text(s, p.get<std::string>() + c.get<std::string>(), l);
    e.tokens.push_back(eos_id(s, l));
  } else if (p.is_array() && c.is_array()) {
    check_messages(p, "prompt", l);
    check_messages(c, "completion", l);
    ojson all = p;
    for (const auto& m : c) all.push_back(m);
    prompt = encode_chat(s, p, true, l);
    e.tokens = encode_chat(s, all, false, l);
  } else {
    fail(l.where, ": \"prompt\" and \"completion\" must both be strings or both be lists of messages");
  }
  if (prompt.size() >= e.tokens.size())
    fail(l.where, ": the completion adds no token after the prompt");
  e.target.assign(e.tokens.size(), 0);
  std::fill(e.target.begin() + long(prompt.size()), e.target.end(), 1);
  return e;
}

SftExample from_ids(const Line& l, int64_t vocab) {
  SftExample e;
  for (const auto& v : l.j["input_ids"]) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || (vocab > 0 && v.get<int64_t>() >= vocab))
      fail(l.where, ": \"input_ids\" must hold token ids in [0, ", vocab, ")");
    e.tokens.push_back(v.get<int32_t>());
  }
  e.target.assign(e.tokens.size(), 1);
  if (l.j.contains("completion_mask")) {
    const ojson& m = l.j["completion_mask"];
    if (!m.is_array() || m.size() != e.tokens.size())
      fail(l.where, ": \"completion_mask\" must be a list as long as \"input_ids\" (", e.tokens.size(), ")");
    for (size_t i = 0; i < m.size(); i++) e.target[i] = m[i].get<int>() != 0;
  }
  return e;
}

}  // namespace

int64_t SftExample::n_targets() const {
  int64_t n = 0;
  for (size_t i = 1; i < target.size(); i++) n += target[i];
  return n;
}

std::vector<SftExample> read_sft_data(const std::filesystem::path& path, const SftSource& source,
                                      const std::function<void(const std::string&)>& warn) {
  std::ifstream in(path);
  if (!in) fail("--data ", path.string(), ": cannot open the file");
  std::vector<SftExample> out;
  std::string text;
  int64_t line_no = 0, dropped = 0;
  const int64_t vocab = source.tokenizer ? source.tokenizer->vocab_size() : 0;
  while (std::getline(in, text)) {
    line_no++;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    ojson j;
    try {
      j = ojson::parse(text);
    } catch (const ojson::parse_error& e) {
      fail(where, ": not valid JSON (", e.what(), ")");
    }
    const Line l{where, j};
    SftExample e;
    if (!j.is_object()) fail(where, ": expected a JSON object per line");
    if (j.contains("messages")) e = from_messages(source, l);
    else if (j.contains("prompt") || j.contains("completion")) {
      if (!j.contains("prompt") || !j.contains("completion")) fail(where, ": a record needs both \"prompt\" and \"completion\"");
      e = from_prompt_completion(source, l);
    } else if (j.contains("text")) {
      if (!j["text"].is_string()) fail(where, ": \"text\" must be a string");
      e.tokens = encode_text(source, j["text"].get<std::string>(), l);
      e.tokens.push_back(eos_id(source, l));
      e.target.assign(e.tokens.size(), 1);
    } else if (j.contains("input_ids")) {
      e = from_ids(l, vocab);
    } else {
      fail(where, ": expected one of the SFT formats: \"messages\", \"prompt\" + \"completion\", \"text\" or "
           "\"input_ids\" (found keys ", j.size() ? j.begin().key() : std::string("none"), ", ...)");
    }
    if (!e.target.empty()) e.target[0] = 0;
    if (int64_t(e.tokens.size()) > source.max_length) {
      e.tokens.resize(size_t(source.max_length));
      e.target.resize(size_t(source.max_length));
    }
    if (e.n_targets() == 0) {
      dropped++;
      continue;
    }
    out.push_back(std::move(e));
  }
  if (dropped > 0 && warn)
    warn(std::to_string(dropped) + " example(s) of " + path.string() + " have no token to train on after cutting to " +
         std::to_string(source.max_length) + " tokens (--max-length) and were dropped");
  if (out.empty()) fail("--data ", path.string(), ": no example to train on");
  return out;
}

}  // namespace tiller
