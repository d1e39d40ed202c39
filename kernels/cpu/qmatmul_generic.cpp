// The quantized GEMV's x quantization (shared by every ISA) and its portable kernel: each weight
// sub-block decoded to small integers and its affine scale, dotted exactly in int32 with x's.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/error.h"
#include "engine/quant.h"
#include "kernels/cpu/qmatmul_impl.h"

namespace tiller::cpu::detail {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Sub-block j (32 values) of one weight block: integers q and w_i = a[i / 16]·q_i + b.
struct SubBlock {
  int q[32];
  float a[2];
  float b;
};

void decode(DType type, const uint8_t* blk, int j, SubBlock& s) {
  switch (type) {
    case DType::Q8_0: {
      const auto& B = *reinterpret_cast<const BlockQ8_0*>(blk);
      for (int i = 0; i < 32; i++) s.q[i] = B.qs[i];
      s.a[0] = s.a[1] = f16_to_f32(B.d);
      s.b = 0;
      return;
    }
    case DType::Q4_0: {
      const auto& B = *reinterpret_cast<const BlockQ4_0*>(blk);
      for (int i = 0; i < 16; i++) s.q[i] = B.qs[i] & 0xF, s.q[i + 16] = B.qs[i] >> 4;
      s.a[0] = s.a[1] = f16_to_f32(B.d);
      s.b = -8 * s.a[0];
      return;
    }
    case DType::Q4_1: {
      const auto& B = *reinterpret_cast<const BlockQ4_1*>(blk);
      for (int i = 0; i < 16; i++) s.q[i] = B.qs[i] & 0xF, s.q[i + 16] = B.qs[i] >> 4;
      s.a[0] = s.a[1] = f16_to_f32(B.d);
      s.b = f16_to_f32(B.m);
      return;
    }
    case DType::Q4_K: {
      const auto& B = *reinterpret_cast<const BlockQ4_K*>(blk);
      uint8_t sc, m;
      q4k_scale_min(B.scales, j, &sc, &m);
      const uint8_t* q = B.qs + (j / 2) * 32;
      for (int i = 0; i < 32; i++) s.q[i] = (q[i] >> (4 * (j % 2))) & 0xF;
      s.a[0] = s.a[1] = f16_to_f32(B.d) * float(sc);
      s.b = -(f16_to_f32(B.dmin) * float(m));
      return;
    }
    case DType::Q6_K: {
      const auto& B = *reinterpret_cast<const BlockQ6_K*>(blk);
      const int half = j / 4, g = j % 4;
      for (int l = 0; l < 32; l++) {
        const uint8_t lo = B.ql[half * 64 + (g % 2) * 32 + l];
        const int q4 = g < 2 ? (lo & 0xF) : (lo >> 4);
        const int q2 = (B.qh[half * 32 + l] >> (2 * g)) & 3;
        s.q[l] = (q4 | (q2 << 4)) - 32;
      }
      const float d = f16_to_f32(B.d);
      s.a[0] = d * float(B.scales[2 * j]);
      s.a[1] = d * float(B.scales[2 * j + 1]);
      s.b = 0;
      return;
    }
    default: TILLER_CHECK(false, "qgemv: ", dtype_name(type));
  }
}

}  // namespace

size_t quantized_x_bytes(int64_t T, int64_t K) {
  return align64(size_t(T * K)) + size_t(T * (K / kQBlock) * kXScales) * sizeof(float);
}

QuantizedX quantize_x(const float* x, int64_t T, int64_t K, void* buf, int64_t t0, int64_t t1) {
  TILLER_CHECK(K % kQBlock == 0, "K=", K);
  auto* qs = static_cast<int8_t*>(buf);
  auto* ds = reinterpret_cast<float*>(static_cast<char*>(buf) + align64(size_t(T * K)));
  for (int64_t t = t0; t < t1; t++) {
    for (int64_t b = 0; b < K / kQBlock; b++) {
      const float* v = x + t * K + b * kQBlock;
      float amax = 0;
      for (int i = 0; i < kQBlock; i++) amax = std::max(amax, std::fabs(v[i]));
      const float d = amax / 127.0f;
      const float id = d != 0 ? 1.0f / d : 0.0f;
      int sum = 0;
      int8_t* q = qs + t * K + b * kQBlock;
      for (int i = 0; i < kQBlock; i++) {
        // Round to nearest even (|v·id| <= 127.5): adding and subtracting 1.5·2^23 rounds in the FPU's
        // default mode, with no library call (std::nearbyint is one per value).
        q[i] = int8_t(int((v[i] * id + 12582912.0f) - 12582912.0f));
        sum += q[i];
      }
      float* e = ds + (t * (K / kQBlock) + b) * kXScales;
      e[0] = e[2] = d;
      e[1] = d * float(sum);
      e[3] = -8 * e[1];
    }
  }
  return {qs, ds, T, K};
}

void qgemv_generic(const QGemvArgs& a, int64_t n0, int64_t n1) {
  const int64_t K = a.x.K, nb = K / dtype_block(a.w_type), subs = dtype_block(a.w_type) / kQBlock;
  const size_t row_bytes = dtype_bytes(a.w_type, K), block_bytes = dtype_block_bytes(a.w_type);
  SubBlock s;
  for (int64_t n = n0; n < n1; n++) {
    const auto* row = static_cast<const uint8_t*>(a.w) + size_t(n) * row_bytes;
    for (int64_t t = 0; t < a.x.T; t++) {
      const int8_t* xq = a.x.qs + t * K;
      const float* xd = a.x.ds + t * (K / kQBlock) * kXScales;
      float acc = 0;
      for (int64_t blk = 0; blk < nb; blk++) {
        for (int j = 0; j < int(subs); j++) {
          decode(a.w_type, row + size_t(blk) * block_bytes, j, s);
          const int64_t xb = blk * subs + j;  // x block
          int sum[2] = {0, 0};
          for (int i = 0; i < 32; i++) sum[i / 16] += s.q[i] * xq[xb * kQBlock + i];
          const float dx = xd[kXScales * xb], sx = xd[kXScales * xb + 1];
          acc += (s.a[0] * dx) * float(sum[0]) + (s.a[1] * dx) * float(sum[1]) + s.b * sx;
        }
      }
      a.y[t * a.N + n] = a.bias ? acc + a.bias[n] : acc;
    }
  }
}

}  // namespace tiller::cpu::detail
