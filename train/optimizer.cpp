// AdamW, clipping and the learning-rate schedules.
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "engine/error.h"

namespace tiller {

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "cosine") return LrSchedule::Cosine;
  if (name == "linear") return LrSchedule::Linear;
  if (name == "constant") return LrSchedule::Constant;
  fail("--lr-scheduler: expected cosine, linear or constant; found '", name, "'");
}

const char* lr_schedule_name(LrSchedule s) {
  switch (s) {
    case LrSchedule::Cosine: return "cosine";
    case LrSchedule::Linear: return "linear";
    case LrSchedule::Constant: return "constant";
  }
  return "?";
}

double learning_rate(const OptimizerOptions& o, int64_t step, int64_t total) {
  if (step < o.warmup_steps) return o.lr * double(step) / double(std::max<int64_t>(1, o.warmup_steps));
  const double progress = double(step - o.warmup_steps) / double(std::max<int64_t>(1, total - o.warmup_steps));
  switch (o.schedule) {
    case LrSchedule::Cosine: return o.lr * std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    case LrSchedule::Linear: return o.lr * std::max(0.0, 1.0 - progress);
    case LrSchedule::Constant: return o.lr;
  }
  return o.lr;
}

double gradient_norm(Backend& backend, const std::vector<Param>& params) {
  // torch's clip_grad_norm_: the norm of the per-tensor norms (each an F32 norm).
  double total = 0;
  for (const Param& p : params) {
    const double n = double(float(std::sqrt(backend.sum_squares(p.grad_t()))));
    total += n * n;
  }
  return std::sqrt(total);
}

void zero_gradients(Backend& backend, std::vector<Param>& params) {
  for (Param& p : params) {
    Tensor g = p.grad_t();
    backend.fill(g, 0.0f);
  }
}

StepUpdate adamw_step(Backend& backend, std::vector<Param>& params, const OptimizerOptions& o, int64_t step,
                      int64_t total, double grad_norm, double grad_scale) {
  StepUpdate u;
  u.grad_norm = grad_norm;
  u.lr = learning_rate(o, step, total);
  Backend::AdamWStep s;
  s.lr = float(u.lr);
  s.beta1 = float(o.beta1);
  s.beta2 = float(o.beta2);
  s.eps = float(o.eps);
  const double t = double(step + 1);
  s.step_size = float(u.lr / (1.0 - std::pow(o.beta1, t)));
  s.bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(o.beta2, t)));
  double clip = 1.0;
  if (o.max_grad_norm > 0) clip = std::min(1.0, o.max_grad_norm / (u.grad_norm + 1e-6));
  s.grad_scale = float(grad_scale * clip);
  for (Param& p : params) {
    s.weight_decay = p.decay ? float(o.weight_decay) : 0.0f;
    Tensor value = p.value_t(), m = p.m_t(), v = p.v_t();
    backend.adamw(value, p.grad_t(), m, v, s);
  }
  return u;
}

}  // namespace tiller
