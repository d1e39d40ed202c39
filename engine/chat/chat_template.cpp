// Chat template rendering with HF's variables, the built-in fallback templates, and the rule
// that picks a model's template.
#include "engine/chat/chat_template.h"

#include <algorithm>

#include "engine/tokenizer/tokenizer.h"

namespace tiller {
namespace {

jinja::DictData make_variables(jinja::Value messages, const ChatRenderOptions& o) {
  jinja::DictData vars;
  vars.set("messages", std::move(messages));
  // HF always passes tools and documents (None when absent) and add_generation_prompt.
  vars.set("tools", jinja::value_from_json(o.tools));
  vars.set("documents", jinja::value_from_json(o.documents));
  vars.set("add_generation_prompt", jinja::Value::boolean(o.add_generation_prompt));
  if (o.bos_token) vars.set("bos_token", jinja::Value::string(*o.bos_token));
  if (o.eos_token) vars.set("eos_token", jinja::Value::string(*o.eos_token));
  if (!o.extra_context.is_null()) {
    if (!o.extra_context.is_object())
      fail("chat template extra_context: expected a JSON object of variables, found ", o.extra_context.type_name());
    for (auto it = o.extra_context.begin(); it != o.extra_context.end(); ++it)
      vars.set(it.key(), jinja::value_from_json(it.value()));
  }
  return vars;
}

jinja::RenderOptions render_options(const ChatRenderOptions& o) {
  jinja::RenderOptions r;
  r.limits = o.limits;
  if (o.date) r.now = jinja::parse_fixed_date(*o.date);
  return r;
}

template <class Json>
jinja::Value messages_value(const Json& messages) {
  if (!messages.is_array()) fail("chat messages: expected a JSON array of messages, found ", messages.type_name());
  return jinja::value_from_json(messages);
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

bool has_token(const TokenizerConfig& config, const Tokenizer* vocabulary, std::string_view text) {
  for (const auto& [id, tok] : config.added_tokens)
    if (tok.content == text) return true;
  if (config.bos_token == text || config.eos_token == text || config.pad_token == text) return true;
  return vocabulary && vocabulary->token_id(text).has_value();
}

}  // namespace

std::string render_chat_template(const std::string& source, const json& messages, const ChatRenderOptions& options) {
  return ChatTemplate(source, "custom").render(messages, options);
}

std::string render_chat_template(const std::string& source, const nlohmann::ordered_json& messages,
                                 const ChatRenderOptions& options) {
  return ChatTemplate(source, "custom").render(messages, options);
}

const std::string& builtin_chat_template(BuiltinChatFormat format) {
  // meta-llama/Llama-2-7b-chat-hf: BOS before every [INST], system prompt folded into the first turn.
  static const std::string llama2 =
      "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
      "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
      "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
      "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
      "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
      "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
      "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
      "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
  // meta-llama/Meta-Llama-3-8B-Instruct.
  static const std::string llama3 =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
      "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% "
      "endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
  // HF's former default ChatML template (Qwen, OpenHermes, ...).
  static const std::string chatml =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  switch (format) {
    case BuiltinChatFormat::Llama2:
      return llama2;
    case BuiltinChatFormat::Llama3:
      return llama3;
    case BuiltinChatFormat::ChatML:
      break;
  }
  return chatml;
}

ChatTemplate::ChatTemplate(std::string source, std::string name)
    : name_(std::move(name)),
      source_(std::move(source)),
      template_(std::make_shared<const jinja::Template>(source_, name_)) {}

ChatTemplate ChatTemplate::builtin(BuiltinChatFormat format) {
  const char* name = format == BuiltinChatFormat::Llama2   ? "llama2"
                     : format == BuiltinChatFormat::Llama3 ? "llama3"
                                                           : "chatml";
  return ChatTemplate(builtin_chat_template(format), name);
}

ChatTemplate ChatTemplate::select(const TokenizerConfig& config, std::string_view choice, const Tokenizer* vocabulary) {
  const std::string want = lower_ascii(choice);
  if (want == "llama2") return builtin(BuiltinChatFormat::Llama2);
  if (want == "llama3") return builtin(BuiltinChatFormat::Llama3);
  if (want == "chatml") return builtin(BuiltinChatFormat::ChatML);
  if (want == "model" || want == "default") {
    if (config.chat_template.empty())
      fail("chat template '", choice, "' requested, but the model's tokenizer_config.json has no chat_template; ",
           "choose llama2, llama3 or chatml");
    return ChatTemplate(config.chat_template, "model");
  }
  if (!want.empty() && want != "auto") {
    auto it = config.named_chat_templates.find(std::string(choice));
    if (it != config.named_chat_templates.end()) return ChatTemplate(it->second, it->first);
    std::string names = "auto, model, llama2, llama3, chatml";
    for (const auto& [n, t] : config.named_chat_templates) names += ", " + n;
    fail("unknown chat template '", choice, "': expected one of ", names);
  }
  if (!config.chat_template.empty()) return ChatTemplate(config.chat_template, "model");
  auto has = [&](std::string_view t) { return has_token(config, vocabulary, t); };
  if (has("<|start_header_id|>") && has("<|end_header_id|>") && has("<|eot_id|>"))
    return builtin(BuiltinChatFormat::Llama3);
  if (has("<|im_start|>") && has("<|im_end|>")) return builtin(BuiltinChatFormat::ChatML);
  if ((has("[INST]") && has("[/INST]")) || (config.bos_token == "<s>" && config.eos_token == "</s>"))
    return builtin(BuiltinChatFormat::Llama2);
  fail("the model ships no chat template and its vocabulary matches none of the built-in formats ",
       "(Llama-3 header tokens, ChatML <|im_start|>/<|im_end|>, Llama-2 <s>/</s> or [INST]); ",
       "choose one explicitly: llama2, llama3 or chatml");
}

std::string ChatTemplate::render(const json& messages, const ChatRenderOptions& options) const {
  return template_->render(make_variables(messages_value(messages), options), render_options(options));
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const {
  return template_->render(make_variables(messages_value(messages), options), render_options(options));
}

ChatRenderOptions chat_options_for(const TokenizerConfig& config) {
  ChatRenderOptions o;
  if (!config.bos_token.empty()) o.bos_token = config.bos_token;
  if (!config.eos_token.empty()) o.eos_token = config.eos_token;
  o.extra_context = nlohmann::ordered_json::object();
  if (!config.pad_token.empty()) o.extra_context["pad_token"] = config.pad_token;
  if (!config.unk_token.empty()) o.extra_context["unk_token"] = config.unk_token;
  return o;
}

}  // namespace tiller
