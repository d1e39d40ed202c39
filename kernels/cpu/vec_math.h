// Elementwise math the compiler can vectorise (exp without a libm call per element), and the
// multi-versioning marker for the loops that use it.
#pragma once

#include <bit>
#include <cstdint>

// A hot loop marked TILLER_CLONES is compiled for AVX-512, AVX2 and baseline x86-64, and the
// loader picks the best the CPU runs.
#if defined(__x86_64__) && !defined(__clang__)
#define TILLER_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TILLER_CLONES
#endif

namespace tiller::cpu {

// e^x for x in [-87.3, 88], within 1 ulp of the correctly rounded value (Cephes' expf scheme:
// x = n·ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n from the exponent bits).
// Branch-free arithmetic and bit moves only, so loops over it vectorise where libm's expf would
// not. Outside the range it returns the value at the nearest end (~1e-38 below, ~1.65e38 above).
__attribute__((always_inline)) inline float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.0f ? 88.0f : x;                                        // keeps 2^n a normal float
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2) via 1.5·2^23
  float r = x - n * 0.693359375f;  // ln2 split in two: the high part has few bits, so n·hi is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * std::bit_cast<float>((int32_t(n) + 127) << 23);
}

}  // namespace tiller::cpu
