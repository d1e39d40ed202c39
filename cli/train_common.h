// What `tiller finetune` and `tiller distill` share: the training flags, the Trainable and the
// trainer settings made from them, and writing the result (profile, PEFT adapter, model folder).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/common.h"
#include "train/trainable.h"
#include "train/trainer.h"

namespace tiller::cli {

// --model, --threads, --device, --train, --lora-*, the optimizer, schedule, checkpoint and output flags.
std::vector<Flag> training_flags();

// The run's settings from the flags (steps known): what a checkpoint records and a resume must match.
struct TrainingRun {
  TrainSpec spec;
  std::unique_ptr<Trainable> trainable;
  TrainerOptions trainer;
  std::string out;          // the profile path
  uint64_t seed = 42;
};

// Makes the trainable and the trainer options. `settings` are the command's own (data, method
// options), merged with the common ones; total_steps is the run's optimizer step count.
TrainingRun make_training_run(const Args& args, Model& model, const std::string& command, json settings,
                              int64_t total_steps);

// "tiller: warning: ..." on stderr.
void training_warning(const std::string& message);

// The steps asked for: --steps, else --epochs × steps_per_epoch.
int64_t steps_flag(const Args& args);

// Writes the profile (method, languages and description for its manifest), and --peft-out /
// --save-model when given; prints where everything went.
void write_training_outputs(const Args& args, TrainingRun& run, const std::string& model_dir, const std::string& method,
                            const std::vector<std::string>& languages, const std::string& description);

}  // namespace tiller::cli
