// Which x86 instruction sets the CPU kernels may use, detected once at run time.
//
// TILLER_CPU_ISA=generic|avx2|avx512 caps the level (for tests of every path on one machine, and
// for comparing paths in benchmarks); it never raises it above what the CPU has.
#pragma once

#include <string>

namespace tiller::cpu {

enum class IsaLevel { Generic = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;         // with FMA and F16C
  bool avx512 = false;       // F, BW, VL, DQ
  bool avx512_bf16 = false;  // vdpbf16ps
  bool avx512_vnni = false;  // vpdpbusd (int8 dot products)
  bool amx_bf16 = false;     // tile matrix units (detected and reported; used where implemented)
  IsaLevel level = IsaLevel::Generic;  // after the TILLER_CPU_ISA cap

  std::string describe() const;  // e.g. "avx512 (avx512_bf16)"
};

const CpuFeatures& cpu_features();

}  // namespace tiller::cpu
