// AVX-512 packed GEMM for large T (prefill): an F32 FMA microkernel (F32 weights; F16/BF16 panels
// widened while packing) and a vdpbf16ps microkernel for BF16 weights (x rounded to BF16).
// Compiled with -mavx512f/bw/vl/dq/bf16; only called when cpu_features() reports them.
#include <cstdint>

#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_gemm_loop.h"
#include "kernels/cpu/matmul_impl.h"

namespace tiller::cpu::detail {
namespace {

constexpr int kMR = 14;  // rows of x per tile: 14 x 2 zmm accumulators + 2 weight vectors
constexpr int kNR = 32;  // columns per weight panel: two zmm

inline __mmask32 half_mask(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << n) - 1);
}

// Up to 16 weights of one row from element k, widened to F32 (lanes past `count` are zero).
inline __m512i load_row_f32(DType wt, const char* row, int64_t k, int count) {
  const __mmask16 m = lane_mask(count);
  if (wt == DType::F32) {
    return _mm512_maskz_loadu_epi32(m, reinterpret_cast<const float*>(row) + k);
  }
  const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k);
  if (wt == DType::BF16) return _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
  return _mm512_castps_si512(_mm512_cvtph_ps(h));
}

// Shared by both kernels: the C tile is loaded (when accumulating over k slices), updated by the
// kernel, then gets the bias and is stored with the column mask.
template <int M>
inline void load_c(__m512 (&c)[M][2], const float* y, int64_t ldy, __mmask16 m0, __mmask16 m1,
                   bool accumulate) {
  for (int i = 0; i < M; i++) {
    c[i][0] = accumulate ? _mm512_maskz_loadu_ps(m0, y + i * ldy) : _mm512_setzero_ps();
    c[i][1] = accumulate ? _mm512_maskz_loadu_ps(m1, y + i * ldy + 16) : _mm512_setzero_ps();
  }
}

template <int M>
inline void store_c(__m512 (&c)[M][2], float* y, int64_t ldy, __mmask16 m0, __mmask16 m1,
                    const float* bias) {
  if (bias) {
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bias), b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    for (int i = 0; i < M; i++) {
      c[i][0] = _mm512_add_ps(c[i][0], b0);
      c[i][1] = _mm512_add_ps(c[i][1], b1);
    }
  }
  for (int i = 0; i < M; i++) {
    _mm512_mask_storeu_ps(y + i * ldy, m0, c[i][0]);
    _mm512_mask_storeu_ps(y + i * ldy + 16, m1, c[i][1]);
  }
}

// Dispatches a run-time tile height to the template instance (the tail block of T is shorter).
#define TILLER_TILE_SWITCH(m, call) \
  switch (m) {                      \
    case 1: call(1); break;         \
    case 2: call(2); break;         \
    case 3: call(3); break;         \
    case 4: call(4); break;         \
    case 5: call(5); break;         \
    case 6: call(6); break;         \
    case 7: call(7); break;         \
    case 8: call(8); break;         \
    case 9: call(9); break;         \
    case 10: call(10); break;       \
    case 11: call(11); break;       \
    case 12: call(12); break;       \
    case 13: call(13); break;       \
    default: call(14); break;       \
  }
static_assert(kMR == 14, "TILLER_TILE_SWITCH lists 1..14");

// --- F32 FMA kernel: weights (any dtype) packed as F32 [k][32] -----------------------------------
struct F32Kern {
  using XElem = float;
  static constexpr int kMR = detail::kMR, kNR = detail::kNR, kKC = 256;  // panel: 32 KiB
  static constexpr int kGroup = 4;
  static int64_t depth(int64_t k) { return k; }
  static size_t panel_elems() { return size_t(kKC) * kNR; }

  static void pack_w(const MatmulArgs& a, const WSlice& cur, void* wp_) {
    float* wp = static_cast<float*>(wp_);
    if (is_quantized(a.w_type)) return pack_w_dequantized<kNR, kKC>(a, cur, wp);
    const int64_t es = int64_t(dtype_size(a.w_type));
    const char* w = static_cast<const char*>(a.w);
    const int64_t kc = cur.kc;
    for (int64_t k = 0; k < kc; k += 16) {
      const int cnt = int(kc - k < 16 ? kc - k : 16);
      for (int h = 0; h < 2; h++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
          const int j = 16 * h + i;
          r[i] = j < cur.rows ? load_row_f32(a.w_type, w + (cur.n + j) * a.K * es, cur.k0 + k, cnt)
                              : _mm512_setzero_si512();
        }
        transpose16(r);
        for (int c = 0; c < cnt; c++) _mm512_store_si512(wp + (k + c) * kNR + 16 * h, r[c]);
      }
    }
  }

  template <int M>
  static void tile_m(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy,
                     int nvalid, const float* bias, bool accumulate) {
    const __mmask16 m0 = lane_mask(nvalid), m1 = lane_mask(nvalid - 16);
    __m512 c[M][2];
    load_c<M>(c, y, ldy, m0, m1, accumulate);
    for (int64_t k = 0; k < kc; k++) {
      const __m512 b0 = _mm512_load_ps(wp + k * kNR), b1 = _mm512_load_ps(wp + k * kNR + 16);
      for (int i = 0; i < M; i++) {
        const __m512 av = _mm512_set1_ps(xp[k * kMR + i]);
        c[i][0] = _mm512_fmadd_ps(av, b0, c[i][0]);
        c[i][1] = _mm512_fmadd_ps(av, b1, c[i][1]);
      }
    }
    store_c<M>(c, y, ldy, m0, m1, bias);
  }

  static void tile(int m, const float* xp, const void* wp, int64_t kc, float* y, int64_t ldy,
                   int nvalid, const float* bias, bool accumulate) {
    const float* w = static_cast<const float*>(wp);
#define TILLER_CALL(M) tile_m<M>(xp, w, kc, y, ldy, nvalid, bias, accumulate)
    TILLER_TILE_SWITCH(m, TILLER_CALL)
#undef TILLER_CALL
  }
};

// --- vdpbf16ps kernel: BF16 weights packed as pairs [k/2][32] of (w[k], w[k+1]) ------------------
// Each step multiplies a broadcast pair of x by 32 weight pairs and adds both products into F32.
struct Bf16Kern {
  using XElem = uint32_t;
  static constexpr int kMR = detail::kMR, kNR = detail::kNR, kKC = 256;  // panel: 16 KiB
  static constexpr int kGroup = 4;
  static int64_t depth(int64_t k) { return (k + 1) / 2; }
  static size_t panel_elems() { return size_t(kKC / 2) * kNR; }

  static void pack_w(const MatmulArgs& a, const WSlice& cur, void* wp_) {
    uint32_t* wp = static_cast<uint32_t*>(wp_);
    const uint16_t* w = static_cast<const uint16_t*>(a.w);
    const int64_t kc = cur.kc;
    for (int64_t k = 0; k < kc; k += 32) {
      const int64_t cnt = kc - k < 32 ? kc - k : 32;  // bf16 elements; an odd tail pads with zero
      const __mmask32 m = half_mask(cnt);
      const int pairs = int((cnt + 1) / 2);
      for (int h = 0; h < 2; h++) {
        __m512i r[16];
        for (int i = 0; i < 16; i++) {
          const int j = 16 * h + i;
          r[i] = j < cur.rows ? _mm512_maskz_loadu_epi16(m, w + (cur.n + j) * a.K + cur.k0 + k)
                              : _mm512_setzero_si512();
        }
        transpose16(r);
        for (int p = 0; p < pairs; p++) _mm512_store_si512(wp + (k / 2 + p) * kNR + 16 * h, r[p]);
      }
    }
  }

  template <int M>
  static void tile_m(const uint32_t* xp, const uint32_t* wp, int64_t kp, float* y, int64_t ldy,
                     int nvalid, const float* bias, bool accumulate) {
    const __mmask16 m0 = lane_mask(nvalid), m1 = lane_mask(nvalid - 16);
    __m512 c[M][2];
    load_c<M>(c, y, ldy, m0, m1, accumulate);
    for (int64_t p = 0; p < kp; p++) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(wp + p * kNR);
      const __m512bh b1 = (__m512bh)_mm512_load_si512(wp + p * kNR + 16);
      for (int i = 0; i < M; i++) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(xp[p * kMR + i]));
        c[i][0] = _mm512_dpbf16_ps(c[i][0], av, b0);
        c[i][1] = _mm512_dpbf16_ps(c[i][1], av, b1);
      }
    }
    store_c<M>(c, y, ldy, m0, m1, bias);
  }

  static void tile(int m, const uint32_t* xp, const void* wp, int64_t kp, float* y, int64_t ldy,
                   int nvalid, const float* bias, bool accumulate) {
    const uint32_t* w = static_cast<const uint32_t*>(wp);
#define TILLER_CALL(M) tile_m<M>(xp, w, kp, y, ldy, nvalid, bias, accumulate)
    TILLER_TILE_SWITCH(m, TILLER_CALL)
#undef TILLER_CALL
  }
};

// Packing x: 16 k (or k pairs) of the block's rows are loaded as 16 vectors (rows past T zero),
// transposed, and each k's kMR = 14 lanes stored at stride kMR: block b becomes [depth][kMR].
constexpr __mmask16 kRowLanes = __mmask16((1u << kMR) - 1);

void pack_x_f32_t16(const float* x, int64_t T, int64_t K, void* xp_, int64_t tb0, int64_t tb1) {
  float* xp = static_cast<float*>(xp_);
  for (int64_t b = tb0; b < tb1; b++) {
    float* dst = xp + b * K * kMR;
    const int64_t rows = T - b * kMR < kMR ? T - b * kMR : kMR;
    for (int64_t k = 0; k < K; k += 16) {
      const int cnt = int(K - k < 16 ? K - k : 16);
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        r[i] = i < rows ? _mm512_maskz_loadu_epi32(lane_mask(cnt), x + (b * kMR + i) * K + k)
                        : _mm512_setzero_si512();
      }
      transpose16(r);
      for (int c = 0; c < cnt; c++) _mm512_mask_storeu_epi32(dst + (k + c) * kMR, kRowLanes, r[c]);
    }
  }
}

// x rounded to BF16 (round to nearest even, as torch's .to(bfloat16)) and packed as pairs:
// block b is [ceil(K/2)][kMR] of (x[t][2p], x[t][2p + 1]); an odd K pads with zero.
void pack_x_bf16(const float* x, int64_t T, int64_t K, void* xp_, int64_t tb0, int64_t tb1) {
  uint32_t* xp = static_cast<uint32_t*>(xp_);
  const int64_t kp = (K + 1) / 2;
  for (int64_t b = tb0; b < tb1; b++) {
    uint32_t* dst = xp + b * kp * kMR;
    const int64_t rows = T - b * kMR < kMR ? T - b * kMR : kMR;
    for (int64_t k = 0; k < K; k += 32) {
      const int64_t cnt = K - k < 32 ? K - k : 32;
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        r[i] = i < rows ? load_bf16_pairs(x + (b * kMR + i) * K + k, cnt) : _mm512_setzero_si512();
      }
      transpose16(r);
      const int64_t pairs = (cnt + 1) / 2;
      for (int64_t p = 0; p < pairs; p++) {
        _mm512_mask_storeu_epi32(dst + (k / 2 + p) * kMR, kRowLanes, r[p]);
      }
    }
  }
}

size_t packed_x_bytes_bf16(int64_t T, int64_t K) {
  return size_t((T + kMR - 1) / kMR) * kMR * size_t((K + 1) / 2) * 4;
}

void compute_f32(const MatmulArgs& a, const void* xp, int64_t n0, int64_t n1, int64_t tb0,
                 int64_t tb1) {
  gemm_loop<F32Kern>(a, xp, n0, n1, tb0, tb1);
}

void compute_bf16(const MatmulArgs& a, const void* xp, int64_t n0, int64_t n1, int64_t tb0,
                  int64_t tb1) {
  gemm_loop<Bf16Kern>(a, xp, n0, n1, tb0, tb1);
}

}  // namespace

const GemmKernel kGemmAvx512 = {kMR, kNR, packed_x_bytes_f32<kMR>, pack_x_f32_t16, pack_x_f32_transposed<kMR>,
                                compute_f32};
const GemmKernel kGemmAvx512Bf16 = {kMR, kNR, packed_x_bytes_bf16, pack_x_bf16, nullptr, compute_bf16};

}  // namespace tiller::cpu::detail
