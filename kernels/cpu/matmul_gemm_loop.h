// The cache-blocking loops of the packed GEMM, shared by every ISA's kernel file.
//
// Everything here has internal linkage on purpose: each *_avx2.cpp / *_avx512.cpp file compiles
// its own copy with its own instruction set, and the linker must never merge an AVX-512 copy into
// the code a baseline CPU runs.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/matmul_impl.h"

namespace tiller::cpu::detail {
namespace {

// Packs the T blocks [tb0, tb1) of x[T, K] for F32 microkernels: block b is [K][MR], so the
// kernel broadcasts MR consecutive floats per k. Rows past T are zero.
template <int MR>
void pack_x_f32(const float* x, int64_t T, int64_t K, void* xp_, int64_t tb0, int64_t tb1) {
  float* xp = static_cast<float*>(xp_);
  for (int64_t b = tb0; b < tb1; b++) {
    float* dst = xp + b * K * MR;
    for (int i = 0; i < MR; i++) {
      const int64_t t = b * MR + i;
      if (t < T) {
        const float* src = x + t * K;
        for (int64_t k = 0; k < K; k++) dst[k * MR + i] = src[k];
      } else {
        for (int64_t k = 0; k < K; k++) dst[k * MR + i] = 0.0f;
      }
    }
  }
}

// The same from x stored transposed, xt [K, T]: each packed k row is a contiguous run of xt.
template <int MR>
void pack_x_f32_transposed(const float* xt, int64_t T, int64_t K, void* xp_, int64_t tb0, int64_t tb1) {
  float* xp = static_cast<float*>(xp_);
  for (int64_t b = tb0; b < tb1; b++) {
    float* dst = xp + b * K * MR;
    const int64_t t0 = b * MR, m = T - t0 < MR ? T - t0 : MR;
    for (int64_t k = 0; k < K; k++) {
      const float* src = xt + k * T + t0;
      for (int64_t i = 0; i < m; i++) dst[k * MR + i] = src[i];
      for (int64_t i = m; i < MR; i++) dst[k * MR + i] = 0.0f;
    }
  }
}

template <int MR>
size_t packed_x_bytes_f32(int64_t T, int64_t K) {
  return size_t((T + MR - 1) / MR) * MR * size_t(K) * sizeof(float);
}

// A KC-deep slice of a weight panel: rows [n, n + rows) x columns [k0, k0 + kc).
struct WSlice {
  int64_t n = 0;
  int rows = 0;
  int64_t k0 = 0, kc = 0;
};

// Packs a slice of block-quantized weights as F32 [kc][NR], dequantized exactly (to_f32) row by
// row; rows past the slice are zero. Slices start at multiples of KC (256), so whole blocks.
template <int NR, int KC>
void pack_w_dequantized(const MatmulArgs& a, const WSlice& cur, float* wp) {
  float tmp[KC];
  const size_t row_bytes = dtype_bytes(a.w_type, a.K);
  for (int j = 0; j < NR; j++) {
    if (j < cur.rows) {
      const char* row = static_cast<const char*>(a.w) + size_t(cur.n + j) * row_bytes;
      to_f32(a.w_type, row + dtype_bytes(a.w_type, cur.k0), tmp, size_t(cur.kc));
      for (int64_t k = 0; k < cur.kc; k++) wp[k * NR + j] = tmp[k];
    } else {
      for (int64_t k = 0; k < cur.kc; k++) wp[k * NR + j] = 0.0f;
    }
  }
}

// Packs a slice of weights stored transposed (w [K, N], MatmulArgs::w_transposed) as F32
// [kc][NR]: packed row k is the contiguous run w[k0 + k][n : n + rows], widened exactly (no
// transpose: this layout is the panel's own); columns past the slice are zero.
template <int NR>
void pack_w_transposed(const MatmulArgs& a, const WSlice& cur, float* wp) {
  const size_t es = dtype_size(a.w_type);
  const char* w = static_cast<const char*>(a.w);
  for (int64_t k = 0; k < cur.kc; k++) {
    const char* src = w + (size_t(cur.k0 + k) * size_t(a.N) + size_t(cur.n)) * es;
    float* dst = wp + k * NR;
    if (a.w_type == DType::F32) {  // a fixed-length copy for full panels: a few vector moves, no call
      const auto* f = reinterpret_cast<const float*>(src);
      if (cur.rows == NR) {
        for (int j = 0; j < NR; j++) dst[j] = f[j];
      } else {
        for (int j = 0; j < cur.rows; j++) dst[j] = f[j];
      }
    } else if (a.w_type == DType::BF16) {
      const auto* h = reinterpret_cast<const uint16_t*>(src);
      for (int j = 0; j < cur.rows; j++) dst[j] = bf16_to_f32(h[j]);
    } else {
      to_f32(a.w_type, src, dst, size_t(cur.rows));
    }
    for (int j = cur.rows; j < NR; j++) dst[j] = 0.0f;
  }
}

// Walks the weights of the next group slice (rows of `bytes` each, `stride` apart), a few cache
// lines at a time between tiles, so the next pack_w finds them in L2: its rows are short runs the
// hardware prefetchers barely follow, and prefetching them all at once (or loading them in
// pack_w) stalls on the memory latency instead of overlapping it with the tiles.
class WeightPrefetcher {
 public:
  WeightPrefetcher() = default;
  WeightPrefetcher(const char* first, int rows, int64_t stride, int64_t bytes)
      : row_(first), rows_(rows), stride_(stride), bytes_(bytes + 63) {}
  int64_t lines() const { return int64_t(rows_) * (bytes_ / 64); }

  // (Keep prefetches inlined: GCC treats an out-of-line function whose only effect is a prefetch
  // as `const` and deletes its calls.)
  [[gnu::always_inline]] void issue(int64_t lines) {
    for (; lines > 0 && rows_ > 0; lines--) {
      __builtin_prefetch(row_ + off_, 0, 2);  // into L2
      off_ += 64;
      if (off_ >= bytes_) off_ = 0, row_ += stride_, rows_--;
    }
  }

 private:
  const char* row_ = nullptr;
  int rows_ = 0;
  int64_t stride_ = 0, bytes_ = 0, off_ = 0;
};

// Kern supplies:
//   kMR, kNR, kKC          register tile and panel depth (in k; even for pair layouts)
//   kGroup                 weight panels packed per k slice (they share each x micro-panel)
//   XElem                  element of the packed x (float, or uint32_t for BF16 pairs)
//   depth(k)               packed rows for k values of K (k, or ceil(k / 2) for pairs)
//   panel_elems()          XElem-sized elements of one packed weight panel (kKC deep)
//   pack_w(a, cur, wp)                  weights of slice `cur` -> wp
//   tile(m, xp, wp, depth, y, ldy, nvalid, bias, accumulate)    one m x kNR tile of y
//
// Loop order, per thread over its columns [n0, n1):
//   group of kGroup panels (kNR columns each): the thread's weights are read once, in order;
//     k slice (kKC deep): its panels are packed into scratch (L1/L2-sized);
//       row block (kMR rows of x): its x micro-panel stays in L1 across the group's tiles.
// x is re-read from L2/L3 once per (group, k slice), y's group strip once per k slice.
template <class Kern>
void gemm_loop(const MatmulArgs& a, const void* xp_, int64_t n0, int64_t n1, int64_t tb0,
               int64_t tb1) {
  using XElem = typename Kern::XElem;
  constexpr int64_t kGroupCols = int64_t(Kern::kGroup) * Kern::kNR;
  const XElem* xp = static_cast<const XElem*>(xp_);
  const int64_t kx = Kern::depth(a.K);
  const size_t panel = Kern::panel_elems();
  XElem* wp = static_cast<XElem*>(thread_scratch(1, panel * Kern::kGroup * sizeof(XElem)));
  const char* w = static_cast<const char*>(a.w);
  const int64_t first_kc = a.K < Kern::kKC ? a.K : Kern::kKC;
  auto slice = [&](int64_t n, int64_t k0) {  // the slice of the panel at column n, depth k0
    const int64_t end = n1 - n < Kern::kNR ? n1 : n + Kern::kNR;
    return WSlice{n, int(end - n), k0, a.K - k0 < Kern::kKC ? a.K - k0 : Kern::kKC};
  };
  for (int64_t g0 = n0; g0 < n1; g0 += kGroupCols) {
    const int64_t g1 = n1 - g0 < kGroupCols ? n1 : g0 + kGroupCols;
    const int panels = int((g1 - g0 + Kern::kNR - 1) / Kern::kNR);
    for (int64_t k0 = 0; k0 < a.K; k0 += Kern::kKC) {
      const WSlice first = slice(g0, k0);
      const bool last = k0 + first.kc >= a.K;
      for (int p = 0; p < panels; p++) {
        if constexpr (std::is_same_v<XElem, float>) {
          if (a.w_transposed) {
            pack_w_transposed<Kern::kNR>(a, slice(g0 + p * Kern::kNR, k0), wp + p * panel);
            continue;
          }
        }
        Kern::pack_w(a, slice(g0 + p * Kern::kNR, k0), wp + p * panel);
      }
      // What is packed next: the group's next slice, else the next group's first.
      const auto bytes = [&](int64_t n) { return int64_t(dtype_bytes(a.w_type, n)); };  // block types too
      WeightPrefetcher pf;
      if (a.w_transposed) {  // rows of w are k: the slice is kc runs of the group's columns
        const int64_t row = bytes(a.N);
        if (!last) {
          const WSlice s = slice(g0, k0 + Kern::kKC);
          pf = WeightPrefetcher(w + s.k0 * row + bytes(g0), int(s.kc), row, bytes(g1 - g0));
        } else if (g1 < n1) {
          const int64_t e = n1 - g1 < kGroupCols ? n1 : g1 + kGroupCols;
          pf = WeightPrefetcher(w + bytes(g1), int(first_kc), row, bytes(e - g1));
        }
      } else {
        const int64_t row = bytes(a.K);
        if (!last) {
          const WSlice s = slice(g0, k0 + Kern::kKC);
          pf = WeightPrefetcher(w + g0 * row + bytes(s.k0), int(g1 - g0), row, bytes(s.kc));
        } else if (g1 < n1) {
          const int64_t e = n1 - g1 < kGroupCols ? n1 : g1 + kGroupCols;
          pf = WeightPrefetcher(w + g1 * row, int(e - g1), row, bytes(first_kc));
        }
      }
      const int64_t calls = (tb1 - tb0) * panels;
      const int64_t quota = (pf.lines() + calls - 1) / calls;
      for (int64_t tb = tb0; tb < tb1; tb++) {
        const int64_t t0 = tb * Kern::kMR;
        const int m = int(a.T - t0 < Kern::kMR ? a.T - t0 : Kern::kMR);
        const XElem* xt = xp + (tb * kx + Kern::depth(k0)) * Kern::kMR;
        for (int p = 0; p < panels; p++) {
          const int64_t n = g0 + p * Kern::kNR;
          const int nvalid = int(g1 - n < Kern::kNR ? g1 - n : Kern::kNR);
          pf.issue(quota);
          Kern::tile(m, xt, wp + p * panel, Kern::depth(first.kc), a.y + t0 * a.N + n, a.N, nvalid,
                     (last && a.bias) ? a.bias + n : nullptr, k0 > 0 || a.accumulate);
        }
      }
    }
  }
}

}  // namespace
}  // namespace tiller::cpu::detail
