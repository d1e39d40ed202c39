// AVX2 quantized GEMV (decode): each 32-value weight sub-block is unpacked to bytes once and
// dotted with the 8-bit x of every row in the pass (vpmaddubsw: unsigned weights straight, signed
// ones through the sign trick), the int32 sums widened and scaled by a·dx in F32, and b·s added.
// Compiled with -mavx2 -mfma -mf16c; only called when cpu_features() reports avx2.
#include "kernels/cpu/intrinsics.h"

#include <cstdint>
#include <cstring>

#include "engine/quant.h"
#include "kernels/cpu/qmatmul_impl.h"

namespace tiller::cpu::detail {
namespace {

inline __m128 half_pair(const void* p) {  // two F16 at p -> [f0, f1, 0, 0]
  uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(int(v)));
}
inline __m128 half_one(const void* p) {  // one F16 at p -> [f, 0, 0, 0]
  uint16_t v;
  std::memcpy(&v, p, 2);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
}
inline __m256i nibbles16(const uint8_t* qs) {  // 16 bytes -> low nibbles, then high nibbles
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// Per type: the sub-blocks of a block, each as 32 bytes of integers q and a pair (a, b) with
// w = a·q + b (lanes 0 and 1 of an __m128). kXPair picks x's pair: 0 (dx, s), 1 (dx, -8·s), so
// Q4_0 (b = -8·a) gives (d, d) and saves a multiply. `Prep` holds what a block shares between its
// sub-blocks. kSigned: q is int8 (else uint8). Q6_K's a varies per 16: `factor` gives the int16
// per-lane multiplier vpmaddwd applies (the per-16 scales; ones elsewhere), and a is the block's d.
struct Q8_0T {
  static constexpr int kXPair = 0;
  static constexpr DType kType = DType::Q8_0;
  static constexpr int kSubs = 1;
  static constexpr bool kSigned = true, kOffset = false, kFactor = false;
  struct Prep {};
  static void prepare(const uint8_t*, Prep&) {}
  static __m256i unpack(const uint8_t* b, const Prep&, int) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
  }
  static __m128 scales(const uint8_t* b, const Prep&, int) { return half_one(b); }
  static __m256i factor(const uint8_t*, const Prep&, int) { return _mm256_set1_epi16(1); }
};

struct Q4_0T {
  static constexpr int kXPair = 1;  // (dx, -8·s): b = -8·d
  static constexpr DType kType = DType::Q4_0;
  static constexpr int kSubs = 1;
  static constexpr bool kSigned = false, kOffset = true, kFactor = false;
  struct Prep {};
  static void prepare(const uint8_t*, Prep&) {}
  static __m256i unpack(const uint8_t* b, const Prep&, int) { return nibbles16(b + 2); }
  static __m128 scales(const uint8_t* b, const Prep&, int) {  // (d, d)
    uint16_t d;
    std::memcpy(&d, b, 2);
    return _mm_cvtph_ps(_mm_set1_epi16(short(d)));
  }
  static __m256i factor(const uint8_t*, const Prep&, int) { return _mm256_set1_epi16(1); }
};

struct Q4_1T {
  static constexpr int kXPair = 0;
  static constexpr DType kType = DType::Q4_1;
  static constexpr int kSubs = 1;
  static constexpr bool kSigned = false, kOffset = true, kFactor = false;
  struct Prep {};
  static void prepare(const uint8_t*, Prep&) {}
  static __m256i unpack(const uint8_t* b, const Prep&, int) { return nibbles16(b + 4); }
  static __m128 scales(const uint8_t* b, const Prep&, int) { return half_pair(b); }  // (d, m)
  static __m256i factor(const uint8_t*, const Prep&, int) { return _mm256_set1_epi16(1); }
};

struct Q4_KT {
  static constexpr int kXPair = 0;
  static constexpr DType kType = DType::Q4_K;
  static constexpr int kSubs = 8;
  static constexpr bool kSigned = false, kOffset = true, kFactor = false;
  struct Prep {
    __m128 ab[8];  // (d·sc_j, -dmin·m_j)
  };
  static void prepare(const uint8_t* b, Prep& p) {
    const auto& B = *reinterpret_cast<const BlockQ4_K*>(b);
    const float d = f16_to_f32(B.d), dmin = f16_to_f32(B.dmin);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      q4k_scale_min(B.scales, j, &sc, &m);
      p.ab[j] = _mm_setr_ps(d * float(sc), -(dmin * float(m)), 0, 0);
    }
  }
  static __m256i unpack(const uint8_t* b, const Prep&, int j) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + (j / 2) * 32));
    return _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(0x0F));
  }
  static __m128 scales(const uint8_t*, const Prep& p, int j) { return p.ab[j]; }
  static __m256i factor(const uint8_t*, const Prep&, int) { return _mm256_set1_epi16(1); }
};

struct Q6_KT {
  static constexpr int kXPair = 0;
  static constexpr DType kType = DType::Q6_K;
  static constexpr int kSubs = 8;
  static constexpr bool kSigned = true, kOffset = false, kFactor = true;
  struct Prep {
    __m128 d;
  };
  static void prepare(const uint8_t* b, Prep& p) { p.d = half_one(b + 208); }
  static __m256i unpack(const uint8_t* b, const Prep&, int j) {
    const int half = j / 4, g = j % 4;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + half * 64 + (g % 2) * 32));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + half * 32));
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i q4 = _mm256_and_si256(g < 2 ? lo : _mm256_srli_epi16(lo, 4), m4);
    const __m256i q2 = _mm256_and_si256(_mm256_srl_epi16(hi, _mm_cvtsi32_si128(2 * g)), m2);
    return _mm256_sub_epi8(_mm256_or_si256(q4, _mm256_slli_epi16(q2, 4)), _mm256_set1_epi8(32));
  }
  static __m128 scales(const uint8_t*, const Prep& p, int) { return p.d; }
  static __m256i factor(const uint8_t* b, const Prep&, int j) {  // scales 2j (lanes 0-7), 2j+1 (8-15)
    const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
    return _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
  }
};

template <class Q>
inline __m256i dot32(__m256i q, __m256i x, __m256i factor) {
  const __m256i p = Q::kSigned ? _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q))
                               : _mm256_maddubs_epi16(q, x);
  return _mm256_madd_epi16(p, factor);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// R weight rows at n against TB rows of x at t0. When `pf` is set, the pass also prefetches the
// next rows [pf, pf + pf_bytes) into L2 at the pace it consumes its own (the hardware prefetchers
// stop at 4 KiB pages, and rows of a few hundred bytes end before they ramp up; see
// matmul_avx512.cpp).
template <class Q, int R, int TB>
void qgemv_block(const QGemvArgs& a, int64_t n, int64_t t0, const char* pf, int64_t pf_bytes) {
  constexpr int64_t kBlock = dtype_block(Q::kType);
  constexpr size_t kBytes = dtype_block_bytes(Q::kType);
  const int64_t K = a.x.K, nxb = K / kQBlock;
  const size_t row_bytes = dtype_bytes(Q::kType, K);
  const uint8_t* w = static_cast<const uint8_t*>(a.w) + size_t(n) * row_bytes;
  // b·s: into lane 0 of acc as it goes, or (one row of x: registers to spare) summed on the side
  // in lane 1 of corr, one add instead of two.
  constexpr bool kSide = Q::kOffset && TB == 1;
  __m256 acc[TB][R];
  __m128 corr[R];
  for (int t = 0; t < TB; t++) {
    for (int r = 0; r < R; r++) acc[t][r] = _mm256_setzero_ps();
  }
  for (int r = 0; r < R; r++) corr[r] = _mm_setzero_ps();
  const char* pf_end = pf ? pf + pf_bytes : nullptr;
  for (int64_t blk = 0; blk < K / kBlock; blk++) {
    for (int64_t done = 0; pf < pf_end && done < int64_t(R * kBytes); done += 64, pf += 64)
      _mm_prefetch(pf, _MM_HINT_T1);
    const uint8_t* b[R];
    typename Q::Prep prep[R];
    for (int r = 0; r < R; r++) {
      b[r] = w + r * row_bytes + size_t(blk) * kBytes;
      Q::prepare(b[r], prep[r]);
    }
    for (int j = 0; j < Q::kSubs; j++) {
      const int64_t xb = blk * Q::kSubs + j;
      __m256i q[R];
      __m128 ab[R];
      for (int r = 0; r < R; r++) {
        q[r] = Q::unpack(b[r], prep[r], j);
        ab[r] = Q::scales(b[r], prep[r], j);
      }
      for (int t = 0; t < TB; t++) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.x.qs + (t0 + t) * K + xb * kQBlock));
        const __m128 xds =  // (dx, s) or (dx, -8·s); __m128i loads may alias anything
            _mm_castsi128_ps(_mm_loadl_epi64(
                reinterpret_cast<const __m128i*>(a.x.ds + ((t0 + t) * nxb + xb) * kXScales + 2 * Q::kXPair)));
        for (int r = 0; r < R; r++) {
          const __m256i factor = Q::kFactor ? Q::factor(b[r], prep[r], j) : _mm256_set1_epi16(1);
          const __m256 p = _mm256_cvtepi32_ps(dot32<Q>(q[r], xv, factor));
          const __m128 prod = _mm_mul_ps(ab[r], xds);  // (a·dx, b·s)
          acc[t][r] = _mm256_fmadd_ps(p, _mm256_broadcastss_ps(prod), acc[t][r]);
          if constexpr (kSide)
            corr[r] = _mm_add_ps(corr[r], prod);
          else if constexpr (Q::kOffset)
            acc[t][r] = _mm256_add_ps(acc[t][r], _mm256_zextps128_ps256(_mm_insert_ps(prod, prod, 0x4E)));
        }
      }
    }
  }
  for (; pf < pf_end; pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
  for (int t = 0; t < TB; t++) {
    float* y = a.y + (t0 + t) * a.N + n;
    for (int r = 0; r < R; r++) {
      float s = hsum(acc[t][r]);
      if constexpr (kSide) s += _mm_cvtss_f32(_mm_movehdup_ps(corr[r]));
      y[r] = a.bias ? s + a.bias[n + r] : s;
    }
  }
}

// Eight weight rows against TB rows of x, the eight rows' sums in the lanes of one register (one
// sub-block types, several rows of x): per 32-value block and row of x, eight integer dots are
// reduced by a horizontal-add tree to [row 0 .. row 7], then one conversion and two FMAs serve
// all eight rows, where the per-row kernel above spends them on each. The rows' scales are read
// once per block and reused for every row of x. `pf` as in qgemv_block.
template <class Q, int TB>
void qgemv_block8(const QGemvArgs& a, int64_t n, int64_t t0, const char* pf, int64_t pf_bytes) {
  static_assert(Q::kSubs == 1 && !Q::kFactor);
  constexpr size_t kBytes = dtype_block_bytes(Q::kType);
  const int64_t K = a.x.K, nxb = K / kQBlock;
  const size_t row_bytes = dtype_bytes(Q::kType, K);
  const uint8_t* w = static_cast<const uint8_t*>(a.w) + size_t(n) * row_bytes;
  const char* pf_end = pf ? pf + pf_bytes : nullptr;
  const typename Q::Prep prep{};
  __m256 acc[TB];
  for (int t = 0; t < TB; t++) acc[t] = _mm256_setzero_ps();
  for (int64_t blk = 0; blk < nxb; blk++) {
    for (int64_t done = 0; pf < pf_end && done < int64_t(8 * kBytes); done += 64, pf += 64)
      _mm_prefetch(pf, _MM_HINT_T1);
    __m256i q[8];
    alignas(32) float av[8], bv[8];
    for (int r = 0; r < 8; r++) {
      const uint8_t* b = w + r * row_bytes + size_t(blk) * kBytes;
      q[r] = Q::unpack(b, prep, 0);
      const __m128 ab = Q::scales(b, prep, 0);  // (a, b)
      av[r] = _mm_cvtss_f32(ab);
      bv[r] = _mm_cvtss_f32(_mm_movehdup_ps(ab));
    }
    const __m256 A = _mm256_load_ps(av);
    [[maybe_unused]] const __m256 B = _mm256_load_ps(bv);
    for (int t = 0; t < TB; t++) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.x.qs + (t0 + t) * K + blk * kQBlock));
      const float* xds = a.x.ds + ((t0 + t) * nxb + blk) * kXScales + 2 * Q::kXPair;  // (dx, s) or (dx, -8·s)
      __m256i p[8];
      for (int r = 0; r < 8; r++) p[r] = dot32<Q>(q[r], xv, _mm256_set1_epi16(1));
      // hadd works within 128-bit halves: h0123 = [Σlow of rows 0-3 | Σhigh of rows 0-3]
      const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
      const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
      const __m256i sums = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                            _mm256_permute2x128_si256(h0123, h4567, 0x31));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(A, _mm256_broadcast_ss(xds)), acc[t]);
      if constexpr (Q::kOffset) acc[t] = _mm256_fmadd_ps(B, _mm256_broadcast_ss(xds + 1), acc[t]);
    }
  }
  for (; pf < pf_end; pf += 64) _mm_prefetch(pf, _MM_HINT_T1);
  for (int t = 0; t < TB; t++) {
    float* y = a.y + (t0 + t) * a.N + n;
    const __m256 v = a.bias ? _mm256_add_ps(acc[t], _mm256_loadu_ps(a.bias + n)) : acc[t];
    _mm256_storeu_ps(y, v);
  }
}

// The two kernels as types for the loops below: run<TB> covers kRows weight rows at n against
// TB rows of x from t0; a pass takes at most kTB rows of x.
template <class Q, int R>
struct PerRow {
  static constexpr DType kType = Q::kType;
  static constexpr int kRows = R, kTB = R == 4 ? 1 : 3;
  template <int TB>
  static void run(const QGemvArgs& a, int64_t n, int64_t t0, const char* pf, int64_t pf_bytes) {
    qgemv_block<Q, R, TB>(a, n, t0, pf, pf_bytes);
  }
};

template <class Q>
struct EightLanes {
  static constexpr DType kType = Q::kType;
  static constexpr int kRows = 8, kTB = 4;
  template <int TB>
  static void run(const QGemvArgs& a, int64_t n, int64_t t0, const char* pf, int64_t pf_bytes) {
    qgemv_block8<Q, TB>(a, n, t0, pf, pf_bytes);
  }
};

// A kernel's rows at n against every row of x, in passes of at most kTB rows of x.
template <class Kernel>
void qgemv_rows(const QGemvArgs& a, int64_t n, const char* pf, int64_t pf_bytes) {
  constexpr int kTB = Kernel::kTB;
  for (int64_t t0 = 0; t0 < a.x.T; t0 += kTB) {
    const char* p = t0 == 0 ? pf : nullptr;  // later passes find the rows in L1/L2
    switch (a.x.T - t0) {
      case 1: Kernel::template run<1>(a, n, t0, p, pf_bytes); break;
      case 2: Kernel::template run<(2 < kTB ? 2 : kTB)>(a, n, t0, p, pf_bytes); break;
      case 3: Kernel::template run<(3 < kTB ? 3 : kTB)>(a, n, t0, p, pf_bytes); break;
      default: Kernel::template run<kTB>(a, n, t0, p, pf_bytes); break;
    }
  }
}

// Whole blocks of a kernel's rows from n up to n1, each prefetching the next block of the range.
template <class Kernel>
void qgemv_range(const QGemvArgs& a, int64_t& n, int64_t n1) {
  constexpr int R = Kernel::kRows;
  const size_t row_bytes = dtype_bytes(Kernel::kType, a.x.K);
  const char* w = static_cast<const char*>(a.w);
  for (; n + R <= n1; n += R) {
    const int64_t next = n1 - (n + R) < R ? n1 - (n + R) : R;  // the next block of this range
    qgemv_rows<Kernel>(a, n, next > 0 ? w + size_t(n + R) * row_bytes : nullptr, int64_t(size_t(next) * row_bytes));
  }
}

template <class Q>
void qgemv_typed(const QGemvArgs& a, int64_t n0, int64_t n1) {
  int64_t n = n0;
  if (a.x.T == 1) {
    qgemv_range<PerRow<Q, 4>>(a, n, n1);  // four weight streams
  } else {
    if constexpr (Q::kSubs == 1) qgemv_range<EightLanes<Q>>(a, n, n1);  // eight rows in one register's lanes
    qgemv_range<PerRow<Q, 2>>(a, n, n1);  // two rows against three rows of x per pass
  }
  for (; n < n1; n++) qgemv_rows<PerRow<Q, 1>>(a, n, nullptr, 0);
}

}  // namespace

void qgemv_avx2(const QGemvArgs& a, int64_t n0, int64_t n1) {
  switch (a.w_type) {
    case DType::Q8_0: return qgemv_typed<Q8_0T>(a, n0, n1);
    case DType::Q4_0: return qgemv_typed<Q4_0T>(a, n0, n1);
    case DType::Q4_1: return qgemv_typed<Q4_1T>(a, n0, n1);
    case DType::Q4_K: return qgemv_typed<Q4_KT>(a, n0, n1);
    case DType::Q6_K: return qgemv_typed<Q6_KT>(a, n0, n1);
    default: break;
  }
}

}  // namespace tiller::cpu::detail
