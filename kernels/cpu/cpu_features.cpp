// Run-time detection of the x86 instruction sets the CPU kernels use (CPUID + XGETBV), with the
// TILLER_CPU_ISA cap applied once.
#include "kernels/cpu/cpu_features.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TILLER_X86 1
#endif

namespace tiller::cpu {
namespace {

#ifdef TILLER_X86
struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf) {
  Regs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.a, &r.b, &r.c, &r.d)) r = Regs{};
  return r;
}

// XCR0: which register states the OS saves on a context switch. A CPU feature is only usable
// when the OS also preserves its registers (a VM or an old kernel may hide AVX-512 this way).
uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool bit(uint32_t v, int i) { return (v >> i) & 1u; }

CpuFeatures detect_hardware() {
  CpuFeatures f;
  const uint32_t max_leaf = cpuid(0, 0).a;
  if (max_leaf < 1) return f;
  const Regs l1 = cpuid(1, 0);
  if (!bit(l1.c, 27)) return f;  // no OSXSAVE: XGETBV unavailable, no AVX state saved
  const uint64_t xcr = xcr0();
  const bool os_avx = (xcr & 0x6) == 0x6;                 // XMM + YMM
  const bool os_avx512 = os_avx && (xcr & 0xe0) == 0xe0;  // opmask + ZMM_Hi256 + Hi16_ZMM
  const bool os_amx = (xcr & 0x60000) == 0x60000;         // XTILECFG + XTILEDATA
  const Regs l7 = max_leaf >= 7 ? cpuid(7, 0) : Regs{};
  const Regs l7s1 = (max_leaf >= 7 && l7.a >= 1) ? cpuid(7, 1) : Regs{};

  const bool avx = bit(l1.c, 28), fma = bit(l1.c, 12), f16c = bit(l1.c, 29);
  f.avx2 = os_avx && avx && fma && f16c && bit(l7.b, 5);
  f.avx512 = f.avx2 && os_avx512 && bit(l7.b, 16) /*F*/ && bit(l7.b, 17) /*DQ*/ &&
             bit(l7.b, 30) /*BW*/ && bit(l7.b, 31) /*VL*/;
  f.avx512_bf16 = f.avx512 && bit(l7s1.a, 5);
  const Regs l0 = cpuid(0, 0);  // vendor: "AuthenticAMD" in ebx, edx, ecx
  f.fast_bf16_dot = f.avx512_bf16 && l0.b == 0x68747541 && l0.d == 0x69746e65 && l0.c == 0x444d4163;
  f.avx512_vnni = f.avx512 && bit(l7.c, 11);
  f.amx_bf16 = os_amx && bit(l7.d, 22) && bit(l7.d, 24);
  return f;
}
#else
CpuFeatures detect_hardware() { return CpuFeatures{}; }
#endif

IsaLevel hardware_level(const CpuFeatures& f) {
  if (f.avx512) return IsaLevel::Avx512;
  if (f.avx2) return IsaLevel::Avx2;
  return IsaLevel::Generic;
}

const char* level_name(IsaLevel l) {
  switch (l) {
    case IsaLevel::Generic: return "generic";
    case IsaLevel::Avx2: return "avx2";
    case IsaLevel::Avx512: return "avx512";
  }
  return "?";
}

CpuFeatures detect() {
  CpuFeatures f = detect_hardware();
  f.level = hardware_level(f);
  if (const char* env = std::getenv("TILLER_CPU_ISA"); env && *env) {
    const std::string_view v(env);
    IsaLevel cap;
    if (v == "generic") {
      cap = IsaLevel::Generic;
    } else if (v == "avx2") {
      cap = IsaLevel::Avx2;
    } else if (v == "avx512") {
      cap = IsaLevel::Avx512;
    } else {
      fail("TILLER_CPU_ISA=", v, ": expected generic, avx2 or avx512 (or unset it to use the best ",
           "the CPU has)");
    }
    if (cap < f.level) f.level = cap;
  }
  if (const char* env = std::getenv("TILLER_QUANTIZED_PREFILL"); env && *env) {
    const std::string_view v(env);
    if (v != "exact" && v != "int8")
      fail("TILLER_QUANTIZED_PREFILL=", v, ": expected exact or int8 (or unset it for exact)");
    f.int8_prefill = v == "int8";
  }
  return f;
}

}  // namespace

std::string CpuFeatures::describe() const {
  std::string s = level_name(level);
  std::string extras;
  if (level == IsaLevel::Avx512 && avx512_bf16) extras = fast_bf16_dot ? "avx512_bf16" : "avx512_bf16 not used: no faster than FMA";
  if (level == IsaLevel::Avx512 && avx512_vnni) extras += std::string(extras.empty() ? "" : ", ") + "avx512_vnni";
  if (amx_bf16) extras += std::string(extras.empty() ? "" : ", ") + "amx_bf16 detected";
  const IsaLevel hw = hardware_level(*this);
  if (hw != level) {
    extras += std::string(extras.empty() ? "" : ", ") + "capped by TILLER_CPU_ISA; cpu has " +
              level_name(hw);
  }
  if (int8_prefill) extras += std::string(extras.empty() ? "" : ", ") + "int8 prefill";
  return extras.empty() ? s : s + " (" + extras + ")";
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

}  // namespace tiller::cpu
