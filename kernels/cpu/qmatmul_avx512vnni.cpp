// AVX-512 VNNI quantized GEMV for several rows of x (batched decode) on Q4_0 and Q8_0 weights.
//
// Sixteen weight rows share a register, one row per int32 lane. Each 32-value block of the
// sixteen rows is unpacked to int8 and transposed in registers so that register i holds values
// 4i..4i+3 of every row; one vpdpbusd then adds four products to each row's lane against four
// bytes of x broadcast, and no horizontal sum is ever needed. The unpacking and the transpose are
// paid once per block and shared by up to 16 rows of x.
//
// vpdpbusd multiplies unsigned by signed bytes: x goes in as p + 128 (unsigned) and the weights
// as signed (Q4_0: q - 8), and each lane starts from -128·Σw of its row's block, so the int32 sum
// is exactly Σ p·w. Per block and row of x the lanes are converted to F32, multiplied by the
// rows' scales times dx and accumulated in F32: per output the exact product of the 8-bit x and
// the weights up to F32 rounding (qmatmul_impl.h), like the AVX2 kernel.
// Other types, a single row of x, and rows past the last whole sixteen go to the AVX2 kernel.
// Compiled with AVX-512 F/BW/VL/DQ + VNNI; only called when cpu_features() reports avx512_vnni.
#include "kernels/cpu/intrinsics.h"

#include <cstdint>
#include <vector>

#include "kernels/cpu/qmatmul_impl.h"

namespace tiller::cpu::detail {
namespace {

constexpr int kLanes = 16;  // weight rows per register
constexpr int kMaxTB = 16;  // rows of x per pass

// One block's 32 values as signed bytes.
template <DType WT>
inline __m256i unpack_block(const uint8_t* b) {
  if constexpr (WT == DType::Q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  } else {  // Q4_0: low nibbles are values 0-15, high nibbles 16-31; w = d·(q - 8)
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
  }
}

// u[r] holds row r's eight 4-byte groups; on return v[i] holds group i of row r in lane r.
// Rows 0-7 travel in the low 256 bits and rows 8-15 in the high 256 bits: two 8 x 8 transposes
// of int32 side by side (unpacks within 128-bit lanes, then a cross-lane select per output).
inline void transpose16x8(const __m256i u[kLanes], __m512i v[8]) {
  __m512i z[8], t[8], s[8];
  for (int p = 0; p < 8; p++) z[p] = _mm512_inserti64x4(_mm512_castsi256_si512(u[p]), u[p + 8], 1);
  for (int p = 0; p < 8; p += 2) {
    t[p] = _mm512_unpacklo_epi32(z[p], z[p + 1]);
    t[p + 1] = _mm512_unpackhi_epi32(z[p], z[p + 1]);
  }
  for (int g = 0; g < 8; g += 4) {  // s[g + c] = groups c and c + 4 of rows g..g+3, per 128-bit lane
    s[g + 0] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    s[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    s[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    s[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  for (int c = 0; c < 4; c++) {
    v[c] = _mm512_permutex2var_epi64(s[c], lo, s[c + 4]);
    v[c + 4] = _mm512_permutex2var_epi64(s[c], hi, s[c + 4]);
  }
}

// Sixteen weight rows at n against TB rows of x at t0 (xu: x as unsigned bytes, p + 128).
template <DType WT, int TB>
void block16(const QGemvArgs& a, const uint8_t* xu, int64_t n, int64_t t0) {
  constexpr size_t kBytes = dtype_block_bytes(WT);
  const int64_t K = a.x.K, nxb = K / kQBlock;
  const size_t row_bytes = dtype_bytes(WT, K);
  const uint8_t* w = static_cast<const uint8_t*>(a.w) + size_t(n) * row_bytes;
  // Byte offsets of the sixteen rows, for the gather of their scales.
  const __m512i row_off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(int(row_bytes)));
  const __m512i k128 = _mm512_set1_epi8(char(0x80));
  __m512 acc[TB];
  for (int t = 0; t < TB; t++) acc[t] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < nxb; blk++) {
    const uint8_t* b = w + size_t(blk) * kBytes;
    __m256i u[kLanes];
    for (int r = 0; r < kLanes; r++) u[r] = unpack_block<WT>(b + r * row_bytes);
    __m512i v[8];
    transpose16x8(u, v);
    __m512i start = _mm512_setzero_si512();  // each lane's start: -128·Σw of its row's block
    for (int i = 0; i < 8; i++) start = _mm512_dpbusd_epi32(start, k128, v[i]);
    start = _mm512_sub_epi32(_mm512_setzero_si512(), start);
    // The rows' F16 scales (the first two bytes of each block): 32-bit gathers, low halves kept.
    const __m512i d32 = _mm512_i32gather_epi32(row_off, b, 1);
    const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d32));
    for (int t = 0; t < TB; t++) {
      const uint8_t* xb = xu + (t0 + t) * K + blk * kQBlock;
      __m512i s = start;
      for (int i = 0; i < 8; i++) {
        s = _mm512_dpbusd_epi32(s, _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(xb + 4 * i)), v[i]);
      }
      const float dx = a.x.ds[((t0 + t) * nxb + blk) * kXScales];
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[t]);
    }
  }
  for (int t = 0; t < TB; t++) {
    __m512 y = acc[t];
    if (a.bias) y = _mm512_add_ps(y, _mm512_loadu_ps(a.bias + n));
    _mm512_storeu_ps(a.y + (t0 + t) * a.N + n, y);
  }
}

template <DType WT>
void rows16(const QGemvArgs& a, const uint8_t* xu, int64_t n) {
  for (int64_t t0 = 0; t0 < a.x.T; t0 += kMaxTB) {
    switch (a.x.T - t0 < kMaxTB ? a.x.T - t0 : kMaxTB) {
#define TILLER_CASE(TB) \
  case TB: block16<WT, TB>(a, xu, n, t0); break;
      TILLER_CASE(1) TILLER_CASE(2) TILLER_CASE(3) TILLER_CASE(4) TILLER_CASE(5) TILLER_CASE(6) TILLER_CASE(7)
      TILLER_CASE(8) TILLER_CASE(9) TILLER_CASE(10) TILLER_CASE(11) TILLER_CASE(12) TILLER_CASE(13)
      TILLER_CASE(14) TILLER_CASE(15) TILLER_CASE(16)
#undef TILLER_CASE
      default: break;
    }
  }
}

}  // namespace

void qgemv_avx512vnni(const QGemvArgs& a, int64_t n0, int64_t n1) {
  const bool ours = a.w_type == DType::Q4_0 || a.w_type == DType::Q8_0;
  if (!ours || a.x.T < 2 || n1 - n0 < kLanes) return qgemv_avx2(a, n0, n1);
  // x as unsigned bytes (p + 128), the form vpdpbusd multiplies; a few KiB per call.
  thread_local std::vector<uint8_t> xu;
  const size_t nx = size_t(a.x.T * a.x.K);
  if (xu.size() < nx) xu.resize(nx);
  const auto* qs = reinterpret_cast<const uint8_t*>(a.x.qs);
  for (size_t i = 0; i < nx; i++) xu[i] = uint8_t(qs[i] ^ 0x80);
  int64_t n = n0;
  for (; n + kLanes <= n1; n += kLanes) {
    if (a.w_type == DType::Q4_0) rows16<DType::Q4_0>(a, xu.data(), n);
    else rows16<DType::Q8_0>(a, xu.data(), n);
  }
  if (n < n1) qgemv_avx2(a, n, n1);
}

}  // namespace tiller::cpu::detail
