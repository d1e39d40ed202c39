// Prompts are packed in order into groups that fit the cache, and each group's rows into forwards
// of at most batch_tokens rows; only each prompt's last row asks for logits.
#include "eval/next_token_scorer.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace tiller::eval {

namespace {
constexpr int64_t kBlock = 16;  // KV block size (tokens)
}  // namespace

NextTokenScorer::NextTokenScorer(Model& model, int64_t batch_tokens)
    : model_(model), batch_tokens_(std::max<int64_t>(16, batch_tokens)) {}

void NextTokenScorer::ensure_cache(int64_t blocks) {
  if (kv_ && kv_->n_blocks() >= blocks) return;
  kv_.reset();
  const int64_t tokens = std::max(blocks * kBlock, batch_tokens_ * 2);
  kv_ = std::make_unique<KvCache>(model_.backend(), model_.kv_cache_options(tokens, 1, kBlock));
}

std::vector<std::vector<double>> NextTokenScorer::probabilities(const std::vector<std::vector<int32_t>>& prompts,
                                                                std::span<const int32_t> ids) {
  const int64_t V = model_.config().vocab_size, ctx = model_.config().max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); i++) {
    if (prompts[i].empty()) fail("next-token scoring: prompt ", i, " is empty");
    if (int64_t(prompts[i].size()) > ctx)
      fail("next-token scoring: a prompt of ", prompts[i].size(), " tokens is longer than the model's context (", ctx, ")");
    for (int32_t t : prompts[i]) {
      if (t < 0 || t >= V) fail("next-token scoring: token ", t, " is outside the vocabulary [0, ", V, ")");
    }
  }
  for (int32_t id : ids) {
    if (id < 0 || id >= V) fail("next-token scoring: token ", id, " is outside the vocabulary [0, ", V, ")");
  }
  std::vector<std::vector<double>> out(prompts.size());
  std::vector<float> logits;
  size_t next = 0;
  while (next < prompts.size()) {
    // A group: consecutive prompts whose tokens fit batch_tokens (at least one prompt).
    size_t end = next;
    int64_t group_tokens = 0, group_blocks = 0;
    while (end < prompts.size() && (end == next || group_tokens + int64_t(prompts[end].size()) <= batch_tokens_)) {
      group_tokens += int64_t(prompts[end].size());
      group_blocks += (int64_t(prompts[end++].size()) + kBlock - 1) / kBlock;
    }
    ensure_cache(group_blocks);
    std::vector<SeqId> seqs;
    for (size_t p = next; p < end; p++) seqs.push_back(kv_->create());
    // Rows in prompt order, cut into forwards of batch_tokens rows.
    size_t p = next;
    int64_t pos = 0;
    while (p < end) {
      Batch batch;
      std::vector<size_t> logit_prompts;
      while (p < end && batch.size() < batch_tokens_) {
        const auto& prompt = prompts[p];
        const int64_t take = std::min<int64_t>(int64_t(prompt.size()) - pos, batch_tokens_ - batch.size());
        for (int64_t t = pos; t < pos + take; t++)
          batch.add(prompt[size_t(t)], seqs[p - next], int32_t(t), t + 1 == int64_t(prompt.size()));
        pos += take;
        if (pos == int64_t(prompt.size())) {
          logit_prompts.push_back(p);
          p++;
          pos = 0;
        }
      }
      const Tensor l = model_.forward(batch, *kv_);
      if (logit_prompts.empty()) continue;
      logits.resize(size_t(l.shape[0] * V));
      model_.backend().download(logits.data(), l.data, l.nbytes());
      for (size_t r = 0; r < logit_prompts.size(); r++) {
        const float* row = logits.data() + r * size_t(V);
        const double max = *std::max_element(row, row + V);
        double sum = 0;
        for (int64_t v = 0; v < V; v++) sum += std::exp(double(row[v]) - max);
        auto& probs = out[logit_prompts[r]];
        for (int32_t id : ids) probs.push_back(std::exp(double(row[id]) - max) / sum);
      }
    }
    for (SeqId s : seqs) kv_->release(s);
    next = end;
  }
  return out;
}

}  // namespace tiller::eval
