// Multilingual self-distillation (METHODS §5) steps. Per optimizer step, a few queries: the
// response y is sampled from the student (on-policy: the target-language query alone, with the
// trained delta) or from the teacher (off-policy: the English query in the teacher template), then
// scored teacher-forced under both prefixes, which share nothing: the teacher (the frozen starting
// model, or with --teacher live the current one, without gradient) on c_T + y, the student on
// c_S + y with the training tape. The loss and the student logits' gradient come from
// distill_loss.h, the rest of the backward is the decoder's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/distill_loss.h"
#include "train/sampling.h"
#include "train/trainer.h"

namespace tiller {

struct DistillExample {
  std::string id;
  std::vector<int32_t> student_prompt;  // the target-language query in the chat template
  std::vector<int32_t> teacher_prompt;  // the teacher template (English query + instruction) in the chat template
  std::vector<int32_t> response;        // fixed response (tests, precomputed off-policy data); empty: sample one
};

struct DistillOptions {
  bool on_policy = true;       // sample y from the student; false: from the teacher
  bool teacher_live = false;   // the teacher is the current model (no gradient) instead of the start
  DistillLossOptions loss;
  SampleOptions sampling;
  int64_t micro_batch_tokens = 2048;  // student rows per forward and backward
};

// The queries of each step: `per_step` at a time, epoch e in a permutation drawn from (seed, e).
std::vector<std::vector<size_t>> plan_distill_steps(size_t n_queries, int64_t per_step, int64_t steps, uint64_t seed);

// One step over examples[step[i]]: samples (seeded from step_seed), scores, accumulates Σ w_t ∇D_t
// and returns the normaliser as grad_scale (1 / Σ w, or 1 / tokens), so the optimizer sees the
// gradient of the normalised loss. Extra log fields: the mean divergence, mean weight, mean
// response length.
StepResult distill_step(Trainable& trainable, TrainingPass& pass, const std::vector<DistillExample>& examples,
                        const std::vector<size_t>& step, const DistillOptions& o, uint64_t step_seed);

}  // namespace tiller
