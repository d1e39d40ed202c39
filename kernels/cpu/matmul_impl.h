// Private interface between the matmul dispatcher (matmul.cpp) and its per-ISA kernels
// (matmul_generic.cpp, matmul_avx2.cpp, matmul_avx512.cpp, matmul_gemv_dot_avx512.cpp,
// matmul_gemm_avx512.cpp); tests and the benchmark use it to force a path.
//
// Three algorithms, each computing every output with one fixed summation order (so the split over
// threads never changes a bit):
//   GEMV (small T): each weight row is streamed once per call and dotted with all T rows of x;
//     x stays F32, weights are widened exactly, F32 FMA. Output (t, n) = fixed-lane vector
//     accumulation over k, then a fixed reduction tree, then + bias.
//   GEMM (large T): x is packed once per call into MR-row micro-panels, each thread packs NR-column
//     weight panels (KC deep) into a thread-local scratch and runs an MR x NR register-tiled
//     microkernel. Output (t, n) = sequential accumulation over k (or over k pairs for vdpbf16ps),
//     then + bias.
//   GEMV-dot (moderate T, BF16 weights on avx512_bf16): the GEMV's loop order with vdpbf16ps on
//     x rounded to BF16 once per call; output (t, n) = fixed-lane accumulation over k pairs, then
//     the same reduction tree, then + bias.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/dtype.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/cpu_features.h"

namespace tiller::cpu::detail {

struct MatmulArgs {
  const float* x;  // [T, K]
  int64_t T, K;
  const void* w;  // [N, K], w_type
  DType w_type;
  int64_t N;
  const float* bias;  // [N] or nullptr
  float* y;           // [T, N]
  // w stored [K, N] instead: a projection's [out, in] weight read as its transpose (the input
  // gradient dx = dy · W). Only the packed F32 GEMM reads it this way.
  bool w_transposed = false;
  bool x_transposed = false;  // x stored [K, T] instead (a weight gradient's dyᵀ); the F32 GEMM only
  bool accumulate = false;    // y += x · wᵀ (+ bias) instead of y = ...; the packed F32 GEMM only
};

enum class Algo { Auto, Gemv, Gemm, GemvDot };  // GemvDot: Gemv unless BF16 + bf16_dot

// A fully specified path: tests use it to run every variant the machine supports, benchmarks to
// compare them. `bf16_dot` lets BF16 weights use the vdpbf16ps kernels (x rounded to BF16); it
// needs level == Avx512 and a CPU with avx512_bf16.
struct MatmulPath {
  IsaLevel level = IsaLevel::Generic;
  bool bf16_dot = false;
  Algo algo = Algo::Auto;
  bool split_always = false;  // use every pool thread however small the work (tests of the split)
  bool int8_prefill = false;  // quantized weights take the int8 GEMV at every row count
};

// The path matmul() takes on this machine (cpu_features(), TILLER_CPU_ISA applied).
MatmulPath default_path();

void matmul_with(const MatmulArgs& a, const MatmulPath& path, ThreadPool& pool);

// The algorithm a call with T rows of x runs on `path` (Auto resolved by T and K; never Auto).
Algo resolve_algo(const MatmulPath& path, DType w_type, int64_t T, int64_t K);

// Whether that algorithm rounds x to BF16 (the vdpbf16ps kernels).
bool rounds_x_to_bf16(const MatmulPath& path, DType w_type, Algo algo);

// --- GEMV: y[:, n0:n1] for all T rows, on the calling thread -------------------------------------
void gemv_generic(const MatmulArgs& a, int64_t n0, int64_t n1);
void gemv_avx2(const MatmulArgs& a, int64_t n0, int64_t n1);
void gemv_avx512(const MatmulArgs& a, int64_t n0, int64_t n1);

// --- Kernels that pack x once per call (shared by the threads): the GEMMs and GEMV-dot ---------
struct GemmKernel {
  int mr;  // rows of x per micro-panel (T blocks)
  int nr;  // columns of y per weight panel (N blocks)
  // Bytes of the packed x for all of T (one buffer per call, shared by the threads).
  size_t (*packed_x_bytes)(int64_t T, int64_t K);
  // Packs the T blocks [tb0, tb1) of x (block b holds rows [b * mr, b * mr + mr)).
  void (*pack_x)(const float* x, int64_t T, int64_t K, void* xp, int64_t tb0, int64_t tb1);
  // The same from x stored transposed, [K, T] (MatmulArgs::x_transposed); null where unsupported.
  void (*pack_x_transposed)(const float* xt, int64_t T, int64_t K, void* xp, int64_t tb0, int64_t tb1);
  // y[rows of blocks tb0..tb1, n0:n1] from the packed x; n0 is a multiple of nr.
  void (*compute)(const MatmulArgs& a, const void* xp, int64_t n0, int64_t n1, int64_t tb0,
                  int64_t tb1);
};

extern const GemmKernel kGemmGeneric;        // F32 tiles; F16/BF16 panels widened
extern const GemmKernel kGemmAvx2;           // F32 FMA; F16/BF16 panels widened
extern const GemmKernel kGemmAvx512;         // F32 FMA; F16/BF16 panels widened
extern const GemmKernel kGemmAvx512Bf16;     // BF16 weights only: vdpbf16ps, x rounded to BF16
extern const GemmKernel kGemvDotAvx512Bf16;  // BF16 weights only: GEMV order, vdpbf16ps

// 64-byte aligned scratch owned by the calling thread, grown on demand, never shrunk.
// `slot` separates buffers a thread needs at the same time.
void* thread_scratch(int slot, size_t bytes);

}  // namespace tiller::cpu::detail
