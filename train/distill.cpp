// Distillation steps: sampling, teacher scoring, the student's training pass.
#include "train/distill.h"

#include <numeric>

#include "engine/error.h"
#include "engine/sampler.h"

namespace tiller {
namespace {

// Rows c + y[0 .. n-2] of one sequence per (prompt, response); the logit rows predict y[0 .. n-1].
Batch scoring_batch(KvCache& kv, const std::vector<const std::vector<int32_t>*>& prompts,
                    const std::vector<const std::vector<int32_t>*>& responses) {
  Batch b;
  for (size_t i = 0; i < prompts.size(); i++) {
    const auto& p = *prompts[i];
    const auto& y = *responses[i];
    const SeqId s = kv.create();
    for (size_t t = 0; t < p.size(); t++) b.add(p[t], s, int32_t(t), t + 1 == p.size());
    for (size_t t = 0; t + 1 < y.size(); t++) b.add(y[t], s, int32_t(p.size() + t), true);
  }
  return b;
}

std::vector<float> download_logits(Backend& be, const Tensor& logits) {
  std::vector<float> out(static_cast<size_t>(logits.numel()));
  be.download(out.data(), logits.data, logits.nbytes());
  return out;
}

}  // namespace

std::vector<std::vector<size_t>> plan_distill_steps(size_t n_queries, int64_t per_step, int64_t steps, uint64_t seed) {
  std::vector<std::vector<size_t>> out;
  if (n_queries == 0 || per_step < 1) return out;
  std::vector<size_t> order;
  size_t pos = 0;
  for (int64_t epoch = 0; int64_t(out.size()) < steps;) {
    std::vector<size_t> step;
    while (int64_t(step.size()) < std::min<int64_t>(per_step, int64_t(n_queries))) {
      if (pos == order.size()) {  // a new epoch: a fresh permutation
        order.resize(n_queries);
        std::iota(order.begin(), order.end(), size_t(0));
        Rng rng(seed * 1000003 + uint64_t(epoch++));
        for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[rng.next() % i]);
        pos = 0;
      }
      step.push_back(order[pos++]);
    }
    out.push_back(std::move(step));
  }
  return out;
}

StepResult distill_step(Trainable& trainable, TrainingPass& pass, const std::vector<DistillExample>& examples,
                        const std::vector<size_t>& step, const DistillOptions& o, uint64_t step_seed) {
  Model& student = trainable.model();
  Model& teacher = o.teacher_live ? trainable.model() : trainable.base();
  ProjectionDelta* teacher_delta = o.teacher_live ? trainable.delta() : nullptr;
  Backend& be = student.backend();
  const int64_t V = student.config().vocab_size;

  // Responses: given, or sampled from the student (on-policy) or the teacher (off-policy), no dropout.
  trainable.set_dropout_seed(std::nullopt);
  std::vector<std::vector<int32_t>> responses(step.size());
  std::vector<std::vector<int32_t>> prompts;
  std::vector<size_t> to_sample;
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < step.size(); i++) {
    const DistillExample& e = examples[step[i]];
    if (!e.response.empty()) {
      responses[i] = e.response;
      continue;
    }
    to_sample.push_back(i);
    prompts.push_back(o.on_policy ? e.student_prompt : e.teacher_prompt);
    seeds.push_back(step_seed * 6364136223846793005ull + step[i]);
  }
  if (!to_sample.empty()) {
    const auto sampled = o.on_policy ? sample_continuations(student, trainable.delta(), prompts, o.sampling, seeds)
                                     : sample_continuations(teacher, teacher_delta, prompts, o.sampling, seeds);
    for (size_t k = 0; k < to_sample.size(); k++) responses[to_sample[k]] = sampled[k];
  }

  StepResult r;
  double sum_w = 0, sum_wd = 0, sum_d = 0, response_tokens = 0;
  size_t next = 0, micro = 0;
  while (next < step.size()) {
    size_t end = next;
    int64_t rows = 0;
    auto rows_of = [&](size_t i) {
      return int64_t(examples[step[i]].student_prompt.size() + responses[i].size() - 1);
    };
    while (end < step.size() && (end == next || rows + rows_of(end) <= o.micro_batch_tokens)) rows += rows_of(end++);
    std::vector<const std::vector<int32_t>*> sp, tp, ys;
    std::vector<int32_t> tokens;
    int64_t teacher_rows = 0;
    for (size_t i = next; i < end; i++) {
      sp.push_back(&examples[step[i]].student_prompt);
      tp.push_back(&examples[step[i]].teacher_prompt);
      ys.push_back(&responses[i]);
      tokens.insert(tokens.end(), responses[i].begin(), responses[i].end());
      teacher_rows += int64_t(tp.back()->size() + responses[i].size() - 1);
    }
    // Teacher: no tape, no gradient (its logits leave the model's workspace before the student runs).
    std::vector<float> teacher_logits;
    {
      KvCache kv(be, teacher.kv_cache_options(teacher_rows, int64_t(end - next)));
      ForwardOptions fo;
      fo.delta = teacher_delta;
      const Batch b = scoring_batch(kv, tp, ys);
      teacher_logits = download_logits(be, teacher.forward(b, kv, fo));
    }
    // Student: the training pass.
    KvCache kv(be, student.kv_cache_options(rows, int64_t(end - next)));
    const Batch b = scoring_batch(kv, sp, ys);
    trainable.set_dropout_seed(step_seed * 7919 + micro++);
    Tensor logits = pass.forward(b, kv);
    const std::vector<float> student_logits = download_logits(be, logits);
    TILLER_CHECK(int64_t(student_logits.size()) == int64_t(tokens.size()) * V &&
                 teacher_logits.size() == student_logits.size());
    std::vector<float> grad(student_logits.size());
    const TokenTerms terms = distill_token_terms(student_logits, teacher_logits, tokens, V, o.loss, grad);
    be.upload(logits.data, grad.data(), grad.size() * sizeof(float));
    pass.backward(logits, b, kv);
    for (size_t t = 0; t < tokens.size(); t++) {
      sum_w += terms.weight[t];
      sum_wd += terms.weight[t] * terms.divergence[t];
      sum_d += terms.divergence[t];
    }
    r.tokens += rows;
    response_tokens += double(tokens.size());
    next = end;
  }
  trainable.set_dropout_seed(std::nullopt);
  r.loss_tokens = int64_t(response_tokens);
  const double norm = o.loss.normalize_batch ? sum_w : response_tokens;
  r.grad_scale = norm > 0 ? 1.0 / norm : 0.0;  // every weight zero: nothing to learn from this step
  r.loss = sum_wd * r.grad_scale;
  r.extra = {{"divergence", sum_d / std::max(1.0, response_tokens)},
             {"mean_weight", sum_w / std::max(1.0, response_tokens)},
             {"response_tokens", response_tokens / double(std::max<size_t>(1, step.size()))}};
  return r;
}

}  // namespace tiller
