// tiller generate: stream a continuation of a prompt.
#include <cstdio>
#include <algorithm>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/json_file.h"
#include "models/generate.h"

namespace tiller::cli {

namespace {

const Command& generate_command() {
  static const Command c{
      "generate",
      "generate text from a prompt, streaming it to stdout",
      "tiller generate --model DIR (--prompt TEXT | --tokens 1,2,3) [-n N] [sampling options] [--json]",
      model_flags() + prompt_flags() + sampling_flags() +
          std::vector<Flag>{
              {"--json", "", "", "print one JSON object {tokens, text, ...} instead of streaming text", ""},
              {"--no-display-prompt", "", "", "stream only the continuation, not the --prompt text before it", ""},
          },
      "Examples:\n  tiller generate -m ./SmolLM2-135M -p \"The capital of France is\" -n 32 --temperature 0\n"
      "  tiller generate -m ./model --tokens 1,450,4996 -n 16 --json"};
  return c;
}

int run_generate(const Args& args) {
  Session s = open_session(args, false);
  const std::vector<int32_t> prompt = prompt_tokens(args, s);
  const std::string dir = s.model_dir;
  const GenerationDefaults gen = load_generation_config(dir);
  const ModelConfig& cfg = s.model->config();

  const GenerateOptions opt = generate_options(args, gen, cfg);

  const bool as_json = args.has("--json");
  // The prompt text first, then its continuation decoded as text that follows it (as llama.cpp shows it).
  const bool echo = !as_json && s.tokenizer && args.has("--prompt") && !args.has("--no-display-prompt");
  std::unique_ptr<StreamDecoder> stream;
  if (s.tokenizer) stream = std::make_unique<StreamDecoder>(*s.tokenizer, true, echo);
  else if (!as_json) std::fprintf(stderr, "tiller: %s has no tokenizer; printing token ids\n", dir.c_str());

  // The prompt is shown with the first token, once generation has started (or at the end when
  // no token came), so a refused prompt is never echoed.
  bool echoed = false;
  auto show_prompt = [&] {
    if (!echo || echoed) return;
    std::fputs(args.str("--prompt").c_str(), stdout);
    echoed = true;
  };
  const GenerateResult r = generate(*s.model, prompt, opt, [&](int32_t id) {
    if (as_json) return true;
    show_prompt();
    if (stream) std::fputs(stream->push(id).c_str(), stdout);
    else std::printf("%d ", id);
    std::fflush(stdout);
    return true;
  });

  const double prefill_tps = r.prefill_seconds > 0 ? double(prompt.size()) / r.prefill_seconds : 0;
  const double decode_tps = r.tokens.size() > 1 ? double(r.tokens.size() - 1) / r.decode_seconds : 0;
  if (as_json) {
    json out = {{"tokens", r.tokens},
                {"finish_reason", r.finish_reason},
                {"prompt_tokens", prompt.size()},
                {"seed", opt.seed},
                {"timings", {{"prefill_tokens_per_second", prefill_tps}, {"decode_tokens_per_second", decode_tps}}}};
    if (s.tokenizer) {
      std::vector<int32_t> shown = r.tokens;  // the stop token is not part of the text
      if (r.finish_reason == "stop" && !shown.empty() && std::count(opt.stop_ids.begin(), opt.stop_ids.end(), shown.back()))
        shown.pop_back();
      out["text"] = s.tokenizer->decode(shown);
    } else {
      out["text"] = nullptr;
    }
    std::printf("%s\n", out.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  } else {
    show_prompt();
    if (stream) std::fputs(stream->finish().c_str(), stdout);
    std::printf("\n");
    std::fflush(stdout);  // the text before the statistics on stderr
    std::fprintf(stderr, "tiller: prompt %zu tokens, %.1f tok/s; generated %zu tokens, %.1f tok/s (%s, %s)\n",
                 prompt.size(), prefill_tps, r.tokens.size(), decode_tps, r.finish_reason.c_str(),
                 s.backend->name().c_str());
  }
  return 0;
}

const RegisterSubcommand kRegistered{10, generate_command, run_generate};

}  // namespace
}  // namespace tiller::cli
