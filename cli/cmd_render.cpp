// tiller render: print a conversation rendered with the model's chat template, exactly.
#include <cstdio>

#include "cli/commands.h"
#include "engine/chat/chat_template.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer.h"

namespace tiller::cli {

namespace {

const Command& render_command() {
  static const Command c{
      "render",
      "print a conversation rendered with the model's chat template (nothing else)",
      "tiller render --model DIR --messages FILE.json [--add-generation-prompt] [--date \"26 Jul 2024\"]",
      {
          {"--model", "-m", "DIR", "folder with tokenizer_config.json (the model itself is not needed)", ""},
          {"--messages", "", "FILE.json", "a list of {role, content} messages, or {\"messages\": [...], \"tools\": [...]}", ""},
          {"--add-generation-prompt", "", "", "end with the assistant header, as a prompt for the model", ""},
          {"--date", "", "DATE", "what strftime_now() returns (e.g. \"26 Jul 2024\"), for reproducible renders", "today"},
          {"--chat-template", "", "NAME", "auto, model, llama2, llama3, chatml or a named template of the model", "auto"},
      },
      "Example:\n  echo '[{\"role\":\"user\",\"content\":\"Hi\"}]' > m.json\n"
      "  tiller render -m ./Llama-3.2-1B-Instruct --messages m.json --add-generation-prompt"};
  return c;
}

int run_render(const Args& args) {
  const std::filesystem::path dir = args.required("--model");
  const std::filesystem::path file = args.required("--messages");
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(read_text_file(file));  // keep key order: tojson output depends on it
  } catch (const nlohmann::json::exception& e) {
    fail(file.string(), ": malformed JSON (", e.what(), ")");
  }
  nlohmann::ordered_json messages = doc;
  const TokenizerConfig config = read_tokenizer_config(dir);
  ChatRenderOptions options = chat_options_for(config);
  if (doc.is_object()) {
    if (!doc.contains("messages")) fail(file.string(), ": expected a list of messages or an object with \"messages\"");
    messages = doc["messages"];
    if (doc.contains("tools")) options.tools = doc["tools"];
    if (doc.contains("documents")) options.documents = doc["documents"];
  }
  if (!messages.is_array()) fail(file.string(), ": \"messages\" must be a list, found ", messages.type_name());
  options.add_generation_prompt = args.has("--add-generation-prompt");
  if (args.has("--date")) options.date = args.str("--date");
  const ChatTemplate tmpl = ChatTemplate::select(config, args.str("--chat-template"));
  std::fputs(tmpl.render(messages, options).c_str(), stdout);
  return 0;
}

const RegisterSubcommand kRegistered{50, render_command, run_render};

}  // namespace
}  // namespace tiller::cli
