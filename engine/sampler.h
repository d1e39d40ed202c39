// Token sampling with HF generate's semantics: repetition penalty, then temperature, top-k,
// top-p and min-p, then a draw. The draw is a uniform number from a seeded per-sequence stream,
// so the same seed gives the same tokens on every backend and thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/backend.h"

namespace tiller {

// A deterministic random stream (splitmix64-seeded xoshiro256**), independent of the standard
// library's distributions, whose output differs between implementations.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();  // [0, 1) with 53 random bits

 private:
  uint64_t s_[4];
};

// Per-sequence sampling state on the host.
class TokenSampler {
 public:
  TokenSampler(const SamplingParams& params, uint64_t seed) : params_(params), rng_(seed) {}
  // The request for the next token; `history` is what the repetition penalty looks at (the
  // prompt and the tokens generated so far, as HF does); the frequency and presence penalties
  // look at the generated part only.
  // `n_prompt`: how many leading tokens of `history` are the prompt.
  SampleRequest next(std::span<const int32_t> history, size_t n_prompt) {
    return SampleRequest{params_, params_.greedy() ? 0.0 : rng_.uniform(), history, n_prompt};
  }
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  Rng rng_;
};

// The reference algorithm every backend implements: chooses a token from one row of logits
// [V] (modified in place). Order: logit_bias, the repetition penalty, the frequency / presence
// penalties, then greedy (the first maximum, as torch.argmax) or temperature -> top-k -> top-p ->
// min-p -> draw.
int32_t sample_logits(std::span<float> logits, const SampleRequest& request);

// The additive steps of that order as (token, amount) lists, one entry per token, ids outside
// [0, V) dropped, ascending by token: what a device backend uploads for its kernels.
struct LogitOffset {
  int32_t token;
  float amount;
};
std::vector<LogitOffset> logit_bias_offsets(const SamplingParams& params, int64_t V);
std::vector<LogitOffset> output_penalty_offsets(const SampleRequest& request, int64_t V);

}  // namespace tiller
