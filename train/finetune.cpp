// Planning and running supervised fine-tuning steps.
#include "train/finetune.h"

#include <numeric>

#include "engine/error.h"
#include "engine/sampler.h"
#include "train/losses.h"

namespace tiller {

std::vector<std::vector<size_t>> plan_steps(const std::vector<SftExample>& examples, const FinetunePlanOptions& o) {
  std::vector<std::vector<size_t>> steps;
  if (examples.empty()) return steps;
  for (int64_t epoch = 0; o.steps > 0 ? int64_t(steps.size()) < o.steps : epoch < o.epochs; epoch++) {
    std::vector<size_t> order(examples.size());
    std::iota(order.begin(), order.end(), size_t(0));
    Rng rng(o.seed * 1000003 + uint64_t(epoch));
    for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[rng.next() % i]);
    std::vector<size_t> cur;
    int64_t tokens = 0;
    for (size_t idx : order) {
      const int64_t n = int64_t(examples[idx].tokens.size());
      if (!cur.empty() && tokens + n > o.step_tokens) {
        steps.push_back(std::move(cur));
        cur.clear();
        tokens = 0;
      }
      cur.push_back(idx);
      tokens += n;
    }
    if (!cur.empty()) steps.push_back(std::move(cur));
  }
  if (o.steps > 0) steps.resize(size_t(o.steps));
  return steps;
}

StepResult finetune_step(Trainable& trainable, TrainingPass& pass, const std::vector<SftExample>& examples,
                         const std::vector<size_t>& step, int64_t micro_batch_tokens, uint64_t dropout_seed) {
  Model& model = trainable.model();
  StepResult r;
  for (size_t i : step) r.loss_tokens += examples[i].n_targets();
  const float weight = 1.0f / float(std::max<int64_t>(r.loss_tokens, 1));
  size_t next = 0, micro = 0;
  while (next < step.size()) {
    // A micro-batch: whole examples, up to micro_batch_tokens rows (at least one example).
    size_t end = next;
    int64_t rows = 0;
    while (end < step.size() && (end == next || rows + int64_t(examples[step[end]].tokens.size()) <= micro_batch_tokens))
      rows += int64_t(examples[step[end++]].tokens.size());
    KvCache kv(model.backend(), model.kv_cache_options(rows, int64_t(end - next)));
    Batch batch;
    std::vector<int32_t> targets;
    for (size_t k = next; k < end; k++) {
      const SftExample& e = examples[step[k]];
      const SeqId seq = kv.create();
      for (size_t p = 0; p < e.tokens.size(); p++) {
        const bool loss_row = p + 1 < e.tokens.size() && e.target[p + 1];
        batch.add(e.tokens[p], seq, int32_t(p), loss_row);
        if (loss_row) targets.push_back(e.tokens[p + 1]);
      }
    }
    trainable.set_dropout_seed(dropout_seed * 7919 + micro++);
    Tensor logits = pass.forward(batch, kv);
    const std::vector<float> weights(targets.size(), weight);
    r.loss += cross_entropy_loss(model.backend(), logits, targets, weights);
    pass.backward(logits, batch, kv);
    r.tokens += rows;
    next = end;
  }
  trainable.set_dropout_seed(std::nullopt);
  return r;
}

}  // namespace tiller
