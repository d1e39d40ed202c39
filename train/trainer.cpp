// The training loop: steps, stopping on NaN, checkpoints, the progress bar and the loss log.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "engine/error.h"
#include "engine/progress.h"
#include "train/train_checkpoint.h"

namespace tiller {

Trainer::Trainer(Trainable& trainable, TrainerOptions options) : trainable_(trainable), o_(std::move(options)) {
  if (o_.steps < 1) fail("training needs at least one step (found ", o_.steps, ")");
  if (!o_.resume.empty()) {
    start_ = load_checkpoint(trainable_.model().backend(), trainable_.params(), o_.resume, o_.model_fingerprint,
                             o_.settings);
    if (start_ > o_.steps) fail("--resume: the checkpoint is at step ", start_, ", past this run's ", o_.steps, " steps");
  }
}

std::filesystem::path Trainer::save(int64_t steps_done) {
  CheckpointInfo info{steps_done, o_.model_fingerprint, o_.settings};
  return write_checkpoint(trainable_.model().backend(), trainable_.params(), info, o_.checkpoint_dir,
                          o_.keep_checkpoints);
}

void Trainer::run(const StepFn& step_fn) {
  Backend& be = trainable_.model().backend();
  TrainingPass pass(trainable_, o_.recompute);
  std::ofstream log;
  if (!o_.loss_log.empty()) {
    log.open(o_.loss_log, start_ > 0 ? std::ios::app : std::ios::trunc);
    if (!log) fail("cannot write the loss log ", o_.loss_log.string());
  }
  // "train [######..................] 12/100  0.41 steps/s  loss 2.3104  lr 1.9e-04  1532 tok/s  ETA 3m35s"
  ProgressLine progress("train", "steps", o_.progress, start_);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  int64_t tokens = 0;
  for (int64_t s = start_; s < o_.steps; s++) {
    zero_gradients(be, trainable_.params());
    const auto ts = clock::now();
    const StepResult r = step_fn(s, pass);
    const double grad_norm = std::isfinite(r.loss) ? gradient_norm(be, trainable_.params()) * r.grad_scale : NAN;
    if (!std::isfinite(r.loss) || !std::isfinite(grad_norm)) {
      std::string where = "no checkpoint was written (set --checkpoint-dir)";
      if (!o_.checkpoint_dir.empty()) where = "the last good state (after step " + std::to_string(s) + ") is in " + save(s).string();
      fail("step ", s + 1, ": the ", std::isfinite(r.loss) ? "gradient" : "loss", " is not finite (loss ", r.loss,
           ", gradient norm ", grad_norm, "); training stopped before updating the parameters; ", where,
           ". Lower --lr or check the data.");
    }
    const StepUpdate u = adamw_step(be, trainable_.params(), o_.optim, s, o_.steps, grad_norm, r.grad_scale);
    const double step_s = std::chrono::duration<double>(clock::now() - ts).count();
    const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    tokens += r.tokens;
    const double tok_s = elapsed > 0 ? double(tokens) / elapsed : 0;
    if (log) {
      json j = {{"step", s + 1},          {"loss", r.loss},          {"lr", u.lr},
                {"grad_norm", u.grad_norm}, {"tokens", r.tokens},     {"loss_tokens", r.loss_tokens},
                {"step_seconds", step_s},   {"tokens_per_second", tok_s}};
      for (const auto& [k, v] : r.extra.items()) j[k] = v;
      log << j.dump() << "\n" << std::flush;
    }
    const bool last = s + 1 == o_.steps;
    if (progress.due() || last) {
      char figures[96];
      std::snprintf(figures, sizeof figures, "loss %.4f  lr %.2e  %.0f tok/s", r.loss, u.lr, tok_s);
      progress.update(s + 1, o_.steps, figures, last);
    }
    if (!o_.checkpoint_dir.empty() && ((o_.checkpoint_every > 0 && (s + 1) % o_.checkpoint_every == 0) || last))
      save(s + 1);
  }
}

}  // namespace tiller
