// AVX2 + FMA + F16C matmul kernels: the weight-streaming GEMV for small T and a packed 6 x 16 F32
// GEMM for large T (F16/BF16 weight panels widened while packing).
// Compiled with -mavx2 -mfma -mf16c; only called when cpu_features() reports avx2.
#include "kernels/cpu/intrinsics.h"

#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul_gemm_loop.h"
#include "kernels/cpu/matmul_impl.h"

namespace tiller::cpu::detail {
namespace {

// Up to 8 weights of one row from element k, widened exactly to F32; lanes past `count` are zero
// (the tail goes through a zeroed copy: AVX2 has no masked 16-bit load).
template <DType WT>
inline __m256 load_w8(const void* row, int64_t k, int count) {
  constexpr int es = WT == DType::F32 ? 4 : 2;
  const char* p = static_cast<const char*>(row) + k * es;
  alignas(32) char tmp[32] = {};
  if (count < 8) {
    std::memcpy(tmp, p, size_t(count) * es);
    p = tmp;
  }
  if constexpr (WT == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (WT == DType::BF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

inline __m256i tail_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The one reduction tree every GEMV output goes through.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// --- GEMV ----------------------------------------------------------------------------------------
constexpr int kRows = 4;  // weight rows streamed together
constexpr int kTB = 2;    // rows of x per pass: 4 x 2 accumulators + 4 weights + x fit 16 ymm

// R weight rows starting at n against TB rows of x starting at t0; prefetches the next weight
// block [pf, pf + pf_bytes) into L2 as it goes (see matmul_avx512.cpp for why).
template <DType WT, int R, int TB>
void gemv_block(const MatmulArgs& a, int64_t n, int64_t t0, const char* pf, int64_t pf_bytes) {
  constexpr int64_t es = WT == DType::F32 ? 4 : 2;
  constexpr int kLinesPerStep = int(R * 8 * es / 64) > 0 ? int(R * 8 * es / 64) : 1;
  const int64_t K = a.K;
  const char* w = static_cast<const char*>(a.w) + n * K * es;
  const float* x = a.x + t0 * K;
  __m256 acc[TB][R];
  for (int t = 0; t < TB; t++) {
    for (int r = 0; r < R; r++) acc[t][r] = _mm256_setzero_ps();
  }
  const char* pf_end = pf ? pf + pf_bytes : nullptr;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if (pf < pf_end) {
      for (int l = 0; l < kLinesPerStep; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
      pf += 64 * kLinesPerStep;
    }
    __m256 wv[R];
    for (int r = 0; r < R; r++) wv[r] = load_w8<WT>(w + r * K * es, k, 8);
    for (int t = 0; t < TB; t++) {
      const __m256 xv = _mm256_loadu_ps(x + t * K + k);
      for (int r = 0; r < R; r++) acc[t][r] = _mm256_fmadd_ps(xv, wv[r], acc[t][r]);
    }
  }
  if (k < K) {
    const int cnt = int(K - k);
    const __m256i m = tail_mask(cnt);
    __m256 wv[R];
    for (int r = 0; r < R; r++) wv[r] = load_w8<WT>(w + r * K * es, k, cnt);
    for (int t = 0; t < TB; t++) {
      const __m256 xv = _mm256_maskload_ps(x + t * K + k, m);
      for (int r = 0; r < R; r++) acc[t][r] = _mm256_fmadd_ps(xv, wv[r], acc[t][r]);
    }
  }
  for (; pf < pf_end; pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
  for (int t = 0; t < TB; t++) {
    float* yr = a.y + (t0 + t) * a.N + n;
    for (int r = 0; r < R; r++) {
      const float s = hsum(acc[t][r]);
      yr[r] = a.bias ? s + a.bias[n + r] : s;
    }
  }
}

template <DType WT, int R>
void gemv_rows(const MatmulArgs& a, int64_t n, const char* pf, int64_t pf_bytes) {
  for (int64_t t0 = 0; t0 < a.T; t0 += kTB) {
    const char* p = t0 == 0 ? pf : nullptr;  // later passes hit L1/L2
    if (a.T - t0 == 1) {
      gemv_block<WT, R, 1>(a, n, t0, p, pf_bytes);
    } else {
      gemv_block<WT, R, kTB>(a, n, t0, p, pf_bytes);
    }
  }
}

template <DType WT>
void gemv_typed(const MatmulArgs& a, int64_t n0, int64_t n1) {
  constexpr int64_t es = WT == DType::F32 ? 4 : 2;
  const char* w = static_cast<const char*>(a.w);
  int64_t n = n0;
  for (; n + kRows <= n1; n += kRows) {
    const int64_t next_rows = n1 - (n + kRows) < kRows ? n1 - (n + kRows) : kRows;
    const char* pf = next_rows > 0 ? w + (n + kRows) * a.K * es : nullptr;
    gemv_rows<WT, kRows>(a, n, pf, next_rows * a.K * es);
  }
  for (; n < n1; n++) gemv_rows<WT, 1>(a, n, nullptr, 0);
}

// --- GEMM: 6 x 16 tiles, weights packed as F32 [k][16] -------------------------------------------
inline void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 2; g++) {
    s[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    s[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    s[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    s[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int c = 0; c < 4; c++) {
    r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}

struct Avx2Kern {
  using XElem = float;
  static constexpr int kMR = 6, kNR = 16, kKC = 256;  // panel: 16 KiB
  static constexpr int kGroup = 4;
  static int64_t depth(int64_t k) { return k; }
  static size_t panel_elems() { return size_t(kKC) * kNR; }

  template <DType WT>
  static void pack_typed(const MatmulArgs& a, const WSlice& cur, float* wp) {
    constexpr int64_t es = WT == DType::F32 ? 4 : 2;
    const char* w = static_cast<const char*>(a.w);
    const int64_t kc = cur.kc;
    for (int64_t k = 0; k < kc; k += 8) {
      const int cnt = int(kc - k < 8 ? kc - k : 8);
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) {
          const int j = 8 * h + i;
          r[i] = j < cur.rows ? load_w8<WT>(w + (cur.n + j) * a.K * es, cur.k0 + k, cnt)
                              : _mm256_setzero_ps();
        }
        transpose8(r);
        for (int c = 0; c < cnt; c++) _mm256_store_ps(wp + (k + c) * kNR + 8 * h, r[c]);
      }
    }
  }

  static void pack_w(const MatmulArgs& a, const WSlice& cur, void* wp) {
    float* p = static_cast<float*>(wp);
    if (is_quantized(a.w_type)) return pack_w_dequantized<kNR, kKC>(a, cur, p);
    switch (a.w_type) {
      case DType::F32: pack_typed<DType::F32>(a, cur, p); break;
      case DType::F16: pack_typed<DType::F16>(a, cur, p); break;
      default: pack_typed<DType::BF16>(a, cur, p); break;
    }
  }

  template <int M>
  static void tile_m(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy,
                     int nvalid, const float* bias, bool accumulate) {
    __m256 c[M][2];
    const __m256i m0 = tail_mask(nvalid), m1 = tail_mask(nvalid - 8);
    for (int i = 0; i < M; i++) {
      c[i][0] = accumulate ? _mm256_maskload_ps(y + i * ldy, m0) : _mm256_setzero_ps();
      c[i][1] = accumulate ? _mm256_maskload_ps(y + i * ldy + 8, m1) : _mm256_setzero_ps();
    }
    for (int64_t k = 0; k < kc; k++) {
      const __m256 b0 = _mm256_load_ps(wp + k * kNR), b1 = _mm256_load_ps(wp + k * kNR + 8);
      for (int i = 0; i < M; i++) {
        const __m256 av = _mm256_broadcast_ss(xp + k * kMR + i);
        c[i][0] = _mm256_fmadd_ps(av, b0, c[i][0]);
        c[i][1] = _mm256_fmadd_ps(av, b1, c[i][1]);
      }
    }
    if (bias) {
      const __m256 b0 = _mm256_maskload_ps(bias, m0), b1 = _mm256_maskload_ps(bias + 8, m1);
      for (int i = 0; i < M; i++) {
        c[i][0] = _mm256_add_ps(c[i][0], b0);
        c[i][1] = _mm256_add_ps(c[i][1], b1);
      }
    }
    for (int i = 0; i < M; i++) {
      _mm256_maskstore_ps(y + i * ldy, m0, c[i][0]);
      _mm256_maskstore_ps(y + i * ldy + 8, m1, c[i][1]);
    }
  }

  static void tile(int m, const float* xp, const void* wp_, int64_t kc, float* y, int64_t ldy,
                   int nvalid, const float* bias, bool accumulate) {
    const float* wp = static_cast<const float*>(wp_);
    switch (m) {
      case 1: tile_m<1>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 2: tile_m<2>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 3: tile_m<3>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 4: tile_m<4>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 5: tile_m<5>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      default: tile_m<6>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
    }
  }
};

void compute(const MatmulArgs& a, const void* xp, int64_t n0, int64_t n1, int64_t tb0,
             int64_t tb1) {
  gemm_loop<Avx2Kern>(a, xp, n0, n1, tb0, tb1);
}

}  // namespace

void gemv_avx2(const MatmulArgs& a, int64_t n0, int64_t n1) {
  switch (a.w_type) {
    case DType::F32: gemv_typed<DType::F32>(a, n0, n1); break;
    case DType::F16: gemv_typed<DType::F16>(a, n0, n1); break;
    case DType::BF16: gemv_typed<DType::BF16>(a, n0, n1); break;
    default: break;
  }
}

const GemmKernel kGemmAvx2 = {Avx2Kern::kMR, Avx2Kern::kNR, packed_x_bytes_f32<Avx2Kern::kMR>,
                              pack_x_f32<Avx2Kern::kMR>, pack_x_f32_transposed<Avx2Kern::kMR>, compute};

}  // namespace tiller::cpu::detail
