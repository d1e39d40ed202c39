// The gradient of paged causal attention on the CPU, for batches of whole sequences (training).
//
// One work item per (sequence, query head), in tiles of kQueryTile query rows against the keys
// those rows see (window-aware), each step a small GEMM on the forward's packed kernels (run
// inline on the item's thread: the pool does not nest):
//   S  = Q_tile · K_keysᵀ,  P = softmax(scale · S) under the causal/window mask (row lse here),
//   dP = dO_tile · V_keysᵀ, dS = scale · P ∘ (dP − D) with D = rowsum(dO ∘ O),
//   dQ_tile = dS · K_keys,  dK_keys += dSᵀ · Q_tile,  dV_keys += Pᵀ · dO_tile.
// A query head's dK and dV go to its own slot; the G heads that share a KV head are then summed in
// head order, so no two threads write one output and the split never changes a result.
// Everything is F32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/whole_sequences.h"
#include "kernels/cpu/backward.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

constexpr int64_t kQueryTile = 64;  // query rows per step: S, P, dP are [64, keys seen]

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

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

struct Seq {
  int64_t first_row, len, block_row;  // block_row: its row of the block tables
};

// One work item's buffers, reused across the items a thread runs.
struct Scratch {
  std::vector<float> k, v;         // [len, d]: the sequence's keys and values of the KV head, F32
  std::vector<float> q, o, dout;   // [len, d]: the query head's rows, gathered contiguous
  std::vector<float> dq, dk, dv;   // [len, d]
  std::vector<float> delta;        // [len]
  std::vector<float> s, p, dp;     // [kQueryTile, keys]

  template <typename KvT>
  void load_kv(const KvStore& kv, int layer, const BatchLayout& b, const Seq& sq, int64_t head) {
    const int64_t d = kv.head_dim, bs = kv.block_size, Hkv = kv.n_kv_heads, n = sq.len;
    const int32_t* table = b.block_tables.data() + sq.block_row * b.max_blocks;
    k.resize(size_t(n * d)), v.resize(size_t(n * d));
    const auto* K = static_cast<const KvT*>(kv.k[size_t(layer)].data);
    const auto* V = static_cast<const KvT*>(kv.v[size_t(layer)].data);
    for (int64_t pos = 0; pos < n; pos++) {
      const int64_t at = ((int64_t(table[pos / bs]) * Hkv + head) * bs + pos % bs) * d;  // [n_blocks, Hkv, bs, d]
      for (int64_t i = 0; i < d; i++) k[size_t(pos * d + i)] = load(K + at, i), v[size_t(pos * d + i)] = load(V + at, i);
    }
  }
};

// rows [n, d] <- src rows first_row.. of head h in a [T, H, d] tensor
void gather_head(const float* src, int64_t first_row, int64_t n, int64_t H, int64_t h, int64_t d, float* rows) {
  for (int64_t i = 0; i < n; i++) std::copy_n(src + ((first_row + i) * H + h) * d, d, rows + i * d);
}

template <typename KvT>
void attention_backward_typed(const float* q, const KvStore& kv, int layer, int64_t window, float scale,
                              const BatchLayout& b, int64_t H, const float* out, const float* dout, float* dq,
                              float* dk, float* dv, ThreadPool& pool) {
  const int64_t T = b.n_rows(), d = kv.head_dim, Hkv = kv.n_kv_heads, G = H / Hkv;
  check_whole_sequences(b, "attention_backward");
  std::vector<Seq> seqs;
  for (int64_t t = 0; t < T; t++) {
    if (b.positions[size_t(t)] == 0) seqs.push_back({t, b.kv_lens[size_t(b.row_seq[size_t(t)])], b.row_seq[size_t(t)]});
  }
  auto first_key = [&](int64_t pos) { return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0; };
  // Each query head's share of dK and dV, summed per KV head below.   [T, H, d]
  std::vector<float> dk_heads(size_t(T * H * d)), dv_heads(size_t(T * H * d));

  const int64_t items = int64_t(seqs.size()) * H;
  pool.parallel_for(items, 1, [&](int64_t i0, int64_t i1) {
    thread_local Scratch w;
    for (int64_t item = i0; item < i1; item++) {
      const Seq& sq = seqs[size_t(item / H)];
      const int64_t h = item % H, n = sq.len;
      w.load_kv<KvT>(kv, layer, b, sq, h / G);
      for (auto* v : {&w.q, &w.o, &w.dout, &w.dq, &w.dk, &w.dv}) v->assign(size_t(n * d), 0.0f);
      gather_head(q, sq.first_row, n, H, h, d, w.q.data());
      gather_head(out, sq.first_row, n, H, h, d, w.o.data());
      gather_head(dout, sq.first_row, n, H, h, d, w.dout.data());
      w.delta.resize(size_t(n));
      for (int64_t i = 0; i < n; i++) w.delta[size_t(i)] = dot(w.dout.data() + i * d, w.o.data() + i * d, d);

      for (int64_t r0 = 0; r0 < n; r0 += kQueryTile) {
        const int64_t m = std::min(kQueryTile, n - r0), lo = first_key(r0), nk = r0 + m - lo;  // keys [lo, r0 + m)
        for (auto* v : {&w.s, &w.p, &w.dp}) v->resize(size_t(m * nk));
        const float *q_tile = w.q.data() + r0 * d, *dout_tile = w.dout.data() + r0 * d;
        const float *kk = w.k.data() + lo * d, *vv = w.v.data() + lo * d;
        matmul(q_tile, m, d, kk, DType::F32, nk, nullptr, w.s.data(), pool);     // S  [m, nk]
        matmul(dout_tile, m, d, vv, DType::F32, nk, nullptr, w.dp.data(), pool);  // dP [m, nk]
        for (int64_t i = 0; i < m; i++) {
          const int64_t pos = r0 + i, j0 = first_key(pos) - lo, j1 = pos - lo + 1;  // keys seen, in [0, nk)
          float* s = w.s.data() + i * nk;
          float* p = w.p.data() + i * nk;
          float* dp = w.dp.data() + i * nk;
          float mx = -INFINITY;
          for (int64_t j = j0; j < j1; j++) mx = std::max(mx, s[j] *= scale);
          double sum = 0;
          for (int64_t j = j0; j < j1; j++) sum += std::exp(double(s[j] - mx));
          const float lse = mx + float(std::log(sum)), D = w.delta[size_t(pos)];
          for (int64_t j = 0; j < nk; j++) {
            const bool seen = j >= j0 && j < j1;
            p[j] = seen ? std::exp(s[j] - lse) : 0.0f;
            dp[j] = seen ? scale * p[j] * (dp[j] - D) : 0.0f;  // dS
          }
        }
        // dQ_tile = dS · K_keys
        matmul_transposed(w.dp.data(), m, nk, kk, DType::F32, d, w.dq.data() + r0 * d, {}, pool);
        // dK_keys += dSᵀ · Q_tile, dV_keys += Pᵀ · dO_tile (dS and P read as stored, [m, nk])
        const TransposedMatmul add_t{.x_transposed = true, .accumulate = true};
        matmul_transposed(w.dp.data(), nk, m, q_tile, DType::F32, d, w.dk.data() + lo * d, add_t, pool);
        matmul_transposed(w.p.data(), nk, m, dout_tile, DType::F32, d, w.dv.data() + lo * d, add_t, pool);
      }
      for (int64_t i = 0; i < n; i++) {
        const int64_t row = ((sq.first_row + i) * H + h) * d;
        std::copy_n(w.dq.data() + i * d, d, dq + row);
        std::copy_n(w.dk.data() + i * d, d, dk_heads.data() + row);
        std::copy_n(w.dv.data() + i * d, d, dv_heads.data() + row);
      }
    }
  });
  // dK, dV of each KV head: its G query heads' shares in head order.
  pool.parallel_for(T, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      for (int64_t kh = 0; kh < Hkv; kh++) {
        float* gk = dk + (t * Hkv + kh) * d;
        float* gv = dv + (t * Hkv + kh) * d;
        std::copy_n(dk_heads.data() + (t * H + kh * G) * d, d, gk);
        std::copy_n(dv_heads.data() + (t * H + kh * G) * d, d, gv);
        for (int64_t g = 1; g < G; g++) {
          const float* sk = dk_heads.data() + (t * H + kh * G + g) * d;
          const float* sv = dv_heads.data() + (t * H + kh * G + g) * d;
          for (int64_t i = 0; i < d; i++) gk[i] += sk[i], gv[i] += sv[i];
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
