// Norms, rotary embeddings, elementwise ops and KV writes on the CPU.
#include "kernels/cpu/ops.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

constexpr int kLanes = 16;  // independent partial sums: vectorisable without reassociating floats

TILLER_CLONES float sum_of_squares(const float* x, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; l++) acc[l] += x[i + l] * x[i + l];
  }
  for (; i < n; i++) acc[i % kLanes] += x[i] * x[i];
  float s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

TILLER_CLONES void scale_by_weight(const float* x, const float* w, float inv_rms, int64_t n, float* out) {
  // HF: weight * (x * rsqrt(var + eps)), both products in F32.
  for (int64_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv_rms);
}

void rmsnorm_row(const float* x, const float* w, float eps, int64_t D, float* out) {
  const float mean = sum_of_squares(x, D) / float(D);
  const float inv_rms = 1.0f / std::sqrt(mean + eps);
  scale_by_weight(x, w, inv_rms, D, out);
}

TILLER_CLONES void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

TILLER_CLONES void silu_mul_range(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + exp_approx(-g)) * up[i];
  }
}

// Rotate-half on one head: pairs (i, i + d/2).
TILLER_CLONES void rotate_head(float* x, const float* cos_, const float* sin_, int64_t half) {
  for (int64_t i = 0; i < half; i++) {
    const float a = x[i], b = x[i + half];
    x[i] = a * cos_[i] - b * sin_[i];
    x[i + half] = b * cos_[i] + a * sin_[i];
  }
}

}  // namespace

void rmsnorm(const float* x, const float* w, float eps, int64_t T, int64_t D, float* out, ThreadPool& pool) {
  pool.parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) rmsnorm_row(x + t * D, w, eps, D, out + t * D);
  });
}

void add_rmsnorm(float* residual, const float* delta, const float* w, float eps, int64_t T, int64_t D, float* out,
                 ThreadPool& pool) {
  pool.parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      add_inplace(residual + t * D, delta + t * D, D);
      rmsnorm_row(residual + t * D, w, eps, D, out + t * D);
    }
  });
}

void rope(float* q, float* k, const float* inv_freq, const int32_t* positions, int64_t T, int64_t H, int64_t Hkv,
          int64_t d, ThreadPool& pool) {
  const int64_t half = d / 2;
  pool.parallel_for(T, 4, [&](int64_t t0, int64_t t1) {
    std::vector<float> cos_(static_cast<size_t>(half)), sin_(static_cast<size_t>(half));
    for (int64_t t = t0; t < t1; t++) {
      const float pos = float(positions[t]);
      for (int64_t i = 0; i < half; i++) {
        const float angle = pos * inv_freq[i];  // F32 product, as HF's freqs matmul
        cos_[size_t(i)] = std::cos(angle);
        sin_[size_t(i)] = std::sin(angle);
      }
      for (int64_t h = 0; h < H; h++) rotate_head(q + (t * H + h) * d, cos_.data(), sin_.data(), half);
      for (int64_t h = 0; h < Hkv; h++) rotate_head(k + (t * Hkv + h) * d, cos_.data(), sin_.data(), half);
    }
  });
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool) {
  pool.parallel_for(n, 4096, [&](int64_t i0, int64_t i1) { silu_mul_range(gate + i0, up + i0, out + i0, i1 - i0); });
}

void add(float* x, const float* y, int64_t n) { add_inplace(x, y, n); }

void embedding(const Tensor& table, const int32_t* tokens, int64_t T, float* out, ThreadPool& pool) {
  const int64_t D = table.shape[1];
  const size_t row_bytes = dtype_bytes(table.dtype, D);  // quantized tables: whole blocks per row
  pool.parallel_for(T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const auto* row = static_cast<const char*>(table.data) + size_t(tokens[t]) * row_bytes;
      to_f32(table.dtype, row, out + t * D, size_t(D));
    }
  });
}

void kv_append(KvStore& kv, int layer, const float* k, const float* v, const int32_t* slots, int64_t T) {
  const int64_t Hkv = kv.n_kv_heads, d = kv.head_dim, bs = kv.block_size;
  const size_t elem = dtype_size(kv.dtype);
  char* kbase = static_cast<char*>(kv.k[size_t(layer)].data);
  char* vbase = static_cast<char*>(kv.v[size_t(layer)].data);
  for (int64_t t = 0; t < T; t++) {
    const int64_t block = slots[t] / bs, offset = slots[t] % bs;
    for (int64_t h = 0; h < Hkv; h++) {
      const size_t at = size_t(((block * Hkv + h) * bs + offset) * d) * elem;  // [n_blocks, Hkv, bs, d]
      from_f32(kv.dtype, k + (t * Hkv + h) * d, kbase + at, size_t(d));
      from_f32(kv.dtype, v + (t * Hkv + h) * d, vbase + at, size_t(d));
    }
  }
}

}  // namespace tiller::cpu
