// Sampling: HF processor semantics, and the empirical distribution of draws.
#include <cmath>
#include <map>
#include <vector>

#include "engine/sampler.h"
#include "test_util.h"

using namespace tiller;

namespace {

int32_t pick(std::vector<float> logits, SamplingParams p, double u, std::vector<int32_t> history = {}) {
  return sample_logits(logits, SampleRequest{p, u, history});
}

SamplingParams sampled(float t) {
  SamplingParams p;
  p.temperature = t;
  return p;
}

}  // namespace

TEST_CASE("sampler: greedy takes the first maximum") {
  CHECK(pick({1, 3, 3, 2}, SamplingParams{}, 0.9) == 1);
  SamplingParams k1 = sampled(1.0f);
  k1.top_k = 1;
  CHECK(pick({1, 3, 5, 2}, k1, 0.99) == 2);
}

TEST_CASE("sampler: repetition penalty divides positive and multiplies negative logits, once per token") {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  // token 0 (3.0 -> 1.5) loses to token 1 (2.0); token 2 (-1 -> -2) stays below.
  CHECK(pick({3.0f, 2.0f, -1.0f}, p, 0, {0, 0, 2}) == 1);
  std::vector<float> logits = {3.0f, 2.0f, -1.0f};
  sample_logits(logits, SampleRequest{p, 0, std::vector<int32_t>{0, 0, 2}});
  CHECK(logits[0] == 1.5f);
  CHECK(logits[2] == -2.0f);
}

TEST_CASE("sampler: draws follow the softmax, and top-k / top-p / min-p cut the tail as HF does") {
  const std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = .1 .2 .3 .4
  auto histogram = [&](SamplingParams p) {
    std::map<int32_t, int> h;
    Rng rng(7);
    for (int i = 0; i < 20000; i++) h[pick(logits, p, rng.uniform())]++;
    return h;
  };
  auto h = histogram(sampled(1.0f));
  for (int t = 0; t < 4; t++) CHECK(std::abs(h[t] / 20000.0 - 0.1 * (t + 1)) < 0.015);

  SamplingParams k2 = sampled(1.0f);
  k2.top_k = 2;  // keeps .3 and .4 -> 3/7, 4/7
  h = histogram(k2);
  CHECK(h[0] + h[1] == 0);
  CHECK(std::abs(h[3] / 20000.0 - 4.0 / 7) < 0.015);

  SamplingParams p = sampled(1.0f);
  p.top_p = 0.65f;  // ascending cumsum .1 .3 .6 1.0; removed where <= .35: tokens 0 and 1
  h = histogram(p);
  CHECK(h[0] + h[1] == 0);
  CHECK(h[2] > 0);

  SamplingParams m = sampled(1.0f);
  m.min_p = 0.6f;  // floor .24: keeps .3 and .4
  h = histogram(m);
  CHECK(h[0] + h[1] == 0);
  CHECK(h[2] > 0);

  // Temperature sharpens: at T = 0.5 the probabilities are proportional to 1, 4, 9, 16.
  h = histogram(sampled(0.5f));
  CHECK(std::abs(h[3] / 20000.0 - 16.0 / 30) < 0.015);
}

TEST_CASE("sampler: the same seed gives the same stream") {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; i++) {
    const auto x = a.next();
    CHECK(x == b.next());
    differs |= x != c.next();
  }
  CHECK(differs);
  Rng u(1);
  for (int i = 0; i < 1000; i++) {
    const double v = u.uniform();
    REQUIRE((v >= 0.0 && v < 1.0));
  }
}

TEST_CASE("sampler: logit_bias, then the repetition penalty, then frequency / presence over generated tokens") {
  SamplingParams p;
  p.logit_bias = {{2, 1.5f}, {7, 50.0f}, {-1, 9.0f}, {2, 0.5f}};  // out of range dropped; repeats add up
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.25f;
  p.presence_penalty = 0.5f;
  // history: prompt {0, 1} then generated {1, 3, 3, 3}; V = 4
  const std::vector<int32_t> history = {0, 1, 1, 3, 3, 3};
  std::vector<float> logits = {4.0f, 1.0f, -1.0f, 2.0f};
  sample_logits(logits, SampleRequest{p, 0, history, 2});
  CHECK(logits[0] == 2.0f);                         // prompt only: repetition penalty, no frequency/presence
  CHECK(logits[1] == 0.5f - 0.25f - 0.5f);          // penalised, then generated once
  CHECK(logits[2] == 1.0f);                         // bias 1.5 + 0.5 on -1, not in the history
  CHECK(logits[3] == 1.0f - 3 * 0.25f - 0.5f);      // penalised, then generated three times

  // The lists a device backend uploads: sorted, one entry per token, in range.
  const std::vector<LogitOffset> bias = logit_bias_offsets(p, 4);
  REQUIRE(bias.size() == 1);
  CHECK((bias[0].token == 2 && bias[0].amount == 2.0f));
  const std::vector<LogitOffset> out = output_penalty_offsets(SampleRequest{p, 0, history, 2}, 4);
  REQUIRE(out.size() == 2);
  CHECK((out[0].token == 1 && out[0].amount == -0.75f));
  CHECK((out[1].token == 3 && out[1].amount == -1.25f));
  // Without generated tokens (or with both penalties 0) nothing is added.
  CHECK(output_penalty_offsets(SampleRequest{p, 0, history, history.size()}, 4).empty());
  SamplingParams off;
  CHECK(output_penalty_offsets(SampleRequest{off, 0, history, 0}, 4).empty());
  // A strong presence penalty moves greedy off a token the model keeps repeating.
  SamplingParams greedy;
  greedy.presence_penalty = 2.0f;
  const std::vector<int32_t> prompt_then_0 = {0, 0};
  std::vector<float> two = {3.0f, 2.0f};
  CHECK(sample_logits(two, SampleRequest{greedy, 0, prompt_then_0, 2}) == 0);  // both are prompt: no penalty
  two = {3.0f, 2.0f};
  CHECK(sample_logits(two, SampleRequest{greedy, 0, prompt_then_0, 1}) == 1);  // 3 - 2 < 2
}
