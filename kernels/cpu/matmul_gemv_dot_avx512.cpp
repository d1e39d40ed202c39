// AVX-512 BF16 GEMV with vdpbf16ps, for BF16 weights at moderate T (~8 to ~100 rows of x): the
// exact GEMV's F32 FMAs are its limit there, and vdpbf16ps does twice the multiply-adds per
// instruction. x is rounded to BF16 once per call (as the vdpbf16ps GEMM does); the weights are
// streamed once, in place, as pairs, with no broadcasts or packing (a weight-broadcasting kernel
// was tried: on Zen 4 each zmm broadcast costs an FP pipe slot, and it ran at half this speed).
// Compiled with -mavx512f/bw/vl/dq/bf16; only called when cpu_features() reports avx512_bf16.
#include <cstdint>

#include "kernels/cpu/matmul_avx512_util.h"
#include "kernels/cpu/matmul_impl.h"

namespace tiller::cpu::detail {
namespace {

constexpr int kRows = 4;  // weight rows streamed together
constexpr int kTB = 4;    // rows of x per pass over the weight block

// Row stride of the packed x, in bf16 pairs: whole 64-byte vectors, the padding zero.
int64_t row_pairs(int64_t K) { return ((K + 1) / 2 + 15) / 16 * 16; }

size_t packed_x_bytes(int64_t T, int64_t K) { return size_t(T) * size_t(row_pairs(K)) * 4; }

// Rows [t0, t1) of x rounded to BF16 pairs: row t is [row_pairs(K)] uint32.
void pack_x(const float* x, int64_t T, int64_t K, void* xp_, int64_t t0, int64_t t1) {
  uint32_t* xp = static_cast<uint32_t*>(xp_);
  const int64_t stride = row_pairs(K);
  for (int64_t t = t0; t < t1; t++) {
    for (int64_t k = 0; k < 2 * stride; k += 32) {
      const __m512i v = k < K ? load_bf16_pairs(x + t * K + k, K - k) : _mm512_setzero_si512();
      _mm512_store_si512(xp + t * stride + k / 2, v);
    }
  }
}

// R weight rows at n against TB rows of packed x at t0; prefetches the next block into L2 as it
// goes (see matmul_avx512.cpp).
template <int R, int TB>
void dot_block(const MatmulArgs& a, const uint32_t* xp, int64_t n, int64_t t0, const char* pf,
               int64_t pf_bytes) {
  const int64_t K = a.K, stride = row_pairs(K);
  const uint16_t* w = static_cast<const uint16_t*>(a.w) + n * K;
  const uint32_t* x = xp + t0 * stride;
  __m512 acc[TB][R];
  for (int t = 0; t < TB; t++) {
    for (int r = 0; r < R; r++) acc[t][r] = _mm512_setzero_ps();
  }
  const char* pf_end = pf ? pf + pf_bytes : nullptr;
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    if (pf < pf_end) {
      for (int l = 0; l < R; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
      pf += 64 * R;
    }
    __m512bh wv[R];
    for (int r = 0; r < R; r++) wv[r] = (__m512bh)_mm512_loadu_si512(w + r * K + k);
    for (int t = 0; t < TB; t++) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(x + t * stride + k / 2);
      for (int r = 0; r < R; r++) acc[t][r] = _mm512_dpbf16_ps(acc[t][r], xv, wv[r]);
    }
  }
  if (k < K) {  // masked weights; the packed x is zero past K
    const __mmask32 m = K - k >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << (K - k)) - 1);
    __m512bh wv[R];
    for (int r = 0; r < R; r++) wv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + r * K + k);
    for (int t = 0; t < TB; t++) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(x + t * stride + k / 2);
      for (int r = 0; r < R; r++) acc[t][r] = _mm512_dpbf16_ps(acc[t][r], xv, wv[r]);
    }
  }
  for (; pf < pf_end; pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
  for (int t = 0; t < TB; t++)
    store_sums<R>(acc[t], a.y + (t0 + t) * a.N + n, a.bias ? a.bias + n : nullptr);
}

template <int R>
void dot_rows(const MatmulArgs& a, const uint32_t* xp, int64_t n, int64_t t0, int64_t t1,
              const char* pf, int64_t pf_bytes) {
  for (int64_t t = t0; t < t1; t += kTB) {
    const char* p = t == t0 ? pf : nullptr;  // later passes find the block in L1/L2
    switch (t1 - t) {
      case 1: dot_block<R, 1>(a, xp, n, t, p, pf_bytes); break;
      case 2: dot_block<R, 2>(a, xp, n, t, p, pf_bytes); break;
      case 3: dot_block<R, 3>(a, xp, n, t, p, pf_bytes); break;
      default: dot_block<R, kTB>(a, xp, n, t, p, pf_bytes); break;
    }
  }
}

// y[t0:t1, n0:n1] (the GemmKernel's row blocks are single rows here).
void compute(const MatmulArgs& a, const void* xp_, int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
  const uint32_t* xp = static_cast<const uint32_t*>(xp_);
  const char* w = static_cast<const char*>(a.w);
  int64_t n = n0;
  for (; n + kRows <= n1; n += kRows) {
    const int64_t next_rows = n1 - (n + kRows) < kRows ? n1 - (n + kRows) : kRows;
    const char* pf = next_rows > 0 ? w + (n + kRows) * a.K * 2 : nullptr;
    dot_rows<kRows>(a, xp, n, t0, t1, pf, next_rows * a.K * 2);
  }
  for (; n < n1; n++) dot_rows<1>(a, xp, n, t0, t1, nullptr, 0);
}

}  // namespace

const GemmKernel kGemvDotAvx512Bf16 = {1, 16, packed_x_bytes, pack_x, nullptr, compute};

}  // namespace tiller::cpu::detail
