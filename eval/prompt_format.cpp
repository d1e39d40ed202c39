// Prompt formats. Soteria tokenizes instruction + question with the tokenizer's defaults (BOS
// added as the model adds it), which is what tokens() does for soteria and raw.
#include "eval/prompt_format.h"

#include <set>

#include "engine/chat/chat_prompt.h"
#include "engine/error.h"
#include "eval/sha256.h"

namespace tiller::eval {

const char* prompt_format_name(PromptFormat f) {
  switch (f) {
    case PromptFormat::Chat: return "chat";
    case PromptFormat::Soteria: return "soteria";
    case PromptFormat::Raw: return "raw";
  }
  return "?";
}

PromptFormat parse_prompt_format(const std::string& name) {
  if (name == "chat") return PromptFormat::Chat;
  if (name == "soteria") return PromptFormat::Soteria;
  if (name == "raw") return PromptFormat::Raw;
  fail("--prompt-format expects chat, soteria or raw, found '", name, "'");
}

const std::map<std::string, std::string>& soteria_instructions() {
  static const std::map<std::string, std::string> m = {
      {"hi", "केवल दिए गए प्रश्न का उत्तर दें और कुछ भी न दें।"},
      {"bn", "শুধুমাত্র প্রদত্ত প্রশ্নের উত্তর দিন এবং অন্য কিছু দেবেন না।"},
      {"sw", "Toa jibu la swali ulilopewa tu na usitoe kitu kingine chochote."},
      {"en", "Only provide answer of the given question and do not provide anything else."},
      {"zh", "仅提供给定问题的答案，不提供任何其他内容。"},
      {"ta", "கொடுக்கப்பட்ட கேள்விக்கான பதிலை மட்டும் வழங்கவும், வேறு எதையும் வழங்க வேண்டாம்."},
      {"de", "Geben Sie nur eine Antwort auf die gestellte Frage und geben Sie nichts anderes an."},
      {"fr", "Fournissez uniquement la réponse à la question posée et ne fournissez rien d’autre."},
      {"es", "Sólo proporcione la respuesta a la pregunta dada y no proporcione nada más."},
      {"th", "ให้เฉพาะคำตอบของคำถามที่ให้ไว้เท่านั้นและไม่ต้องให้ข้อมูลอื่นใดอีก"},
      {"ar", "قم بتقديم إجابة للسؤال المحدد فقط ولا تقدم أي شيء آخر."},
      {"te", "ఇచ్చిన ప్రశ్నకు మాత్రమే సమాధానాన్ని అందించండి మరియు మరేమీ అందించవద్దు."},
      {"bg", "Дайте отговор само на зададения въпрос и не давайте нищо друго."},
  };
  return m;
}

PromptBuilder::PromptBuilder(const serving::ServedModel& model, PromptFormat format, std::string system,
                             std::map<std::string, std::string> instructions)
    : model_(model), format_(format), system_(std::move(system)), instructions_(soteria_instructions()) {
  for (auto& [lang, text] : instructions) instructions_[lang] = std::move(text);
}

void PromptBuilder::check(const std::vector<EvalItem>& items) const {
  if (!model_.tokenizer)
    fail("the model folder has no tokenizer (tokenizer.json or tokenizer.model), so prompts cannot be tokenized");
  if (format_ == PromptFormat::Chat && !model_.chat_template)
    fail("--prompt-format chat: ", model_.chat_template_error,
         "; use --chat-template NAME, or --prompt-format raw or soteria");
  if (format_ != PromptFormat::Chat && !system_.empty())
    fail("--system applies to the chat format only; the ", prompt_format_name(format_), " format has no system message");
  if (format_ == PromptFormat::Soteria) {
    std::set<std::string> missing;
    for (const auto& item : items) {
      if (!instructions_.count(item.language)) missing.insert(item.language.empty() ? "(no language)" : item.language);
    }
    if (!missing.empty()) {
      std::string m, have;
      for (const auto& l : missing) m += (m.empty() ? "" : ",") + l;
      for (const auto& [l, t] : instructions_) have += (have.empty() ? "" : ",") + l;
      fail("--prompt-format soteria: no instruction for ", m, " (Soteria's cover ", have,
           "); give one with --soteria-instruction LANG=TEXT, or leave those languages out with --languages");
    }
  }
}

nlohmann::ordered_json PromptBuilder::messages(const EvalItem& item) const {
  nlohmann::ordered_json m = nlohmann::ordered_json::array();
  const bool has_system = item.messages.is_array() && !item.messages.empty() && item.messages[0].value("role", "") == "system";
  if (!system_.empty() && !has_system) m.push_back({{"role", "system"}, {"content", system_}});
  if (item.messages.is_array() && !item.messages.empty()) {
    for (const auto& msg : item.messages) m.push_back(msg);
  } else {
    m.push_back({{"role", "user"}, {"content", item.prompt}});
  }
  return m;
}

std::string PromptBuilder::text(const EvalItem& item) const {
  switch (format_) {
    case PromptFormat::Chat: return model_.chat_template->render(messages(item), model_.chat_options);
    case PromptFormat::Soteria: return instructions_.at(item.language) + item.prompt;
    case PromptFormat::Raw: return item.prompt;
  }
  return item.prompt;
}

std::vector<int32_t> PromptBuilder::tokens(const EvalItem& item) const {
  if (format_ == PromptFormat::Chat)
    return encode_chat_prompt(*model_.chat_template, *model_.tokenizer, messages(item), model_.chat_options);
  return model_.tokenizer->encode(text(item));
}

json PromptBuilder::describe() const {
  json j = {{"format", prompt_format_name(format_)}};
  if (format_ == PromptFormat::Chat) {
    j["chat_template"] = model_.chat_template ? model_.chat_template->name() : "";
    j["chat_template_sha256"] = model_.chat_template ? sha256_hex(model_.chat_template->source()) : "";
    j["system"] = system_;
  }
  if (format_ == PromptFormat::Soteria) j["instructions"] = instructions_;
  return j;
}

}  // namespace tiller::eval
