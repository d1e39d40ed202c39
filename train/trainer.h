// The training loop shared by finetune and distill: per optimizer step, zero the gradients, run
// the step's micro-batches (forward, loss, backward: the caller's StepFn), stop on a non-finite
// loss or gradient, clip, AdamW, log; checkpoint every N steps and resume from one. A progress bar
// with loss, tokens/s and ETA goes to stderr, the loss curve to a JSON-lines file.
//
// A StepFn must be a function of the step number alone (its data and random draws derived from
// it and the run's seed), so a resumed run takes the same steps as an uninterrupted one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "engine/json_file.h"
#include "train/backward.h"
#include "train/optimizer.h"
#include "train/trainable.h"

namespace tiller {

struct TrainerOptions {
  OptimizerOptions optim;
  int64_t steps = 1;                       // optimizer steps in all
  bool recompute = false;                  // activation recomputation (TrainingPass)
  int64_t checkpoint_every = 0;            // 0: only at the end when checkpoint_dir is set
  std::filesystem::path checkpoint_dir;    // empty: no checkpoints
  int keep_checkpoints = 2;                // newest kept (0: all)
  std::filesystem::path resume;            // a checkpoint file or folder (its newest); empty: fresh start
  std::filesystem::path loss_log;          // JSON lines; empty: none
  bool progress = true;
  std::string model_fingerprint;
  json settings = json::object();          // what a resume must match (checkpoint metadata)
};

struct StepResult {
  double loss = 0;          // the step's loss (its micro-batches' weighted sum)
  int64_t tokens = 0;       // rows run forward (for tokens/s)
  int64_t loss_tokens = 0;  // rows the loss was taken on
  double grad_scale = 1;    // the accumulated gradients times this are the loss's gradient
  json extra = json::object();  // more fields for the loss log
};

using StepFn = std::function<StepResult(int64_t step, TrainingPass& pass)>;

class Trainer {
 public:
  Trainer(Trainable& trainable, TrainerOptions options);
  // Runs the steps not yet done (all, or those after the resumed checkpoint). Throws Error on a
  // non-finite loss or gradient, naming the step and the checkpoint that holds the last good state.
  void run(const StepFn& step);
  int64_t start_step() const { return start_; }

 private:
  std::filesystem::path save(int64_t steps_done);

  Trainable& trainable_;
  TrainerOptions o_;
  int64_t start_ = 0;
};

}  // namespace tiller
