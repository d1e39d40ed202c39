// Divergences, their gradients with respect to the student's logits, and DPSW weights (double).
#include "train/distill_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"

namespace tiller {
namespace {

// log-softmax of z over `support` (all of z when empty) into out[0..n).
void log_softmax(const float* z, std::span<const int32_t> support, int64_t V, std::vector<double>& out) {
  const size_t n = support.empty() ? size_t(V) : support.size();
  out.resize(n);
  double mx = -INFINITY;
  for (size_t i = 0; i < n; i++) mx = std::max(mx, double(z[support.empty() ? int64_t(i) : support[i]]));
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += std::exp(double(z[support.empty() ? int64_t(i) : support[i]]) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < n; i++) out[i] = double(z[support.empty() ? int64_t(i) : support[i]]) - lse;
}

// The k largest entries of z by value (ties: lower id first).
std::vector<int32_t> top_k(const float* z, int64_t V, int64_t k) {
  std::vector<int32_t> ids(static_cast<size_t>(V));
  std::iota(ids.begin(), ids.end(), 0);
  k = std::min(k, V);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
  ids.resize(size_t(k));
  return ids;
}

}  // namespace

void parse_divergence(const std::string& text, DistillLossOptions& o) {
  if (text == "rkl") {
    o.divergence = Divergence::ReverseKl;
  } else if (text == "fkl") {
    o.divergence = Divergence::ForwardKl;
  } else if (text.rfind("jsd:", 0) == 0) {
    o.divergence = Divergence::Jsd;
    try {
      o.jsd_beta = std::stod(text.substr(4));
    } catch (const std::exception&) {
      fail("--divergence ", text, ": expected jsd:BETA with a number BETA");
    }
    if (!(o.jsd_beta > 0 && o.jsd_beta < 1))
      fail("--divergence ", text, ": BETA must be in (0, 1); jsd at 0 and 1 is fkl and rkl (as TRL's special cases)");
  } else {
    fail("--divergence: expected rkl, fkl or jsd:BETA (0 < BETA < 1); found '", text, "'");
  }
}

std::string divergence_name(const DistillLossOptions& o) {
  switch (o.divergence) {
    case Divergence::ForwardKl: return "fkl";
    case Divergence::ReverseKl: return "rkl";
    case Divergence::Jsd: return "jsd:" + std::to_string(o.jsd_beta);
  }
  return "?";
}

TokenTerms distill_token_terms(std::span<const float> student, std::span<const float> teacher,
                               std::span<const int32_t> tokens, int64_t V, const DistillLossOptions& o,
                               std::span<float> grad) {
  const int64_t R = int64_t(tokens.size());
  TILLER_CHECK(int64_t(student.size()) == R * V && int64_t(teacher.size()) == R * V &&
               (grad.empty() || int64_t(grad.size()) == R * V));
  TokenTerms out;
  out.divergence.resize(size_t(R));
  out.weight.assign(size_t(R), 1.0);
  std::vector<double> ls, lt, full;
  for (int64_t r = 0; r < R; r++) {
    const float* zs = student.data() + r * V;
    const float* zt = teacher.data() + r * V;
    const std::vector<int32_t> support = o.top_k > 0 ? top_k(zt, V, o.top_k) : std::vector<int32_t>{};
    log_softmax(zs, support, V, ls);
    log_softmax(zt, support, V, lt);
    const size_t n = ls.size();
    // D and g_i = ∂D/∂(log p_S,i) · ... expressed through r_i with ∂D/∂z_i = c · p_S,i (r_i - Σ p_S r).
    std::vector<double> rr(n);
    double D = 0, c = 1;
    switch (o.divergence) {
      case Divergence::ForwardKl:
        for (size_t i = 0; i < n; i++) {
          const double pt = std::exp(lt[i]);
          D += pt * (lt[i] - ls[i]);
          rr[i] = -pt / std::exp(ls[i]);  // ∂D/∂p_S,i
        }
        break;
      case Divergence::ReverseKl:
        for (size_t i = 0; i < n; i++) {
          const double ps = std::exp(ls[i]);
          D += ps * (ls[i] - lt[i]);
          rr[i] = ls[i] - lt[i];  // up to a constant, which the softmax's Jacobian removes
        }
        break;
      case Divergence::Jsd: {
        const double b = o.jsd_beta, lb = std::log(b), l1b = std::log1p(-b);
        for (size_t i = 0; i < n; i++) {
          const double a = ls[i] + l1b, t = lt[i] + lb, m = std::max(a, t);
          const double lm = m + std::log(std::exp(a - m) + std::exp(t - m));  // log M_i
          D += b * std::exp(lt[i]) * (lt[i] - lm) + (1 - b) * std::exp(ls[i]) * (ls[i] - lm);
          rr[i] = ls[i] - lm;
        }
        c = 1 - b;
        break;
      }
    }
    out.divergence[size_t(r)] = D;

    if (o.dpsw) {
      const std::vector<int32_t> kt = top_k(zt, V, std::max<int64_t>(o.dpsw_k, 1));
      std::vector<double> lk;
      log_softmax(zt, kt, V, lk);
      double H = 0;
      for (double l : lk) H -= std::exp(l) * l;
      const double h = kt.size() > 1 ? H / std::log(double(kt.size())) : 0.0;
      const double wt = o.teacher_confident ? 1 - h : h;
      log_softmax(zs, {}, V, full);
      const int32_t tok = o.student_on_teacher_argmax ? top_k(zt, V, 1)[0] : tokens[size_t(r)];
      const double ws = 1 - std::exp(full[size_t(tok)]);
      out.weight[size_t(r)] = wt * ws;
    }

    if (grad.empty()) continue;
    float* g = grad.data() + r * V;
    std::fill_n(g, V, 0.0f);
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += std::exp(ls[i]) * rr[i];
    const double w = out.weight[size_t(r)];
    for (size_t i = 0; i < n; i++) {
      const int64_t id = support.empty() ? int64_t(i) : support[i];
      g[id] = float(w * c * std::exp(ls[i]) * (rr[i] - mean));
    }
  }
  return out;
}

}  // namespace tiller
