// Supervised fine-tuning steps: the examples of each epoch in a seeded order, packed into optimizer
// steps of about `step_tokens` tokens (gradient accumulation over micro-batches of at most
// `micro_batch_tokens` rows), with the loss the mean token cross-entropy over the step's targets.
#pragma once

#include <cstdint>
#include <vector>

#include "train/sft_data.h"
#include "train/trainer.h"

namespace tiller {

struct FinetunePlanOptions {
  int64_t step_tokens = 4096;        // tokens per optimizer step (at least one example)
  int64_t micro_batch_tokens = 2048;  // rows per forward (at least one example)
  int64_t epochs = 1;                // used when steps is 0
  int64_t steps = 0;                 // > 0: exactly this many steps, cycling over epochs
  uint64_t seed = 0;
};

// The examples of each step, by index: epoch e visits the examples in a permutation drawn from
// (seed, e), cut into steps greedily by token count.
std::vector<std::vector<size_t>> plan_steps(const std::vector<SftExample>& examples, const FinetunePlanOptions& o);

// Runs one step's examples through `pass` (micro-batches, forward, cross-entropy, backward),
// accumulating the gradients of the mean token loss. dropout_seed: LoRA dropout's masks.
StepResult finetune_step(Trainable& trainable, TrainingPass& pass, const std::vector<SftExample>& examples,
                         const std::vector<size_t>& step, int64_t micro_batch_tokens, uint64_t dropout_seed);

}  // namespace tiller
