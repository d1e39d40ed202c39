// Portable matmul kernels (baseline x86-64 or any CPU): plain C++ written so the compiler can
// vectorise it with whatever the baseline has; the fallback when AVX2 is missing or capped off.
#include <cstdint>
#include <cstring>

#include "kernels/cpu/matmul_gemm_loop.h"
#include "kernels/cpu/matmul_impl.h"

namespace tiller::cpu::detail {
namespace {

constexpr int kLanes = 8;  // GEMV partial sums per output: lane j sums k = j mod 8

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Exact F16 -> F32 without branches (so loops over it vectorise): moving the exponent and
// mantissa into F32 position and scaling by 2^112 rebiases normals and normalises subnormals
// exactly; only inf/nan need patching.
float f16_bits_to_f32(uint16_t h) {
  const uint32_t em = h & 0x7fffu;
  uint32_t u = f32_to_bits(bits_to_f32(em << 13) * 0x1p112f);
  u = em >= 0x7c00u ? (0x7f800000u | ((em & 0x3ffu) << 13)) : u;
  return bits_to_f32(u | (uint32_t(h & 0x8000u) << 16));
}

// Widens n weights of one row, starting at element k, to F32.
void widen(DType type, const void* row, int64_t k, int n, float* out) {
  if (type == DType::F32) {
    std::memcpy(out, static_cast<const float*>(row) + k, size_t(n) * 4);
  } else if (type == DType::BF16) {
    const uint16_t* s = static_cast<const uint16_t*>(row) + k;
    for (int j = 0; j < n; j++) out[j] = bits_to_f32(uint32_t(s[j]) << 16);
  } else {
    const uint16_t* s = static_cast<const uint16_t*>(row) + k;
    for (int j = 0; j < n; j++) out[j] = f16_bits_to_f32(s[j]);
  }
}

float reduce_lanes(const float* s) {
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// Up to kTB rows of x against one weight row: the row is widened in chunks of 64 (on the stack)
// and every chunk is used for all rows before the next is read, so the row is read once.
constexpr int kTB = 64;
constexpr int kChunk = 64;

void gemv_row(const MatmulArgs& a, int64_t n, int64_t t0, int tb) {
  const char* row = static_cast<const char*>(a.w) + size_t(n * a.K) * dtype_size(a.w_type);
  float acc[kTB][kLanes] = {};
  float wf[kChunk];
  for (int64_t k0 = 0; k0 < a.K; k0 += kChunk) {
    const int len = int(a.K - k0 < kChunk ? a.K - k0 : kChunk);
    widen(a.w_type, row, k0, len, wf);
    for (int t = 0; t < tb; t++) {
      const float* xr = a.x + (t0 + t) * a.K + k0;
      int k = 0;
      for (; k + kLanes <= len; k += kLanes) {
        for (int j = 0; j < kLanes; j++) acc[t][j] += xr[k + j] * wf[k + j];
      }
      for (int j = 0; k + j < len; j++) acc[t][j] += xr[k + j] * wf[k + j];
    }
  }
  for (int t = 0; t < tb; t++) {
    float s = reduce_lanes(acc[t]);
    if (a.bias) s += a.bias[n];
    a.y[(t0 + t) * a.N + n] = s;
  }
}

// --- GEMM: 4 x 8 tiles of F32 --------------------------------------------------------------------
struct GenericKern {
  using XElem = float;
  static constexpr int kMR = 4, kNR = 8, kKC = 256;
  static constexpr int kGroup = 4;
  static int64_t depth(int64_t k) { return k; }
  static size_t panel_elems() { return size_t(kKC) * kNR; }

  // wp[k][kNR] = w[n + j][k0 + k], zero for columns past nvalid.
  static void pack_w(const MatmulArgs& a, const WSlice& cur, void* wp_) {
    float* wp = static_cast<float*>(wp_);
    if (is_quantized(a.w_type)) return pack_w_dequantized<kNR, kKC>(a, cur, wp);
    float tmp[kKC];
    const size_t es = dtype_size(a.w_type);
    const int64_t kc = cur.kc;
    for (int j = 0; j < kNR; j++) {
      if (j < cur.rows) {
        widen(a.w_type, static_cast<const char*>(a.w) + size_t((cur.n + j) * a.K) * es, cur.k0,
              int(kc), tmp);
        for (int64_t k = 0; k < kc; k++) wp[k * kNR + j] = tmp[k];
      } else {
        for (int64_t k = 0; k < kc; k++) wp[k * kNR + j] = 0.0f;
      }
    }
  }

  template <int M>
  static void tile_m(const float* xp, const float* wp, int64_t kc, float* y, int64_t ldy,
                     int nvalid, const float* bias, bool accumulate) {
    float c[M][kNR];
    for (int i = 0; i < M; i++) {
      for (int j = 0; j < kNR; j++) c[i][j] = (accumulate && j < nvalid) ? y[i * ldy + j] : 0.0f;
    }
    for (int64_t k = 0; k < kc; k++) {
      for (int i = 0; i < M; i++) {
        const float xv = xp[k * kMR + i];
        for (int j = 0; j < kNR; j++) c[i][j] += xv * wp[k * kNR + j];
      }
    }
    for (int i = 0; i < M; i++) {
      for (int j = 0; j < nvalid; j++) y[i * ldy + j] = bias ? c[i][j] + bias[j] : c[i][j];
    }
  }

  static void tile(int m, const float* xp, const void* wp_, int64_t kc, float* y, int64_t ldy,
                   int nvalid, const float* bias, bool accumulate) {
    const float* wp = static_cast<const float*>(wp_);
    switch (m) {
      case 1: tile_m<1>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 2: tile_m<2>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      case 3: tile_m<3>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
      default: tile_m<4>(xp, wp, kc, y, ldy, nvalid, bias, accumulate); break;
    }
  }
};

void gemm_generic_compute(const MatmulArgs& a, const void* xp, int64_t n0, int64_t n1, int64_t tb0,
                          int64_t tb1) {
  gemm_loop<GenericKern>(a, xp, n0, n1, tb0, tb1);
}

}  // namespace

void gemv_generic(const MatmulArgs& a, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; n++) {
    for (int64_t t0 = 0; t0 < a.T; t0 += kTB)
      gemv_row(a, n, t0, int(a.T - t0 < kTB ? a.T - t0 : kTB));
  }
}

const GemmKernel kGemmGeneric = {GenericKern::kMR, GenericKern::kNR,
                                 packed_x_bytes_f32<GenericKern::kMR>, pack_x_f32<GenericKern::kMR>,
                                 pack_x_f32_transposed<GenericKern::kMR>, gemm_generic_compute};

}  // namespace tiller::cpu::detail
