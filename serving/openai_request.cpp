// Parsing and checking OpenAI request bodies.
#include "serving/openai_request.h"

#include <charconv>
#include <random>

#include "engine/chat/chat_prompt.h"
#include "engine/chat/jinja_error.h"

namespace tiller::serving {

namespace {

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string shown(const ojson& v) {
  std::string s = v.dump(-1, ' ', false, ojson::error_handler_t::replace);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

const ojson* field(const ojson& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number_field(const ojson& body, const char* name, double lo, double hi, bool lo_open = false) {
  const ojson* v = field(body, name);
  if (!v) return std::nullopt;
  const bool ok = v->is_number() && (lo_open ? v->get<double>() > lo : v->get<double>() >= lo) && v->get<double>() <= hi;
  if (!ok) {
    throw ApiError(400, std::string("'") + name + "' must be a number " + (lo_open ? "greater than " : "from ") +
                            number_text(lo) + (lo_open ? " up to " : " to ") + number_text(hi) + ", found " + shown(*v),
                   name);
  }
  return v->get<double>();
}

std::optional<int64_t> integer_field(const ojson& body, const char* name, int64_t lo, int64_t hi) {
  const ojson* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer() || v->get<int64_t>() < lo || v->get<int64_t>() > hi) {
    throw ApiError(400, std::string("'") + name + "' must be an integer from " + std::to_string(lo) + " to " +
                            std::to_string(hi) + ", found " + shown(*v), name);
  }
  return v->get<int64_t>();
}

std::optional<bool> bool_field(const ojson& body, const char* name) {
  const ojson* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw ApiError(400, std::string("'") + name + "' must be true or false, found " + shown(*v), name);
  return v->get<bool>();
}

int32_t token_id(const ojson& v, const ServedModel& m, const std::string& param) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= m.vocab_size()) {
    throw ApiError(400, "'" + param + "' token ids must be integers in [0, " + std::to_string(m.vocab_size()) +
                            "), found " + shown(v), param);
  }
  return int32_t(v.get<int64_t>());
}

// OpenAI's {"token id": bias} with bias in [-100, 100], ids as strings (JSON keys).
std::vector<std::pair<int32_t, float>> logit_bias(const ojson& body, const ServedModel& m) {
  const ojson* v = field(body, "logit_bias");
  if (!v) return {};
  if (!v->is_object())
    throw ApiError(400, "'logit_bias' must be an object mapping token ids to numbers, found " + shown(*v), "logit_bias");
  std::vector<std::pair<int32_t, float>> out;
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    int64_t id = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id >= m.vocab_size()) {
      throw ApiError(400, "'logit_bias' keys must be token ids in [0, " + std::to_string(m.vocab_size()) +
                              "), found \"" + key + "\"", "logit_bias");
    }
    const ojson& bias = it.value();
    if (!bias.is_number() || bias.get<double>() < -100 || bias.get<double>() > 100) {
      throw ApiError(400, "'logit_bias' values must be numbers from -100 to 100, found " + shown(bias) +
                              " for token " + key, "logit_bias");
    }
    out.emplace_back(int32_t(id), float(bias.get<double>()));
  }
  return out;
}

std::vector<std::string> stop_strings(const ojson& body) {
  const ojson* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) out.push_back(v->get<std::string>());
  else if (v->is_array() && v->size() <= 16) {
    for (const auto& s : *v) {
      if (!s.is_string()) throw ApiError(400, "'stop' must be a string or a list of strings, found " + shown(*v), "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw ApiError(400, "'stop' must be a string or a list of at most 16 strings, found " + shown(*v), "stop");
  }
  for (const auto& s : out) {
    if (s.empty()) throw ApiError(400, "'stop' strings must not be empty", "stop");
  }
  return out;
}

// Settings both endpoints share; the prompt is already in `r.prompts`. `user_text` is what the
// language router reads.
void parse_common(const ojson& body, const ServedModel& m, ApiRequest& r, std::optional<int64_t> default_max_tokens,
                  std::string_view user_text) {
  r.profile = choose_profile(body, user_text, m);
  r.n = int(integer_field(body, "n", 1, 128).value_or(1));
  r.stream = bool_field(body, "stream").value_or(false);
  if (const ojson* so = field(body, "stream_options")) {
    if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object, found " + shown(*so), "stream_options");
    r.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
  r.return_token_ids = bool_field(body, "return_token_ids").value_or(false);

  // Decoding: the model's generation_config.json as HF applies it (greedy unless do_sample),
  // overridden by the request; temperature > 0 turns sampling on.
  const GenerationDefaults& g = m.defaults;
  const std::optional<double> temperature = number_field(body, "temperature", 0, 2);
  const std::optional<double> top_p = number_field(body, "top_p", 0, 1, true);
  const std::optional<int64_t> top_k = integer_field(body, "top_k", -1, 1 << 30);
  const std::optional<double> min_p = number_field(body, "min_p", 0, 1);
  const std::optional<double> rep = number_field(body, "repetition_penalty", 0, 100, true);
  const bool sample = temperature ? *temperature > 0 : g.do_sample;
  if (sample) {
    r.sampling.temperature = float(temperature.value_or(g.temperature));
    r.sampling.top_p = float(top_p.value_or(g.top_p));
    r.sampling.top_k = top_k ? int(std::max<int64_t>(*top_k, 0)) : g.top_k;
    r.sampling.min_p = float(min_p.value_or(g.min_p));
  }
  r.sampling.repetition_penalty = float(rep.value_or(g.repetition_penalty));
  r.sampling.presence_penalty = float(number_field(body, "presence_penalty", -2, 2).value_or(0));
  r.sampling.frequency_penalty = float(number_field(body, "frequency_penalty", -2, 2).value_or(0));
  r.sampling.logit_bias = logit_bias(body, m);
  if (const ojson* v = field(body, "response_format")) {
    if (!v->is_object() || v->value("type", "") != "text")
      throw ApiError(400, "only 'response_format' {\"type\": \"text\"} is supported, found " + shown(*v), "response_format");
  }
  if (const ojson* v = field(body, "seed")) {
    if (!v->is_number_integer()) throw ApiError(400, "'seed' must be an integer, found " + shown(*v), "seed");
    r.seed = v->is_number_unsigned() ? v->get<uint64_t>() : uint64_t(v->get<int64_t>());
  } else {
    r.seed = std::random_device{}();
  }

  r.stop = stop_strings(body);
  if (!r.stop.empty() && !m.tokenizer)
    throw ApiError(400, "'stop' strings need a tokenizer, and this model has none; use 'stop_token_ids'", "stop");
  if (!bool_field(body, "ignore_eos").value_or(false)) r.stop_ids = m.eos_ids;
  if (const ojson* v = field(body, "stop_token_ids")) {
    if (!v->is_array()) throw ApiError(400, "'stop_token_ids' must be a list of token ids, found " + shown(*v), "stop_token_ids");
    for (const auto& id : *v) r.stop_ids.push_back(token_id(id, m, "stop_token_ids"));
  }

  // Length: an explicit max_tokens that cannot fit is refused, as OpenAI does; the default is
  // what fits.
  const char* max_name = r.endpoint == Endpoint::Chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const std::optional<int64_t> max_tokens = integer_field(body, max_name, 0, int64_t(1) << 40);
  size_t longest = 0;
  for (const auto& p : r.prompts) longest = std::max(longest, p.size());
  const int64_t P = int64_t(longest);
  const bool scoring = r.echo && r.logprobs >= 0;
  if (max_tokens && *max_tokens == 0 && !r.echo)
    throw ApiError(400, std::string("'") + max_name + "' must be at least 1 (0 is only for scoring a prompt with echo)", max_name);
  if (P >= m.ctx && !(scoring && max_tokens == 0 && P <= m.ctx)) {
    throw ApiError(400, "This model's maximum context length is " + std::to_string(m.ctx) + " tokens. However, your " +
                            (r.endpoint == Endpoint::Chat ? "messages resulted in " : "prompt has ") + std::to_string(P) +
                            " tokens. Please reduce the length of the " +
                            (r.endpoint == Endpoint::Chat ? "messages." : "prompt."),
                   r.endpoint == Endpoint::Chat ? "messages" : "prompt", "invalid_request_error", "context_length_exceeded");
  }
  if (max_tokens && P + *max_tokens > m.ctx) {
    throw ApiError(400, "This model's maximum context length is " + std::to_string(m.ctx) + " tokens. However, you requested " +
                            std::to_string(P + *max_tokens) + " tokens (" + std::to_string(P) + " in the prompt, " +
                            std::to_string(*max_tokens) + " for the completion). Please reduce the prompt or '" + max_name + "'.",
                   max_name, "invalid_request_error", "context_length_exceeded");
  }
  if (max_tokens) r.max_tokens = *max_tokens;
  else if (default_max_tokens) r.max_tokens = std::min(*default_max_tokens, m.ctx - P);
  else r.max_tokens = r.endpoint == Endpoint::Chat ? m.ctx - P : std::min<int64_t>(16, m.ctx - P);
}

// The text of every user message (string content or text parts), what the language router reads.
std::string user_text(const ojson& messages) {
  std::string text;
  for (const auto& msg : messages) {
    if (!msg.is_object() || msg.value("role", "") != "user") continue;
    const ojson content = msg.value("content", ojson());
    auto add = [&](const std::string& t) { text += (text.empty() ? "" : "\n") + t; };
    if (content.is_string()) add(content.get<std::string>());
    else if (content.is_array()) {
      for (const auto& part : content) {
        if (part.is_object() && part.contains("text") && part["text"].is_string()) add(part["text"].get<std::string>());
      }
    }
  }
  return text;
}

}  // namespace

ojson error_body(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
  ojson e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

ojson parse_body(const std::string& body) {
  if (const size_t at = invalid_utf8_at(body); at != std::string_view::npos)
    throw ApiError(400, "the request body is not valid UTF-8 (byte " + std::to_string(at) + "); send UTF-8 JSON");
  try {
    // Deep nesting would only serve to exhaust the stack of whatever walks the value later.
    ojson j = ojson::parse(body, [](int depth, ojson::parse_event_t, ojson&) {
      if (depth > 64) throw ApiError(400, "the request body nests JSON deeper than 64 levels");
      return true;
    });
    if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object, found " + shown(j));
    return j;
  } catch (const ojson::exception& e) {  // parse errors, and numbers past double's range
    throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what());
  }
}

std::vector<int32_t> encode_prompt(const ojson& prompt, const ServedModel& m, const std::string& param) {
  std::vector<int32_t> ids;
  if (prompt.is_string()) {
    if (!m.tokenizer)
      throw ApiError(400, "this model has no tokenizer, so text prompts cannot be encoded; send token ids", param);
    ids = m.tokenizer->encode(prompt.get<std::string>(), {.add_special = true, .parse_special = true});
  } else if (prompt.is_array()) {
    for (const auto& v : prompt) ids.push_back(token_id(v, m, param));
  } else {
    throw ApiError(400, "'" + param + "' must be a string or a list of token ids, found " + shown(prompt), param);
  }
  if (ids.empty()) throw ApiError(400, "'" + param + "' is empty: give some text or at least one token id", param);
  return ids;
}

std::vector<int32_t> encode_messages(const ojson& messages, const ojson& tools, const ServedModel& m) {
  if (!m.chat_template) throw ApiError(400, m.chat_template_error, "messages");
  if (!messages.is_array() || messages.empty())
    throw ApiError(400, "'messages' must be a non-empty list of {role, content} objects", "messages");
  ojson normalized = ojson::array();
  for (const auto& msg : messages) {
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      throw ApiError(400, "each message must be an object with a string 'role', found " + shown(msg), "messages");
    ojson copy = msg;
    if (auto c = msg.find("content"); c != msg.end() && c->is_array()) {  // text parts -> one string
      std::string text;
      for (const auto& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          throw ApiError(400, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported, found " + shown(part),
                         "messages");
        text += (text.empty() ? "" : "\n") + part["text"].get<std::string>();
      }
      copy["content"] = text;
    } else if (c != msg.end() && !c->is_string() && !c->is_null()) {
      throw ApiError(400, "message 'content' must be a string, a list of text parts or null, found " + shown(*c), "messages");
    }
    normalized.push_back(std::move(copy));
  }
  ChatRenderOptions options = m.chat_options;
  if (!tools.is_null()) {
    if (!tools.is_array()) throw ApiError(400, "'tools' must be a list, found " + shown(tools), "tools");
    options.tools = tools;
  }
  try {
    return encode_chat_prompt(*m.chat_template, *m.tokenizer, normalized, options);
  } catch (const jinja::JinjaError& e) {
    using Kind = jinja::JinjaError::Kind;
    if (e.kind() == Kind::Raised || e.kind() == Kind::Runtime)  // the template rejected these messages
      throw ApiError(400, "the chat template refused the messages: " + e.detail(), "messages");
    throw ApiError(500, std::string("the model's chat template cannot be rendered: ") + e.what(), "", "server_error");
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "messages");
  }
}

ApiRequest parse_completion_request(const ojson& body, const ServedModel& m, std::optional<int64_t> default_max_tokens) {
  ApiRequest r;
  r.endpoint = Endpoint::Completions;
  const ojson* prompt = field(body, "prompt");
  if (!prompt) throw ApiError(400, "'prompt' is required: a string, a list of strings, or token ids", "prompt");
  // A list of strings or of token lists is a batch of prompts.
  const bool batch = prompt->is_array() && !prompt->empty() && (prompt->front().is_string() || prompt->front().is_array());
  if (prompt->is_array() && prompt->empty()) throw ApiError(400, "'prompt' is an empty list", "prompt");
  const ojson items = batch ? *prompt : ojson::array({*prompt});
  for (const auto& p : items) {
    r.prompts.push_back(encode_prompt(p, m, "prompt"));
    r.prompt_texts.push_back(p.is_string() ? p.get<std::string>() : m.decode(r.prompts.back()));
  }
  r.echo = bool_field(body, "echo").value_or(false);
  if (const ojson* v = field(body, "logprobs")) {
    if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > 20)
      throw ApiError(400, "'logprobs' must be an integer from 0 to 20, found " + shown(*v), "logprobs");
    r.logprobs = int(v->get<int64_t>());
  }
  if (field(body, "suffix")) throw ApiError(400, "'suffix' is not supported", "suffix");
  if (integer_field(body, "best_of", 1, 128).value_or(1) > 1) throw ApiError(400, "'best_of' > 1 is not supported", "best_of");
  std::string text;
  for (const auto& p : items) {
    if (p.is_string()) text += (text.empty() ? "" : "\n") + p.get<std::string>();
  }
  parse_common(body, m, r, default_max_tokens, text);
  return r;
}

ApiRequest parse_chat_request(const ojson& body, const ServedModel& m, std::optional<int64_t> default_max_tokens) {
  ApiRequest r;
  r.endpoint = Endpoint::Chat;
  const ojson* messages = field(body, "messages");
  if (!messages) throw ApiError(400, "'messages' is required", "messages");
  const ojson* tools = field(body, "tools");
  r.prompts.push_back(encode_messages(*messages, tools ? *tools : ojson(), m));
  const bool logprobs = bool_field(body, "logprobs").value_or(false);
  const std::optional<int64_t> top = integer_field(body, "top_logprobs", 0, 20);
  if (top && !logprobs) throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
  if (logprobs) r.logprobs = int(top.value_or(0));
  parse_common(body, m, r, default_max_tokens, user_text(*messages));
  return r;
}

GenerationRequest generation_request(const ApiRequest& request, size_t i) {
  GenerationRequest g;
  g.prompt = request.prompts[i];
  g.max_tokens = request.max_tokens;
  g.sampling = request.sampling;
  g.seed = request.seed + uint64_t(i) * uint64_t(request.n);  // prompts of a batch draw apart
  g.stop_ids = request.stop_ids;
  g.n = request.n;
  g.logprobs = request.logprobs;
  g.prompt_logprobs = request.echo && request.logprobs >= 0;
  g.adapter = request.profile.adapter;
  return g;
}

}  // namespace tiller::serving
