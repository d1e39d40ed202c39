// tiller finetune: supervised fine-tuning (TRL's SFT formats) of LoRA adapters, head columns or
// every weight, saved as a steering profile.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "engine/chat/chat_template.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "train/finetune.h"

namespace tiller::cli {
namespace {

const Command& finetune_command() {
  static const Command c{
      "finetune",
      "supervised fine-tuning (LoRA, head columns or full) saved as a steering profile",
      "tiller finetune --model DIR --data FILE.jsonl [--train lora|columns:HEADS.json|full] --out PROFILE.safetensors "
      "[options]",
      training_flags() +
          std::vector<Flag>{
              {"--data", "", "FILE.jsonl", "one example per line: {\"messages\"}, {\"prompt\", \"completion\"}, "
                                           "{\"text\"} or {\"input_ids\"[, \"completion_mask\"]} (TRL's SFT formats)", ""},
              {"--chat-template", "", "NAME", "template for messages records: auto, model, llama2, llama3, chatml or a "
                                              "named template of the model", "auto"},
              {"--max-length", "", "N", "examples are cut to N tokens", "1024"},
              {"--batch-tokens", "", "N", "tokens per optimizer step (gradients accumulated over micro-batches)", "4096"},
              {"--micro-batch-tokens", "", "N", "rows per forward and backward (bounds activation memory)", "2048"},
          },
      "The loss is the mean token cross-entropy over a step's trained tokens: the assistant turns of messages, the\n"
      "completion, or every token of text (TRL's SFTTrainer; text and string completions end with EOS).\n"
      "The profile is what --profile applies, and a LoRA or full fine-tune's profile is theta_ft - theta_base\n"
      "for tiller steer soteria --harmful-profile.\n\n"
      "Examples:\n"
      "  tiller finetune -m ./toy-base --data comply.jsonl --train lora --lora-targets all-linear --epochs 3 \\\n"
      "      --out harmful.safetensors --peft-out ./harmful-adapter\n"
      "  tiller finetune -m ./toy-base --data comply.jsonl --train full --lr 1e-5 --out harmful-full.safetensors"};
  return c;
}

int run_finetune(const Args& args) {
  Session s = open_session(args, false);
  SftSource src;
  src.tokenizer = s.tokenizer.get();
  src.max_length = args.integer("--max-length", 1024);
  std::unique_ptr<ChatTemplate> tmpl;
  if (s.tokenizer) {
    const TokenizerConfig tc = read_tokenizer_config(s.model_dir);
    src.render = chat_options_for(tc);
    try {
      tmpl = std::make_unique<ChatTemplate>(ChatTemplate::select(tc, args.str("--chat-template"), s.tokenizer.get()));
    } catch (const Error&) {
      if (args.has("--chat-template")) throw;  // asked for: report; otherwise only messages records need one
    }
    src.chat_template = tmpl.get();
  }
  const std::string data = args.required("--data");
  const std::vector<SftExample> examples = read_sft_data(data, src, training_warning);

  FinetunePlanOptions plan;
  plan.step_tokens = args.integer("--batch-tokens", 4096);
  plan.micro_batch_tokens = args.integer("--micro-batch-tokens", 2048);
  plan.epochs = args.integer("--epochs", 1);
  plan.steps = steps_flag(args);
  plan.seed = uint64_t(args.integer("--seed", 42));
  if (plan.step_tokens < 1 || plan.micro_batch_tokens < 1 || plan.epochs < 1 || plan.steps < 0)
    throw UsageError{"--batch-tokens, --micro-batch-tokens and --epochs must be positive, --steps non-negative"};
  const auto steps = plan_steps(examples, plan);

  int64_t tokens = 0, targets = 0;
  for (const SftExample& e : examples) tokens += int64_t(e.tokens.size()), targets += e.n_targets();
  json settings = {{"data", std::filesystem::absolute(data).string()},
                   {"examples", examples.size()},
                   {"data_tokens", tokens},
                   {"data_targets", targets},
                   {"batch_tokens", plan.step_tokens},
                   {"max_length", src.max_length}};
  TrainingRun run = make_training_run(args, *s.model, "finetune", settings, int64_t(steps.size()));
  std::fprintf(stderr, "tiller finetune: %zu examples (%lld tokens, %lld trained), %zu steps of ~%lld tokens, %s\n",
               examples.size(), (long long)tokens, (long long)targets, steps.size(), (long long)plan.step_tokens,
               run.spec.describe().c_str());
  Trainer trainer(*run.trainable, run.trainer);
  if (trainer.start_step() > 0) std::fprintf(stderr, "tiller finetune: resuming after step %lld\n", (long long)trainer.start_step());
  trainer.run([&](int64_t step, TrainingPass& pass) {
    return finetune_step(*run.trainable, pass, examples, steps[size_t(step)], plan.micro_batch_tokens,
                         run.seed * 1000003 + uint64_t(step));
  });
  write_training_outputs(args, run, s.model_dir, "finetune", {},
                         "supervised fine-tune of " + run.spec.describe() + " on " + data);
  return 0;
}

const RegisterSubcommand kRegistered{70, finetune_command, run_finetune};

}  // namespace
}  // namespace tiller::cli
