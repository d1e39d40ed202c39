// Logits processing and token choice, in the order HF generate applies its processors.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tiller {
namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

int32_t argmax(std::span<const float> v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());  // first maximum
}

// HF RepetitionPenaltyLogitsProcessor: every token seen once or more is penalised once.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> tokens, float penalty) {
  std::vector<int32_t> seen(tokens.begin(), tokens.end());
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  for (int32_t t : seen) {
    if (t < 0 || size_t(t) >= logits.size()) continue;
    float& l = logits[size_t(t)];
    l = l < 0 ? l * penalty : l / penalty;
  }
}

void add_offsets(std::span<float> logits, const std::vector<LogitOffset>& offsets) {
  for (const LogitOffset& o : offsets) logits[size_t(o.token)] += o.amount;
}

}  // namespace

std::vector<LogitOffset> logit_bias_offsets(const SamplingParams& params, int64_t V) {
  std::vector<LogitOffset> out;
  for (const auto& [token, amount] : params.logit_bias) {
    if (token >= 0 && token < V) out.push_back({token, amount});
  }
  std::stable_sort(out.begin(), out.end(), [](const LogitOffset& a, const LogitOffset& b) { return a.token < b.token; });
  size_t n = 0;  // the same token twice: the amounts add up
  for (size_t i = 0; i < out.size(); i++) {
    if (n > 0 && out[n - 1].token == out[i].token) out[n - 1].amount += out[i].amount;
    else out[n++] = out[i];
  }
  out.resize(n);
  return out;
}

std::vector<LogitOffset> output_penalty_offsets(const SampleRequest& request, int64_t V) {
  const SamplingParams& p = request.params;
  std::vector<LogitOffset> out;
  if ((p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) || request.n_prompt >= request.penalty_tokens.size())
    return out;
  std::vector<int32_t> generated(request.penalty_tokens.begin() + long(request.n_prompt), request.penalty_tokens.end());
  std::sort(generated.begin(), generated.end());
  for (size_t i = 0; i < generated.size();) {
    size_t j = i;
    while (j < generated.size() && generated[j] == generated[i]) j++;
    if (generated[i] >= 0 && generated[i] < V)
      out.push_back({generated[i], -(p.frequency_penalty * float(j - i) + p.presence_penalty)});
    i = j;
  }
  return out;
}

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

int32_t sample_logits(std::span<float> logits, const SampleRequest& request) {
  const SamplingParams& p = request.params;
  const int64_t V = int64_t(logits.size());
  if (!p.logit_bias.empty()) add_offsets(logits, logit_bias_offsets(p, V));
  if (p.repetition_penalty != 1.0f && !request.penalty_tokens.empty())
    apply_repetition_penalty(logits, request.penalty_tokens, p.repetition_penalty);
  add_offsets(logits, output_penalty_offsets(request, V));
  if (p.greedy()) return argmax(logits);

  // Candidates sorted by logit, descending (ties: lower id first, so the order is canonical).
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };
  size_t n = order.size();
  if (p.top_k > 0 && size_t(p.top_k) < n) {
    // HF keeps every token whose logit is >= the k-th largest, ties included.
    std::nth_element(order.begin(), order.begin() + (p.top_k - 1), order.end(), by_logit);
    const float kth = logits[size_t(order[size_t(p.top_k - 1)])];
    n = size_t(std::partition(order.begin(), order.end(), [&](int32_t i) { return logits[size_t(i)] >= kth; }) -
               order.begin());
  }
  std::sort(order.begin(), order.begin() + long(n), by_logit);

  // Temperature, then probabilities over the surviving candidates.
  const float inv_t = 1.0f / p.temperature;
  const float max_l = logits[size_t(order[0])] * inv_t;
  std::vector<double> prob(n);
  double total = 0;
  for (size_t i = 0; i < n; i++) total += prob[i] = std::exp(double(logits[size_t(order[i])]) * inv_t - max_l);
  for (auto& q : prob) q /= total;

  // HF TopPLogitsWarper removes tokens whose ascending cumulative probability is <= 1 - top_p:
  // a token goes when it and everything ranked below it hold at most 1 - top_p. The top stays.
  if (p.top_p < 1.0f) {
    double tail = 0;  // mass of tokens ranked below i
    size_t keep = n;
    for (size_t i = n; i-- > 1;) {
      tail += prob[i];
      if (tail <= 1.0 - double(p.top_p)) keep = i;
      else break;
    }
    n = keep;
  }
  // HF MinPLogitsWarper: drop tokens below min_p times the top probability.
  if (p.min_p > 0.0f) {
    const double floor = double(p.min_p) * prob[0];
    size_t keep = 1;
    while (keep < n && prob[keep] >= floor) keep++;
    n = keep;
  }

  double mass = 0;
  for (size_t i = 0; i < n; i++) mass += prob[i];
  const double target = request.uniform * mass;
  double acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += prob[i];
    if (target < acc) return order[i];
  }
  return order[n - 1];
}

}  // namespace tiller
