// The gradient of paged causal attention on the CPU, for batches of whole sequences (training).
//
// FlashAttention-2's recomputation, in two passes so that no two threads write one output:
//   1. per (sequence, KV head, tile of query rows): recompute each row's scores against its keys,
//      its log-sum-exp and D = dout · out; dq = scale · Σ_j P_j (dP_j - D) k_j with P the softmax
//      and dP_j = dout · v_j;
//   2. per (sequence, KV head, tile of keys): over the queries that see them (the key's own row
//      and later rows within the window), dv_j = Σ_i P_ij dout_i and dk_j = scale · Σ_i dS_ij q_i.
// A work item first widens its sequence's keys and values of its head to F32, both as rows and
// transposed, so scores over many keys are one vector loop (no reduction per key).
// Everything is F32; the work split does not change any result.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/whole_sequences.h"
#include "kernels/cpu/backward.h"
#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

constexpr int64_t kQueryTile = 16;  // query rows per pass-1 item
constexpr int64_t kKeyTile = 32;    // keys per pass-2 item

TILLER_CLONES void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

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

// s[j] = Σ_i x[i] · mt[i * ld + j] for j < n (mt transposed, row stride ld): vectorised over j.
TILLER_CLONES void scores(const float* x, const float* mt, int64_t d, int64_t ld, int64_t j0, int64_t n, float* s) {
  std::fill_n(s, n, 0.0f);
  for (int64_t i = 0; i < d; i++) {
    const float xi = x[i];
    const float* row = mt + i * ld + j0;
    for (int64_t j = 0; j < n; j++) s[j] += xi * row[j];
  }
}

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

struct Seq {
  int64_t first_row, len, block_row;  // block_row: its row of the block tables
};

// One sequence's keys and values of one KV head in F32: rows [len, d] and transposed [d, len].
struct HeadKv {
  std::vector<float> k, v, kt, vt;
  template <typename KvT>
  void load_from(const KvStore& kv, int layer, const BatchLayout& b, const Seq& s, int64_t head) {
    const int64_t d = kv.head_dim, bs = kv.block_size, Hkv = kv.n_kv_heads, n = s.len;
    const int32_t* table = b.block_tables.data() + s.block_row * b.max_blocks;
    k.resize(size_t(n * d)), v.resize(size_t(n * d)), kt.resize(size_t(n * d)), vt.resize(size_t(n * d));
    const auto* K = static_cast<const KvT*>(kv.k[size_t(layer)].data);
    const auto* V = static_cast<const KvT*>(kv.v[size_t(layer)].data);
    for (int64_t p = 0; p < n; p++) {
      const int64_t at = ((int64_t(table[p / bs]) * Hkv + head) * bs + p % bs) * d;  // [n_blocks, Hkv, bs, d]
      for (int64_t i = 0; i < d; i++) {
        const float kv_k = load(K + at, i), kv_v = load(V + at, i);
        k[size_t(p * d + i)] = kv_k, v[size_t(p * d + i)] = kv_v;
        kt[size_t(i * n + p)] = kv_k, vt[size_t(i * n + p)] = kv_v;
      }
    }
  }
};

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
  struct Item {
    size_t seq;
    int64_t head, p0, p1;  // positions [p0, p1) of the tile
  };
  auto items_of = [&](int64_t tile) {
    std::vector<Item> items;
    for (size_t s = 0; s < seqs.size(); s++)
      for (int64_t h = 0; h < Hkv; h++)
        for (int64_t p = 0; p < seqs[s].len; p += tile) items.push_back({s, h, p, std::min(seqs[s].len, p + tile)});
    return items;
  };
  auto first_key = [&](int64_t pos) { return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0; };
  auto last_query = [&](int64_t pos, int64_t len) { return window > 0 ? std::min(len - 1, pos + window - 1) : len - 1; };
  std::vector<float> lse(size_t(T * H)), delta(size_t(T * H));
  const int64_t avg_keys = window > 0 ? std::min<int64_t>(window, b.max_kv_len) : std::max<int32_t>(1, b.max_kv_len / 2);
  auto grain_for = [&](int64_t rows) {  // items of under ~32K multiply-adds run on the calling thread
    return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, rows * avg_keys * G * d * 3));
  };

  // Pass 1: dq, lse and D per query row.
  const std::vector<Item> q_items = items_of(kQueryTile);
  pool.parallel_for(int64_t(q_items.size()), grain_for(kQueryTile), [&](int64_t i0, int64_t i1) {
    HeadKv hk;
    std::vector<float> p, dp;
    for (int64_t it = i0; it < i1; it++) {
      const Item& item = q_items[size_t(it)];
      const Seq& s = seqs[item.seq];
      hk.load_from<KvT>(kv, layer, b, s, item.head);
      for (int64_t pos = item.p0; pos < item.p1; pos++) {
        const int64_t t = s.first_row + pos, lo = first_key(pos), n = pos - lo + 1;
        p.resize(size_t(n)), dp.resize(size_t(n));
        for (int64_t g = 0; g < G; g++) {
          const int64_t h = item.head * G + g, row = (t * H + h) * d;
          scores(q + row, hk.kt.data(), d, s.len, lo, n, p.data());
          float mx = -INFINITY;
          for (int64_t j = 0; j < n; j++) mx = std::max(mx, p[size_t(j)] *= scale);
          float sum = 0;
          for (int64_t j = 0; j < n; j++) sum += std::exp(p[size_t(j)] - mx);
          const float l = mx + std::log(sum), D = dot(dout + row, out + row, d);
          scores(dout + row, hk.vt.data(), d, s.len, lo, n, dp.data());
          float* dqr = dq + row;
          std::fill_n(dqr, d, 0.0f);
          for (int64_t j = 0; j < n; j++) {
            const float pj = std::exp(p[size_t(j)] - l);
            axpy(dqr, scale * pj * (dp[size_t(j)] - D), hk.k.data() + (lo + j) * d, d);
          }
          lse[size_t(t * H + h)] = l;
          delta[size_t(t * H + h)] = D;
        }
      }
    }
  });

  // Pass 2: dk, dv per key row, over the queries that see it.
  const std::vector<Item> k_items = items_of(kKeyTile);
  pool.parallel_for(int64_t(k_items.size()), grain_for(kKeyTile), [&](int64_t i0, int64_t i1) {
    HeadKv hk;
    std::vector<float> p(static_cast<size_t>(kKeyTile)), dp(static_cast<size_t>(kKeyTile));
    for (int64_t it = i0; it < i1; it++) {
      const Item& item = k_items[size_t(it)];
      const Seq& s = seqs[item.seq];
      hk.load_from<KvT>(kv, layer, b, s, item.head);
      for (int64_t j = item.p0; j < item.p1; j++) {
        std::fill_n(dk + ((s.first_row + j) * Hkv + item.head) * d, d, 0.0f);
        std::fill_n(dv + ((s.first_row + j) * Hkv + item.head) * d, d, 0.0f);
      }
      const int64_t q_end = last_query(item.p1 - 1, s.len) + 1;
      for (int64_t qp = item.p0; qp < q_end; qp++) {
        // Keys of the tile this query sees: [max(p0, first_key(qp)), min(p1, qp + 1)).
        const int64_t j0 = std::max(item.p0, first_key(qp)), j1 = std::min(item.p1, qp + 1);
        if (j0 >= j1) continue;
        const int64_t n = j1 - j0, t = s.first_row + qp;
        for (int64_t g = 0; g < G; g++) {
          const int64_t h = item.head * G + g, row = (t * H + h) * d;
          scores(q + row, hk.kt.data(), d, s.len, j0, n, p.data());
          scores(dout + row, hk.vt.data(), d, s.len, j0, n, dp.data());
          const float l = lse[size_t(t * H + h)], D = delta[size_t(t * H + h)];
          for (int64_t j = 0; j < n; j++) {
            const float pij = std::exp(scale * p[size_t(j)] - l);
            const int64_t key_row = ((s.first_row + j0 + j) * Hkv + item.head) * d;
            axpy(dv + key_row, pij, dout + row, d);
            axpy(dk + key_row, scale * pij * (dp[size_t(j)] - D), q + row, d);
          }
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
