// Dense projections on the CPU: y = x · Wᵀ + b, reading F32/F16/BF16 weights in place.
//
// Weights keep the HF layout [out_features, in_features] and their stored dtype (a BF16 model is
// never converted to F32 up front); activations are F32 and every sum accumulates in F32.
// The implementation is chosen at run time from the CPU's instruction sets (cpu_features.h).
//
// Precision: weights are always widened exactly. x is used exactly (F32 FMA) except for BF16
// weights on CPUs where vdpbf16ps runs at twice the FMA rate (CpuFeatures::fast_bf16_dot: AMD's
// AVX512_BF16 cores) once T >= 8: there x is rounded to BF16 (round to nearest even, as torch's
// .to(bfloat16)) so vdpbf16ps can do the products (exact in F32) (vdpbf16ps also reads BF16
// denormals, below ~1e-38, as zero).
// HF runs BF16 models with BF16 activations, so this stays closer to the reference than it looks;
// decode steps (T < 8) keep x exact. Which algorithm runs depends on T (and K), never on the
// thread count, and each output has one fixed summation order: results are bitwise reproducible
// for a given CPU, TILLER_CPU_ISA and shape.
#pragma once

#include <cstdint>
#include <span>

#include "engine/dtype.h"
#include "engine/thread_pool.h"

namespace tiller::cpu {

// y[T, N] = x[T, K] · w[N, K]ᵀ (+ bias[N])
//   x:    F32 [T, K], row-major, rows contiguous
//   w:    w_type in {F32, F16, BF16}, [N, K] row-major, no alignment assumed
//   bias: F32 [N] or nullptr
//   y:    F32 [T, N], row-major; must not alias x
// Work is split across `pool`. Results do not depend on the thread count.
void matmul(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N,
            const float* bias, float* y, ThreadPool& pool);

// y[T, N] (+)= x[T, K] · w[K, N]: the weights stored transposed, as a projection's own [out, in]
// matrix is when its input gradient dx = dy · W is wanted, so no copy of W is made; with
// x_transposed, x too is stored transposed, [K, T], as dy is in a weight gradient dW = dyᵀ · x.
// Always the packed F32 GEMM (F16/BF16 widened exactly; x exact), one summation order per
// output, any T. accumulate: y += ... (y is read), else y = ...
struct TransposedMatmul {
  bool x_transposed = false;
  bool accumulate = false;
};
void matmul_transposed(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N, float* y,
                       TransposedMatmul how, ThreadPool& pool);

// Several projections of the same x (q/k/v, gate/up) in one parallel region: the same results as
// one matmul() per target, with one thread dispatch instead of several. Decode steps are a few
// hundred small matmuls, where dispatch and per-matrix imbalance are a visible share of the time.
struct MatmulTarget {
  const void* w;  // [N, K]
  DType w_type;
  int64_t N;
  const float* bias;  // [N] or nullptr
  float* y;           // [T, N]
};
void matmul_many(const float* x, int64_t T, int64_t K, std::span<const MatmulTarget> targets, ThreadPool& pool);

// The portable scalar reference every vectorised path is tested against (single-threaded).
void matmul_reference(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N,
                      const float* bias, float* y);

}  // namespace tiller::cpu
