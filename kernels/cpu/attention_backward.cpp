// The gradient of paged causal attention on the CPU, for batches of whole sequences (training).
//
// FlashAttention-2's recomputation, in two passes so that no two threads write one output:
//   1. per (query row, KV head): recompute the row's scores against its keys, its log-sum-exp and
//      D = dout · out; dq = scale · Σ_j P_j (dP_j - D) k_j with P_j = softmax, dP_j = dout · v_j;
//   2. per (key row, KV head): over the queries that see the key (itself and later rows of the
//      sequence within the window), dv = Σ_i P_ij dout_i and dk = scale · Σ_i P_ij (dP_ij - D_i) q_i.
// Everything is F32 (the sums over keys too); the work split does not change any result.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/whole_sequences.h"
#include "kernels/cpu/backward.h"
#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

TILLER_CLONES float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l];
  }
  for (; i < n; i++) acc[i % 16] += a[i] * b[i];
  float s = 0;
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

TILLER_CLONES void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

// One layer's keys or values, read as F32 rows by position within a sequence.
template <typename KvT>
struct PagedRows {
  const KvT* base;
  const int32_t* table;
  int64_t Hkv, bs, d;
  void read(int64_t pos, int64_t head, float* out) const {  // [n_blocks, Hkv, bs, d]
    const KvT* row = base + ((int64_t(table[pos / bs]) * Hkv + head) * bs + pos % bs) * d;
    for (int64_t i = 0; i < d; i++) out[i] = load(row, i);
  }
};

template <typename KvT>
void attention_backward_typed(const float* q, const KvStore& kv, int layer, int64_t window, float scale,
                              const BatchLayout& b, int64_t H, const float* out, const float* dout, float* dq,
                              float* dk, float* dv, ThreadPool& pool) {
  const int64_t T = b.n_rows(), d = kv.head_dim, Hkv = kv.n_kv_heads, G = H / Hkv;
  check_whole_sequences(b, "attention_backward");
  auto rows_for = [&](const Tensor& cache, int64_t t) {
    return PagedRows<KvT>{static_cast<const KvT*>(cache.data),
                          b.block_tables.data() + size_t(b.row_seq[size_t(t)]) * size_t(b.max_blocks), Hkv,
                          kv.block_size, d};
  };
  const Tensor& Kc = kv.k[size_t(layer)];
  const Tensor& Vc = kv.v[size_t(layer)];
  std::vector<float> lse(size_t(T * H)), delta(size_t(T * H));
  // Items below ~32K multiply-adds of work in all run on the calling thread (a pool wake-up costs more).
  const int64_t keys = window > 0 ? std::min<int64_t>(window, b.max_kv_len) : std::max<int32_t>(1, b.max_kv_len / 2);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, keys * G * d * 3));

  // Pass 1: per (row, KV head), the G query heads of the group.
  pool.parallel_for(T * Hkv, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> kr(static_cast<size_t>(d)), vr(static_cast<size_t>(d)), p;
    for (int64_t item = i0; item < i1; item++) {
      const int64_t t = item / Hkv, hk = item % Hkv;
      const int64_t pos = b.positions[size_t(t)];
      const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0, n = pos - lo + 1;
      const PagedRows<KvT> K = rows_for(Kc, t), V = rows_for(Vc, t);
      p.assign(size_t(G * n), 0.0f);
      for (int64_t j = 0; j < n; j++) {  // scores
        K.read(lo + j, hk, kr.data());
        for (int64_t g = 0; g < G; g++) p[size_t(g * n + j)] = scale * dot(q + (t * H + hk * G + g) * d, kr.data(), d);
      }
      for (int64_t g = 0; g < G; g++) {  // softmax via the log-sum-exp
        const int64_t h = hk * G + g;
        float* pg = p.data() + g * n;
        const float mx = *std::max_element(pg, pg + n);
        float sum = 0;
        for (int64_t j = 0; j < n; j++) sum += std::exp(pg[j] - mx);
        const float l = mx + std::log(sum);
        for (int64_t j = 0; j < n; j++) pg[j] = std::exp(pg[j] - l);
        lse[size_t(t * H + h)] = l;
        delta[size_t(t * H + h)] = dot(dout + (t * H + h) * d, out + (t * H + h) * d, d);
        std::fill_n(dq + (t * H + h) * d, d, 0.0f);
      }
      for (int64_t j = 0; j < n; j++) {  // dq += scale · P (dP - D) k
        K.read(lo + j, hk, kr.data());
        V.read(lo + j, hk, vr.data());
        for (int64_t g = 0; g < G; g++) {
          const int64_t h = hk * G + g;
          const float dp = dot(dout + (t * H + h) * d, vr.data(), d);
          const float ds = p[size_t(g * n + j)] * (dp - delta[size_t(t * H + h)]);
          axpy(dq + (t * H + h) * d, scale * ds, kr.data(), d);
        }
      }
    }
  });

  // Pass 2: per (key row, KV head), the queries that see it.
  pool.parallel_for(T * Hkv, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> kr(static_cast<size_t>(d)), vr(static_cast<size_t>(d));
    for (int64_t item = i0; item < i1; item++) {
      const int64_t j = item / Hkv, hk = item % Hkv;
      const int64_t pos = b.positions[size_t(j)], first = j - pos;  // the sequence's first row
      const int64_t len = b.kv_lens[size_t(b.row_seq[size_t(j)])];
      const int64_t last = window > 0 ? std::min(len - 1, pos + window - 1) : len - 1;  // a query position
      rows_for(Kc, j).read(pos, hk, kr.data());
      rows_for(Vc, j).read(pos, hk, vr.data());
      float* dkj = dk + (j * Hkv + hk) * d;
      float* dvj = dv + (j * Hkv + hk) * d;
      std::fill_n(dkj, d, 0.0f);
      std::fill_n(dvj, d, 0.0f);
      for (int64_t qp = pos; qp <= last; qp++) {
        const int64_t i = first + qp;
        for (int64_t g = 0; g < G; g++) {
          const int64_t h = hk * G + g;
          const float* qi = q + (i * H + h) * d;
          const float* doi = dout + (i * H + h) * d;
          const float pij = std::exp(scale * dot(qi, kr.data(), d) - lse[size_t(i * H + h)]);
          const float ds = pij * (dot(doi, vr.data(), d) - delta[size_t(i * H + h)]);
          axpy(dvj, pij, doi, d);
          axpy(dkj, scale * ds, qi, d);
        }
      }
    }
  });
}

}  // namespace

void attention_backward(const float* q, const KvStore& kv, int layer, int64_t window, float scale,
                        const BatchLayout& b, int64_t H, const float* out, const float* dout, float* dq, float* dk,
                        float* dv, ThreadPool& pool) {
  if (kv.dtype == DType::BF16) {
    attention_backward_typed<uint16_t>(q, kv, layer, window, scale, b, H, out, dout, dq, dk, dv, pool);
  } else {
    attention_backward_typed<float>(q, kv, layer, window, scale, b, H, out, dout, dq, dk, dv, pool);
  }
}

}  // namespace tiller::cpu
