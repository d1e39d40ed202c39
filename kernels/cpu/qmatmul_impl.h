// Private interface of the quantized-weight GEMV (decode): y = x · Wᵀ with W in a block format
// (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) read in place, x quantized once per call to 8 bits per value
// with an F32 scale per 32 (as llama.cpp's Q8_0 / Q8_1 activations), so each 32-value block is an
// exact int32 dot product:
//
//   w_i = a·q_i + b (per 32-value sub-block; Q6_K: a per 16),  x_i ≈ dx·p_i,  s = dx·Σp
//   Σ_i w_i x_i ≈ (a·dx)·Σ q_i p_i + b·s
//
// Per-ISA kernels live in qmatmul_{generic,avx2,avx512vnni}.cpp; matmul.cpp chooses them. Large T takes the
// packed GEMM instead (weights dequantized exactly into its F32 panels, x exact).
#pragma once

#include <cstdint>

#include "engine/dtype.h"

namespace tiller::cpu::detail {

constexpr int64_t kQBlock = 32;  // values per x block

// x [T, K] quantized: qs [T][K] int8; ds [T][K/32][4] = (dx, s, dx, -8·s) with s = dx·Σp over
// the block (the second pair serves Q4_0, whose offset b = -8·a).
constexpr int64_t kXScales = 4;
struct QuantizedX {
  const int8_t* qs;
  const float* ds;
  int64_t T, K;
};

struct QGemvArgs {
  QuantizedX x;
  const void* w;  // [N, K] in w_type
  DType w_type;
  int64_t N;
  const float* bias;  // [N] or nullptr
  float* y;           // [T, N]
};

// Bytes of the quantized form of x [T, K] (K a multiple of 32).
size_t quantized_x_bytes(int64_t T, int64_t K);
// Rows [t0, t1) of x into `buf` (quantized_x_bytes(T, K) bytes, 64-byte aligned); the same
// values on every ISA (q = round-to-nearest-even(x / dx), dx = max|x| / 127).
QuantizedX quantize_x(const float* x, int64_t T, int64_t K, void* buf, int64_t t0, int64_t t1);

// Whether the quantized GEMV reads this type (else weights must be converted at load).
constexpr bool qgemv_reads(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q4_K || t == DType::Q6_K;
}

// y[:, n0:n1] for all T rows, on the calling thread.
void qgemv_generic(const QGemvArgs& a, int64_t n0, int64_t n1);
void qgemv_avx2(const QGemvArgs& a, int64_t n0, int64_t n1);
void qgemv_avx512vnni(const QGemvArgs& a, int64_t n0, int64_t n1);  // Q4_0/Q8_0, T >= 2; else the AVX2 kernel

}  // namespace tiller::cpu::detail
