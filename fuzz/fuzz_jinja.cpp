// The Jinja lexer, parser and interpreter over arbitrary templates, rendered as chat templates
// with an arbitrary message list and extra variables, under small render limits so every input
// finishes in milliseconds (the limits' own logic is what a hostile template meets in the server).
#include "engine/chat/chat_template.h"
#include "engine/chat/jinja.h"
#include "fuzz/fuzz_target.h"

using namespace tiller;
using ojson = nlohmann::ordered_json;

namespace {

ojson parse_or(std::string_view text, ojson fallback) {
  try {
    return ojson::parse(text);
  } catch (const ojson::exception&) {
    return fallback;
  }
}

}  // namespace

TILLER_FUZZ_TARGET(jinja, "a chat template (lexer, parser, interpreter) rendered over a message list and variables") {
  const auto parts = fuzz::split_parts(data, 3);
  std::optional<ChatTemplate> tmpl;
  if (!fuzz::accepted([&] { tmpl.emplace(std::string(parts[0]), "fuzz"); })) return;
  static const ojson kDefault = ojson::parse(R"([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Why?"}])");
  const ojson messages = parse_or(parts[1], kDefault);
  const ojson context = parse_or(parts[2], ojson::object());
  ChatRenderOptions o;
  o.bos_token = "<s>";
  o.eos_token = "</s>";
  o.date = "2024-07-26";
  o.limits.max_steps = 200'000;
  o.limits.max_value_bytes = 1u << 20;
  o.limits.max_total_bytes = 16u << 20;
  if (context.is_object()) {
    o.extra_context = context;
    if (context.contains("tools")) o.tools = context["tools"];
    if (context.contains("add_generation_prompt") && context["add_generation_prompt"].is_boolean())
      o.add_generation_prompt = context["add_generation_prompt"].get<bool>();
  }
  std::string out;
  if (!fuzz::accepted([&] { out = tmpl->render(messages, o); })) return;
  fuzz::fuzz_check(out.size() <= o.limits.max_value_bytes, "the output stays inside max_value_bytes");
}
