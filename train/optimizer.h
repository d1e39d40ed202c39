// AdamW over a Trainable's parameters with gradient clipping and a learning-rate schedule, as
// HF's Trainer runs torch.optim.AdamW: clip_grad_norm_ (total L2 norm, max_norm / (norm + 1e-6)
// when above), then the update, then the scheduler's next learning rate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/param.h"

namespace tiller {

enum class LrSchedule { Cosine, Linear, Constant };

struct OptimizerOptions {
  double lr = 2e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // torch / HF defaults
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;  // <= 0: no clipping
  LrSchedule schedule = LrSchedule::Cosine;
  int64_t warmup_steps = 0;
};

LrSchedule parse_lr_schedule(const std::string& name);  // "cosine" | "linear" | "constant"
const char* lr_schedule_name(LrSchedule s);

// The learning rate of optimizer step `step` (0-based) of `total`, as transformers'
// get_{cosine,linear,constant}_schedule_with_warmup: linear warm-up from 0 over warmup_steps
// (so step 0 of a warm-up runs at lr 0, as HF's does), then cosine (half a period) or linear
// decay to 0 at `total`, or constant.
double learning_rate(const OptimizerOptions& o, int64_t step, int64_t total);

struct StepUpdate {
  double grad_norm = 0;  // before clipping
  double lr = 0;
};

// One optimizer step on `params` whose gradient is grad_scale × the accumulated one, of total
// L2 norm grad_norm (gradient_norm × grad_scale): clips, updates with AdamW's step number
// `step` + 1, and returns the norm and rate used. The stored gradients are left as they were.
StepUpdate adamw_step(Backend& backend, std::vector<Param>& params, const OptimizerOptions& o, int64_t step,
                      int64_t total, double grad_norm, double grad_scale = 1);

// The total L2 norm of the parameters' gradients (in double).
double gradient_norm(Backend& backend, const std::vector<Param>& params);

// Zeroes every gradient.
void zero_gradients(Backend& backend, std::vector<Param>& params);

}  // namespace tiller
