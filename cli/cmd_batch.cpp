// tiller batch: a JSONL file of prompts through the continuous-batching scheduler.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/serving_common.h"
#include "serving/batch_runner.h"

namespace tiller::cli {

namespace {

const Command& batch_command() {
  static const Command c{
      "batch",
      "generate for every prompt of a JSONL file, batched; resumable",
      "tiller batch --model DIR --input IN.jsonl --output OUT.jsonl [--max-tokens N] [--max-batch N] [options]",
      model_flags() + scheduler_flags() + routing_flags() +
          std::vector<Flag>{
              {"--input", "-i", "IN.jsonl", "one request per line: {\"id\": ..., \"messages\": [...]} or {\"id\": ..., "
                                            "\"prompt\": \"...\"}, with optional sampling fields (max_tokens, "
                                            "temperature, top_p, top_k, seed, stop, n, ...)", ""},
              {"--output", "-o", "OUT.jsonl", "results in input order: {id, text, prompt_tokens, completion_tokens, "
                                              "finish_reason}; ids already there are skipped", ""},
              {"--max-tokens", "-n", "N", "tokens per answer when a line gives no max_tokens",
               "generation_config.json's max_new_tokens, else 256"},
              {"--quiet", "-q", "", "no progress line", ""},
          },
      "Rerunning with the same --output continues where a previous run stopped. A malformed line is\n"
      "reported with its number and skipped. With --profile NAME=FILE profiles, a line's \"profile\" (or \"model\")\n"
      "field chooses one; lines of different profiles share each forward pass.\n\n"
      "Example:\n  tiller batch -m ./Qwen2.5-0.5B-Instruct -i prompts.jsonl -o answers.jsonl --max-batch 64"};
  return c;
}

int run_batch(const Args& args) {
  serving::BatchOptions bo;
  bo.input = args.required("--input");
  bo.output = args.required("--output");
  bo.progress = !args.has("--quiet");
  Session s = open_session(args, false, ProfileUse::PerRow);
  const GenerationDefaults gen = load_generation_config(s.model_dir);
  bo.max_tokens = args.integer("--max-tokens", gen.max_new_tokens.value_or(256));
  if (*bo.max_tokens < 1) throw UsageError{"--max-tokens must be at least 1"};

  const std::unique_ptr<serving::Scheduler> scheduler = make_scheduler(args, s, 256);
  serving::Scheduler& sched = *scheduler;
  const serving::ServedModel model = served_model(args, s, sched.options().ctx);
  if (bo.progress) std::fprintf(stderr, "tiller batch: %s -> %s\n%s", bo.input.c_str(), bo.output.c_str(),
                                (settings_summary(sched, s) + routing_summary(model)).c_str());
  const serving::BatchSummary r = serving::run_batch_file(model, sched, bo);
  sched.shutdown(std::chrono::milliseconds(0));
  std::fprintf(stderr,
               "tiller batch: %lld written, %lld already done, %lld bad lines, %lld failed; %lld prompt + %lld generated "
               "tokens in %.1f s (%.1f tok/s, %.2f req/s)\n",
               (long long)r.completed, (long long)r.skipped, (long long)r.bad_lines, (long long)r.failed,
               (long long)r.prompt_tokens, (long long)r.completion_tokens, r.seconds,
               r.seconds > 0 ? double(r.completion_tokens) / r.seconds : 0.0,
               r.seconds > 0 ? double(r.completed) / r.seconds : 0.0);
  return r.failed > 0 ? 1 : 0;
}

const RegisterSubcommand kRegistered{24, batch_command, run_batch};

}  // namespace
}  // namespace tiller::cli
