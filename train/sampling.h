// Sampling responses for distillation on the engine's own forward and KV cache: every prompt of a
// step decodes together (one row per unfinished sequence per forward), with or without the trained
// delta, each prompt drawing from its own seeded stream as `tiller generate` does.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/hooks.h"
#include "models/model.h"

namespace tiller {

struct SampleOptions {
  SamplingParams params;          // temperature 1, no cuts by default (the model's own distribution)
  int64_t max_new_tokens = 128;
  std::vector<int32_t> stop_ids;  // a response ends after one of these (included in it)
  int64_t prefill_rows = 2048;    // prompt rows per prefill forward
};

// One continuation per prompt from `model` with `delta` applied (null: as loaded); seeds[i] is
// prompt i's stream. Each continuation ends with its stop token when it met one.
std::vector<std::vector<int32_t>> sample_continuations(Model& model, ProjectionDelta* delta,
                                                       const std::vector<std::vector<int32_t>>& prompts,
                                                       const SampleOptions& o, std::span<const uint64_t> seeds);

}  // namespace tiller
