// Which x86 instruction sets the CPU kernels may use, detected once at run time.
//
// TILLER_CPU_ISA=generic|avx2|avx512 caps the level (for tests of every path on one machine, and
// for comparing paths in benchmarks); it never raises it above what the CPU has.
// TILLER_QUANTIZED_PREFILL=exact|int8 picks how quantized weights multiply 32 rows of x or more
// (`tiller --quantized-prefill` sets it): exactly dequantized F32 panels (the default), or x rounded
// to 8 bits on the int8 dot products, as llama.cpp always does (faster: twice on a Zen 4 core).
#pragma once

#include <string>

namespace tiller::cpu {

enum class IsaLevel { Generic = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;         // with FMA and F16C
  bool avx512 = false;       // F, BW, VL, DQ
  bool avx512_bf16 = false;  // vdpbf16ps
  // vdpbf16ps does twice the F32 FMA's work per cycle: AMD's cores (Zen 4 measured: the BF16 dot
  // kernels win). Intel's run it at the FMA rate, so the dot GEMM loses to widening BF16 weights
  // into the F32 GEMM (measured on a 2-core Xeon: 163 vs 285 GFLOP/s at T = 512) and x is better
  // kept exact there.
  bool fast_bf16_dot = false;
  bool avx512_vnni = false;  // vpdpbusd (int8 dot products)
  bool amx_bf16 = false;     // tile matrix units (detected and reported; used where implemented)
  IsaLevel level = IsaLevel::Generic;  // after the TILLER_CPU_ISA cap
  bool int8_prefill = false;           // TILLER_QUANTIZED_PREFILL=int8

  std::string describe() const;  // e.g. "avx512 (avx512_bf16)"
};

const CpuFeatures& cpu_features();

}  // namespace tiller::cpu
