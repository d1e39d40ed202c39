// Training flags and outputs shared by finetune and distill.
#include "cli/train_common.h"

#include <cstdio>
#include <filesystem>

#include "engine/error.h"
#include "steering/model_fingerprint.h"
#include "steering/peft_adapter.h"
#include "train/save_weights.h"

namespace tiller::cli {
namespace fs = std::filesystem;
namespace {

constexpr const char* kVersion = "tiller 0.1.0";

std::string stem_of(const std::string& out) {
  const fs::path p(out);
  return (p.parent_path() / p.stem()).string();
}

}  // namespace

std::vector<Flag> training_flags() {
  return {
      {"--model", "-m", "DIR", "HF model folder to train from (its weights stay as loaded)", ""},
      {"--threads", "-t", "N", "CPU threads", "one per core"},
      {"--device", "", "cpu|cuda", "where to train", "cuda when built with CUDA and a GPU is visible, else cpu"},
      {"--train", "", "lora|columns:HEADS.json|full", "what is trained: LoRA adapters, the o_proj columns of the heads "
                                                       "in a [[layer, head], ...] list, or every weight (small models)", "lora"},
      {"--lora-rank", "", "R", "LoRA rank (PEFT's r)", "8"},
      {"--lora-alpha", "", "A", "LoRA alpha: the update is scaled by alpha / rank", "8"},
      {"--lora-dropout", "", "P", "dropout on the adapters' input", "0"},
      {"--lora-targets", "", "NAMES", "projections with adapters, PEFT's names (q_proj,k_proj,v_proj,o_proj,gate_proj,"
                                      "up_proj,down_proj) or all-linear", "q_proj,v_proj"},
      {"--steps", "", "N", "optimizer steps (cycling over the data)", "one epoch"},
      {"--epochs", "", "E", "passes over the data, when --steps is not given", "1"},
      {"--lr", "", "LR", "peak learning rate", "2e-4 (full: 2e-5)"},
      {"--lr-scheduler", "", "cosine|linear|constant", "decay after the warm-up (transformers' schedules)", "cosine"},
      {"--warmup-steps", "", "N", "linear warm-up steps", "0"},
      {"--warmup-ratio", "", "F", "warm-up as a fraction of the steps (instead of --warmup-steps)", ""},
      {"--weight-decay", "", "W", "AdamW's decoupled weight decay (not on biases and norm weights)", "0"},
      {"--max-grad-norm", "", "N", "clip the gradients' total L2 norm (0: off)", "1"},
      {"--adam-beta1", "", "B", "AdamW beta1", "0.9"},
      {"--adam-beta2", "", "B", "AdamW beta2", "0.999"},
      {"--adam-epsilon", "", "E", "AdamW epsilon", "1e-8"},
      {"--seed", "", "N", "seed of the data order, the adapters' init, dropout and sampling", "42"},
      {"--recompute", "", "", "keep only each layer's input and recompute its activations in the backward (flat "
                              "activation memory for long sequences, about a third more compute)", ""},
      {"--checkpoint-every", "", "N", "write a checkpoint every N steps", "0 (only the last good state on a stop)"},
      {"--checkpoint-dir", "", "DIR", "where checkpoints go", "<out>.checkpoints"},
      {"--save-total-limit", "", "N", "checkpoints kept (the newest; 0: all)", "2"},
      {"--resume", "", "FILE|DIR", "continue from a checkpoint (a folder: its newest); the model and settings must match", ""},
      {"--loss-log", "", "FILE", "the loss curve, one JSON object per step", "<out>.loss.jsonl"},
      {"--no-progress", "", "", "no progress bar on stderr", ""},
      {"--out", "-o", "PROFILE.safetensors", "the trained result as a steering profile (docs/profile-format.md)", ""},
      {"--peft-out", "", "DIR", "also write a PEFT adapter folder (LoRA only) that HF PEFT and vLLM load", ""},
      {"--save-model", "", "DIR", "also write the trained model as an HF folder (--train full)", ""},
  };
}

void training_warning(const std::string& message) { std::fprintf(stderr, "tiller: warning: %s\n", message.c_str()); }

int64_t steps_flag(const Args& args) { return args.integer("--steps", 0); }

TrainingRun make_training_run(const Args& args, Model& model, const std::string& command, json settings,
                              int64_t total_steps) {
  TrainingRun run;
  const ModelConfig& c = model.config();
  run.out = args.required("--out");
  run.spec = parse_train_spec(args.str("--train", "lora"), c);
  if (run.spec.kind != TrainKind::Lora) {
    for (const char* f : {"--lora-rank", "--lora-alpha", "--lora-dropout", "--lora-targets", "--peft-out"})
      if (args.has(f)) throw UsageError{std::string(f) + " needs --train lora"};
  }
  if (args.has("--save-model") && run.spec.kind != TrainKind::Full)
    throw UsageError{"--save-model needs --train full (LoRA and column profiles merge with tiller steer merge)"};
  LoraSpec& lora = run.spec.lora;
  lora.rank = args.integer("--lora-rank", lora.rank);
  lora.alpha = args.number("--lora-alpha", lora.alpha);
  lora.dropout = args.number("--lora-dropout", lora.dropout);
  if (args.has("--lora-targets")) lora.targets = parse_lora_targets(args.str("--lora-targets"));
  run.seed = uint64_t(args.integer("--seed", 42));
  run.trainable = make_trainable(model, run.spec, run.seed);

  TrainerOptions& t = run.trainer;
  OptimizerOptions& o = t.optim;
  o.lr = args.number("--lr", run.spec.kind == TrainKind::Full ? 2e-5 : 2e-4);
  o.schedule = parse_lr_schedule(args.str("--lr-scheduler", "cosine"));
  o.weight_decay = args.number("--weight-decay", 0.0);
  o.max_grad_norm = args.number("--max-grad-norm", 1.0);
  o.beta1 = args.number("--adam-beta1", 0.9);
  o.beta2 = args.number("--adam-beta2", 0.999);
  o.eps = args.number("--adam-epsilon", 1e-8);
  if (args.has("--warmup-ratio")) {
    const double r = args.number("--warmup-ratio", 0);
    if (r < 0 || r > 1) throw UsageError{"--warmup-ratio expects a fraction in [0, 1]"};
    o.warmup_steps = int64_t(std::ceil(r * double(total_steps)));  // HF: ceil(ratio · steps)
  } else {
    o.warmup_steps = args.integer("--warmup-steps", 0);
  }
  if (!(o.lr > 0) || o.warmup_steps < 0 || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || o.eps < 0)
    throw UsageError{"optimizer settings out of range (lr > 0, warm-up >= 0, 0 <= betas < 1, epsilon >= 0)"};
  t.steps = total_steps;
  t.recompute = args.has("--recompute");
  t.checkpoint_every = args.integer("--checkpoint-every", 0);
  t.checkpoint_dir = args.str("--checkpoint-dir", stem_of(run.out) + ".checkpoints");
  t.keep_checkpoints = int(args.integer("--save-total-limit", 2));
  if (args.has("--resume")) {
    const std::string r = args.str("--resume");
    t.resume = r == "latest" ? t.checkpoint_dir : fs::path(r);
  }
  t.loss_log = args.str("--loss-log", stem_of(run.out) + ".loss.jsonl");
  t.progress = !args.has("--no-progress");
  t.model_fingerprint = model_fingerprint(model);

  settings["command"] = command;
  settings["train"] = run.spec.describe();
  settings["steps"] = total_steps;
  settings["seed"] = run.seed;
  settings["optimizer"] = {{"lr", o.lr},       {"schedule", lr_schedule_name(o.schedule)},
                           {"warmup_steps", o.warmup_steps}, {"weight_decay", o.weight_decay},
                           {"max_grad_norm", o.max_grad_norm}, {"betas", {o.beta1, o.beta2}}, {"eps", o.eps}};
  t.settings = settings;
  return run;
}

void write_training_outputs(const Args& args, TrainingRun& run, const std::string& model_dir, const std::string& method,
                            const std::vector<std::string>& languages, const std::string& description) {
  Trainable& tr = *run.trainable;
  const Model& base = tr.base();
  Profile p;
  p.manifest.method = method;
  p.manifest.languages = languages;
  p.manifest.base_fingerprint = run.trainer.model_fingerprint;
  p.manifest.base_name = fs::path(model_dir).filename().string();
  if (p.manifest.base_name.empty()) p.manifest.base_name = fs::path(model_dir).parent_path().filename().string();
  p.manifest.base_architecture = base.config().architecture_name;
  for (const auto& h : run.spec.heads) p.manifest.heads.push_back(h);
  p.manifest.description = description;
  p.manifest.created_by = std::string(kVersion) + " " + method;
  p.manifest.extra["training"] = run.trainer.settings;
  p.deltas = tr.deltas();
  write_profile(p, run.out);
  std::fprintf(stderr, "tiller %s: %s (%zu deltas, %.2f MiB) -> %s\n", run.trainer.settings.value("command", "").c_str(),
               run.spec.describe().c_str(), p.deltas.size(), double(p.nbytes()) / (1024.0 * 1024.0), run.out.c_str());
  if (run.spec.kind == TrainKind::Full)
    std::fprintf(stderr, "tiller: the profile holds every projection's weight and bias delta (what --profile and steer "
                         "soteria --harmful-profile apply); the norms' and embeddings' changes are only in --save-model\n");
  if (args.has("--peft-out")) {
    write_peft_adapter(p, args.str("--peft-out"), model_dir);
    std::fprintf(stderr, "tiller: PEFT adapter -> %s\n", args.str("--peft-out").c_str());
  }
  if (args.has("--save-model")) {
    save_trained_model(tr, model_dir, args.str("--save-model"));
    std::fprintf(stderr, "tiller: trained model -> %s\n", args.str("--save-model").c_str());
  }
}

}  // namespace tiller::cli
