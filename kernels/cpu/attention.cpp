// Paged causal attention on the CPU: GQA, sliding window, ragged rows, F32 or BF16 cache.
//
// Flash attention, CPU-shaped. A work item is a run of up to kRowTile consecutive rows of one
// sequence (a prefill chunk; a decode row is a run of one) for one KV head, together with the
// G = H / Hkv query heads sharing it: up to kRowTile·G query vectors. Keys and values are read
// once per item, kKeyTile at a time, widened to F32 (keys transposed, so a query's kKeyTile
// scores are one vector loop over keys) and folded into each query with an online softmax.
// Everything is F32; results do not depend on the thread count (an item is one thread's work).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/vec_math.h"

namespace tiller::cpu {
namespace {

constexpr int64_t kKeyTile = 32;  // keys per tile: two AVX-512 vectors of scores
constexpr int64_t kRowTile = 16;  // rows of one sequence per work item
constexpr double kInlineRowKeys = 512;  // (query, key) pairs (~15 us) below which one thread does it all

struct Item {
  int64_t row0, rows;  // batch rows row0 .. row0 + rows - 1: one sequence, consecutive positions
  int64_t kv_head;
  double cost;         // rows x keys, to schedule the largest items first
};

struct Scratch {
  std::vector<float> kt;    // [d, kKeyTile] the tile's keys, transposed
  std::vector<float> vt;    // [kKeyTile, d] the tile's values
  std::vector<float> sc;    // [nq, kKeyTile] the tile's raw scores
  std::vector<float> m, l;  // [nq] running max and sum of each query's softmax
  std::vector<float> o;     // [nq, d] running numerators
};

constexpr int kLanes = 16;  // independent partial sums: vectorisable without reassociating floats

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }

__attribute__((always_inline)) inline float sum_tile(const float* p) {  // p [kKeyTile]
  float acc[kLanes];
  for (int l = 0; l < kLanes; l++) acc[l] = p[l] + p[l + kLanes];
  float s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// The largest of a tile's values as a tree of elementwise maxima (vectorisable; max is exact, so
// the order does not matter).   z [kKeyTile]
__attribute__((always_inline)) inline float max_tile(const float* z) {
  float a[kKeyTile / 2];
  for (int l = 0; l < kKeyTile / 2; l++) a[l] = std::max(z[l], z[l + kKeyTile / 2]);
  for (int w = kKeyTile / 4; w >= 1; w /= 2) {
    for (int l = 0; l < w; l++) a[l] = std::max(a[l], a[l + w]);
  }
  return a[0];
}

// Scores of Q queries against a tile of keys at once: the Q·2 accumulator chains are independent,
// so the FMAs overlap instead of waiting on each other, and each key vector is loaded once for Q
// queries. Per score the sum is the same (i = 0 .. d-1, from 0) whatever Q is, so a query's
// result does not depend on its neighbours.   q[c] [d], kt [d, kKeyTile], sc [Q, kKeyTile]
template <int Q>
__attribute__((always_inline)) inline void score_queries(const float* const* q, const float* kt, int64_t d,
                                                         float* sc) {
  float acc[Q][kKeyTile] = {};
  for (int64_t i = 0; i < d; i++) {
    for (int c = 0; c < Q; c++) {
      const float qq = q[c][i];
      for (int64_t j = 0; j < kKeyTile; j++) acc[c][j] += qq * kt[i * kKeyTile + j];
    }
  }
  for (int c = 0; c < Q; c++) {
    for (int64_t j = 0; j < kKeyTile; j++) sc[c * kKeyTile + j] = acc[c][j];
  }
}

// o[i0, i0 + W) = o·alpha + Σ_{j0 <= j < j1} p_j v_j[i0, i0 + W), summed in j order: W/16
// independent vector chains per pass.   vt [kKeyTile, d]
template <int W>
__attribute__((always_inline)) inline void accumulate_pv(float* o, float alpha, const float* p, const float* vt,
                                                         int64_t d, int64_t i0, int64_t j0, int64_t j1) {
  float acc[W];
  for (int l = 0; l < W; l++) acc[l] = o[i0 + l] * alpha;
  for (int64_t j = j0; j < j1; j++) {
    const float pj = p[j];
    for (int l = 0; l < W; l++) acc[l] += pj * vt[j * d + i0 + l];
  }
  for (int l = 0; l < W; l++) o[i0 + l] = acc[l];
}

template <typename KvT>
__attribute__((always_inline)) inline void attend_item(const Item& it, const float* q, float* out, const KvStore& kv,
                                                       int layer, int64_t window, float scale, const BatchLayout& b,
                                                       int64_t H, Scratch& s) {
  const int64_t d = kv.head_dim, bs = kv.block_size, Hkv = kv.n_kv_heads, G = H / Hkv;
  const int64_t nq = it.rows * G;  // query index qi = r * G + g
  const int32_t* table = b.block_tables.data() + size_t(b.row_seq[size_t(it.row0)]) * size_t(b.max_blocks);
  const auto* K = static_cast<const KvT*>(kv.k[size_t(layer)].data);
  const auto* V = static_cast<const KvT*>(kv.v[size_t(layer)].data);
  auto row_of = [&](const KvT* base, int64_t p) {  // [n_blocks, Hkv, bs, d]
    return base + ((int64_t(table[p / bs]) * Hkv + it.kv_head) * bs + p % bs) * d;
  };
  auto first_key = [&](int64_t pos) { return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0; };
  const int64_t pos0 = b.positions[size_t(it.row0)];
  const int64_t key_begin = first_key(pos0), key_end = pos0 + it.rows;  // keys any row needs

  s.kt.resize(size_t(d * kKeyTile));
  s.vt.resize(size_t(kKeyTile * d));
  s.sc.resize(size_t(nq * kKeyTile));
  s.m.assign(size_t(nq), -std::numeric_limits<float>::infinity());
  s.l.assign(size_t(nq), 0.0f);
  s.o.assign(size_t(nq * d), 0.0f);
  float* kt = s.kt.data();
  float* vt = s.vt.data();

  // Tiles start at multiples of kKeyTile, so a row's tiles (and its result) do not depend on the
  // other rows of its item; keys before a row's window are masked per row below.
  const int64_t first_tile = key_begin / kKeyTile * kKeyTile;
  for (int64_t t0 = first_tile; t0 < key_end; t0 += kKeyTile) {
    const int64_t n = std::min(kKeyTile, key_end - t0);
    // Keys are widened straight into the transposed tile: a query's scores are then one vector
    // loop over the tile's keys. Every query takes this same path, so a row's result never
    // depends on which rows share its batch.
    for (int64_t j = 0; j < kKeyTile; j++) {
      if (j < n && t0 + j >= key_begin) {
        const KvT* k = row_of(K, t0 + j);
        const KvT* v = row_of(V, t0 + j);
        for (int64_t i = 0; i < d; i++) kt[i * kKeyTile + j] = load(k, i);
        for (int64_t i = 0; i < d; i++) vt[j * d + i] = load(v, i);
      } else {
        for (int64_t i = 0; i < d; i++) kt[i * kKeyTile + j] = 0.0f;  // scored but masked below
        std::fill(vt + j * d, vt + (j + 1) * d, 0.0f);
      }
    }
    // Every query's scores first, four queries at a time.
    auto q_of = [&](int64_t qi) { return q + ((it.row0 + qi / G) * H + it.kv_head * G + qi % G) * d; };
    int64_t qi = 0;
    for (; qi + 4 <= nq; qi += 4) {
      const float* qs[4] = {q_of(qi), q_of(qi + 1), q_of(qi + 2), q_of(qi + 3)};
      score_queries<4>(qs, kt, d, s.sc.data() + qi * kKeyTile);
    }
    for (; qi < nq; qi++) {
      const float* qs[1] = {q_of(qi)};
      score_queries<1>(qs, kt, d, s.sc.data() + qi * kKeyTile);
    }
    for (int64_t r = 0; r < it.rows; r++) {
      const int64_t pos = pos0 + r;
      const int64_t j0 = std::max<int64_t>(0, first_key(pos) - t0), j1 = std::min<int64_t>(n, pos + 1 - t0);
      if (j0 >= j1) continue;  // this row sees none of the tile's keys
      for (int64_t g = 0; g < G; g++) {
        const int64_t qi = r * G + g;
        const float* sc = s.sc.data() + qi * kKeyTile;
        float z[kKeyTile];  // scaled scores, -inf where masked
        for (int64_t j = 0; j < kKeyTile; j++) z[j] = j >= j0 && j < j1 ? sc[j] * scale : -kInf;
        const float tile_max = max_tile(z);
        const float m_new = std::max(s.m[size_t(qi)], tile_max);
        const float alpha = exp_approx(s.m[size_t(qi)] - m_new);  // 0 on the first tile (m = -inf)
        float p[kKeyTile];
        for (int64_t j = 0; j < kKeyTile; j++) p[j] = exp_approx(z[j] - m_new);
        for (int64_t j = 0; j < kKeyTile; j++) p[j] = (j >= j0 && j < j1) ? p[j] : 0.0f;
        s.l[size_t(qi)] = s.l[size_t(qi)] * alpha + sum_tile(p);
        s.m[size_t(qi)] = m_new;
        float* o = s.o.data() + qi * d;
        int64_t i0 = 0;
        for (; i0 + 4 * kLanes <= d; i0 += 4 * kLanes) accumulate_pv<4 * kLanes>(o, alpha, p, vt, d, i0, j0, j1);
        for (; i0 + kLanes <= d; i0 += kLanes) accumulate_pv<kLanes>(o, alpha, p, vt, d, i0, j0, j1);
        for (; i0 < d; i0++) accumulate_pv<1>(o, alpha, p, vt, d, i0, j0, j1);  // head_dim % 16 != 0
      }
    }
  }
  for (int64_t r = 0; r < it.rows; r++) {
    for (int64_t g = 0; g < G; g++) {
      const int64_t qi = r * G + g;
      const float inv = 1.0f / s.l[size_t(qi)];
      float* dst = out + ((it.row0 + r) * H + it.kv_head * G + g) * d;
      const float* o = s.o.data() + qi * d;
      for (int64_t i = 0; i < d; i++) dst[i] = o[i] * inv;
    }
  }
}

TILLER_CLONES void attend_f32(const Item& it, const float* q, float* out, const KvStore& kv, int layer, int64_t window,
                              float scale, const BatchLayout& b, int64_t H, Scratch& s) {
  attend_item<float>(it, q, out, kv, layer, window, scale, b, H, s);
}

TILLER_CLONES void attend_bf16(const Item& it, const float* q, float* out, const KvStore& kv, int layer,
                               int64_t window, float scale, const BatchLayout& b, int64_t H, Scratch& s) {
  attend_item<uint16_t>(it, q, out, kv, layer, window, scale, b, H, s);
}

// Runs of consecutive rows of one sequence at consecutive positions, cut at kRowTile, per KV head.
std::vector<Item> make_items(const BatchLayout& b, int64_t Hkv, int64_t window) {
  std::vector<Item> items;
  const int64_t T = b.n_rows();
  for (int64_t t = 0; t < T;) {
    int64_t n = 1;
    while (t + n < T && n < kRowTile && b.row_seq[size_t(t + n)] == b.row_seq[size_t(t)] &&
           b.positions[size_t(t + n)] == b.positions[size_t(t)] + n)
      n++;
    const int64_t last = b.positions[size_t(t + n - 1)];
    const double keys = double(window > 0 ? std::min<int64_t>(last + 1, window + n) : last + 1);
    for (int64_t g = 0; g < Hkv; g++) items.push_back({t, n, g, double(n) * keys});
    t += n;
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& c) { return a.cost > c.cost; });
  return items;
}

}  // namespace

void attention(const float* q, const KvStore& kv, int layer, int64_t window, float scale, const BatchLayout& b,
               int64_t H, float* out, ThreadPool& pool) {
  const int64_t Hkv = kv.n_kv_heads;
  TILLER_CHECK(H % Hkv == 0);
  const std::vector<Item> items = make_items(b, Hkv, window);
  const bool bf16 = kv.dtype == DType::BF16;
  // Largest first, taken from a shared counter: later rows of a prompt see more keys, so a fixed
  // split would leave one thread most of the work. Each item is still one thread's, start to end,
  // so the results do not depend on which thread, or how many, ran it.
  std::atomic<size_t> next{0};
  auto work = [&](int, int) {
    Scratch scratch;
    for (size_t i = next++; i < items.size(); i = next++) {
      if (bf16) attend_bf16(items[i], q, out, kv, layer, window, scale, b, H, scratch);
      else attend_f32(items[i], q, out, kv, layer, window, scale, b, H, scratch);
    }
  };
  // A decode step over a few short sequences is microseconds of work, little more than waking the
  // pool costs, so it runs on the calling thread.
  double cost = 0;
  for (const Item& it : items) cost += it.cost;
  if (cost * double(H / Hkv) < kInlineRowKeys) work(0, 1);
  else pool.run(work);
}

}  // namespace tiller::cpu
