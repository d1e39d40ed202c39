// Backward kernels, the softmax cross-entropy and AdamW on the CPU.
#include "kernels/cpu/backward.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

// Work (elements touched) below which a loop runs on the calling thread: waking the pool costs a
// few microseconds, and much more when the machine is busy.
constexpr int64_t kMinWork = 1 << 15;
int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, kMinWork / std::max<int64_t>(work_per_item, 1)); }

TILLER_CLONES double dot_double(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += double(a[i]) * double(b[i]);
  return s;
}

TILLER_CLONES void rmsnorm_backward_row(const float* x, const float* w, const float* dy, int64_t D, float rstd,
                                        float coef, float* dx, bool accumulate) {
  // dx = rstd · (w ∘ dy) - x · rstd³ · Σ(w ∘ dy ∘ x) / D;  coef = rstd³ · Σ(...) / D
  for (int64_t i = 0; i < D; i++) {
    const float g = rstd * (w[i] * dy[i]) - coef * x[i];
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

TILLER_CLONES void silu_mul_backward_range(const float* gate, const float* up, const float* dout, float* dgate,
                                           float* dup, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], s = 1.0f / (1.0f + exp_approx(-g));
    const float u = up[i], d = dout[i];
    dgate[i] = d * u * (s * (1.0f + g * (1.0f - s)));
    dup[i] = d * (g * s);
  }
}

// Σ exp(z[i] - shift) in 16 F32 lanes (exp_approx, within 1 ulp), the lanes summed in double.
TILLER_CLONES double sum_exp(const float* z, int64_t n, float shift) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; l++) acc[l] += exp_approx(z[i + l] - shift);
  }
  for (; i < n; i++) acc[i % 16] += exp_approx(z[i] - shift);
  double s = 0;
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

// z[i] = w · exp(z[i] - shift)
TILLER_CLONES void scaled_exp(float* z, int64_t n, float shift, float w) {
  for (int64_t i = 0; i < n; i++) z[i] = w * exp_approx(z[i] - shift);
}

TILLER_CLONES void add_scaled_range(float* x, const float* y, float alpha, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] += alpha * y[i];
}

TILLER_CLONES void mul_range(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

TILLER_CLONES void adamw_range(float* p, const float* g, float* m, float* v, int64_t n, Backend::AdamWStep s) {
  const float decay = 1.0f - s.lr * s.weight_decay;
  const float w1 = 1.0f - s.beta1, w2 = 1.0f - s.beta2;
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * s.grad_scale;
    if (s.weight_decay != 0.0f) p[i] *= decay;
    m[i] += w1 * (gi - m[i]);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i] * s.beta2 + w2 * (gi * gi);
    const float denom = std::sqrt(v[i]) / s.bias_correction2_sqrt + s.eps;
    p[i] += -s.step_size * (m[i] / denom);
  }
}

}  // namespace

void rmsnorm_backward(const float* x, const float* w, float eps, const float* dy, int64_t T, int64_t D, float* dx,
                      float* dw, bool accumulate, ThreadPool& pool) {
  std::vector<float> rstd(static_cast<size_t>(T));
  pool.parallel_for(T, grain_for(4 * D), [&](int64_t t0, int64_t t1) {
    std::vector<float> g(static_cast<size_t>(D));
    for (int64_t t = t0; t < t1; t++) {
      const float* xr = x + t * D;
      const double r = 1.0 / std::sqrt(dot_double(xr, xr, D) / double(D) + double(eps));
      for (int64_t i = 0; i < D; i++) g[size_t(i)] = w[i] * dy[t * D + i];
      const double coef = r * r * r * dot_double(g.data(), xr, D) / double(D);
      rmsnorm_backward_row(xr, w, dy + t * D, D, float(r), float(coef), dx + t * D, accumulate);
      rstd[size_t(t)] = float(r);
    }
  });
  if (!dw) return;
  // dw[i] += Σ_t dy[t, i] · x[t, i] · rstd[t]: columns split over threads, rows summed in order.
  pool.parallel_for(D, std::max<int64_t>(64, grain_for(2 * T)), [&](int64_t i0, int64_t i1) {
    std::vector<double> acc(size_t(i1 - i0), 0.0);
    for (int64_t t = 0; t < T; t++) {
      const float r = rstd[size_t(t)];
      for (int64_t i = i0; i < i1; i++) acc[size_t(i - i0)] += double(dy[t * D + i] * (x[t * D + i] * r));
    }
    for (int64_t i = i0; i < i1; i++) dw[i] += float(acc[size_t(i - i0)]);
  });
}

void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                       ThreadPool& pool) {
  pool.parallel_for(n, kMinWork / 4, [&](int64_t i0, int64_t i1) {
    silu_mul_backward_range(gate + i0, up + i0, dout + i0, dgate + i0, dup + i0, i1 - i0);
  });
}

void embedding_backward(const float* dx, const int32_t* tokens, int64_t T, int64_t D, float* dtable,
                        ThreadPool& pool) {
  // Columns split over threads, so a token that repeats is summed by one thread, in row order.
  pool.parallel_for(D, std::max<int64_t>(64, grain_for(T)), [&](int64_t i0, int64_t i1) {
    for (int64_t t = 0; t < T; t++) add_scaled_range(dtable + int64_t(tokens[t]) * D + i0, dx + t * D + i0, 1.0f, i1 - i0);
  });
}

void cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t R, int64_t V, float* loss,
                   ThreadPool& pool) {
  pool.parallel_for(R, grain_for(3 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      float* z = logits + r * V;
      const float mx = *std::max_element(z, z + V);
      const double lse = double(mx) + std::log(sum_exp(z, V, mx));
      const int32_t y = targets[r];
      loss[r] = float(lse - double(z[y]));
      const float w = weights[r];
      scaled_exp(z, V, float(lse), w);
      z[y] -= w;
    }
  });
}

double sum_squares(const float* x, int64_t n, ThreadPool& pool) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(chunks), 0.0);
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      part[size_t(c)] = dot_double(x + b, x + b, e - b);
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const Backend::AdamWStep& s,
           ThreadPool& pool) {
  pool.parallel_for(n, kMinWork / 4, [&](int64_t i0, int64_t i1) {
    adamw_range(param + i0, grad + i0, m + i0, v + i0, i1 - i0, s);
  });
}

void add_scaled(float* x, const float* y, float alpha, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, kMinWork, [&](int64_t i0, int64_t i1) { add_scaled_range(x + i0, y + i0, alpha, i1 - i0); });
}

void mul(const float* a, const float* b, float* out, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, kMinWork, [&](int64_t i0, int64_t i1) { mul_range(a + i0, b + i0, out + i0, i1 - i0); });
}

}  // namespace tiller::cpu
