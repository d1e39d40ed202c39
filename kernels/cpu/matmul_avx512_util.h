// Helpers shared by the AVX-512 matmul files (include only from *_avx512.cpp: it is compiled with
// AVX-512 enabled, and everything here has internal linkage so no copy leaks into baseline code).
#pragma once

#include "kernels/cpu/intrinsics.h"

#include <cstdint>

namespace tiller::cpu::detail {
namespace {

// In-register transpose of a 16 x 16 block of 32-bit elements (floats, or pairs of bf16).
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // s[4g + c]: in 128-bit lane L, column 4L + c of rows 4g..4g+3.
  __m512i s[16];
  for (int g = 0; g < 4; g++) {
    s[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    s[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    s[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    s[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i u0 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0x44);
    const __m512i v0 = _mm512_shuffle_i32x4(s[c], s[4 + c], 0xee);
    const __m512i u1 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(s[8 + c], s[12 + c], 0xee);
    r[c] = _mm512_shuffle_i32x4(u0, u1, 0x88);
    r[4 + c] = _mm512_shuffle_i32x4(u0, u1, 0xdd);
    r[8 + c] = _mm512_shuffle_i32x4(v0, v1, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(v0, v1, 0xdd);
  }
}

// The first n of 16 lanes (n <= 0: none).
inline __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// The one reduction tree every GEMV output goes through (so results never depend on blocking).
inline float hsum(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

// hsum() of four vectors at once, bit for bit: the same pairs are added in the same tree order
// (lanes i + 8, then i + 4, i + 2, i + 1), four vectors per instruction. Small K leaves GEMV
// blocks with few k steps per output, where 16 scalar reductions would cost a third of the time.
inline __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  // Halves of 256: [a0 lo8 + hi8 | a1 lo8 + hi8], [a2 .. | a3 ..].
  const __m512 b0 =
      _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xee));
  const __m512 b1 =
      _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xee));
  // 128-bit lane j: vector j's s4 = s8[0:4] + s8[4:8].
  const __m512 c =
      _mm512_add_ps(_mm512_shuffle_f32x4(b0, b1, 0x88), _mm512_shuffle_f32x4(b0, b1, 0xdd));
  const __m512 d = _mm512_add_ps(c, _mm512_permute_ps(c, 0x4e));  // s4[0] + s4[2], s4[1] + s4[3]
  const __m512 e = _mm512_add_ps(d, _mm512_permute_ps(d, 0xb1));  // lane 0 of each 128: the sum
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), e));
}

// Stores the R reductions of acc[0..R) (+ bias) to y[0..R): R = 4 through hsum4, else one by one.
template <int R>
inline void store_sums(const __m512 (&acc)[R], float* y, const float* bias) {
  if constexpr (R == 4) {
    __m128 s = hsum4(acc[0], acc[1], acc[2], acc[3]);
    if (bias) s = _mm_add_ps(s, _mm_loadu_ps(bias));
    _mm_storeu_ps(y, s);
  } else {
    for (int r = 0; r < R; r++) {
      const float s = hsum(acc[r]);
      y[r] = bias ? s + bias[r] : s;
    }
  }
}

// Up to 32 floats from src (those past `count` read as zero) rounded to BF16 to nearest even, as
// torch's .to(bfloat16), and returned as 16 pairs (src[2p] in the low half), vdpbf16ps's layout.
inline __m512i load_bf16_pairs(const float* src, int64_t count) {
  const __m512 lo = _mm512_maskz_loadu_ps(lane_mask(count), src);
  const __m512 hi = _mm512_maskz_loadu_ps(lane_mask(count - 16), src + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

}  // namespace
}  // namespace tiller::cpu::detail
