// Scalar dtype conversions: the portable reference for every vectorised path.
#include "engine/dtype.h"

#include "engine/error.h"
#include "engine/quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tiller {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_1: return "Q5_1";
    case DType::Q2_K: return "Q2_K";
    case DType::Q3_K: return "Q3_K";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (int i = 0; i <= int(DType::Q6_K); i++) {
    if (dtype_name(DType(i)) == name) return DType(i);
  }
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do {
      e++;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    u = sign | uint32_t(112 - e) << 23 | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return sign | 0x7e00u;   // nan
  if (absu >= 0x477ff000u) return sign | 0x7c00u;  // overflow (rounds to inf) or inf
  if (absu < 0x38800000u) {                        // subnormal or zero in f16
    float a;
    std::memcpy(&a, &absu, 4);
    // 2^-24 is the f16 subnormal unit; nearbyint rounds half to even.
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));
  }
  uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u) - 0x38000000u;  // rebias 127 -> 15, round
  return sign | uint16_t(r >> 13);
}

void to_f32(DType src_type, const void* src, float* dst, size_t n) {
  switch (src_type) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default:
      if (is_quantized(src_type)) {
        if (n % size_t(dtype_block(src_type)) != 0)
          fail("to_f32: ", n, " values of ", dtype_name(src_type), " are not whole blocks of ", dtype_block(src_type));
        dequantize(src_type, src, dst, int64_t(n));
        return;
      }
      break;
  }
  fail("to_f32: ", dtype_name(src_type), " is not a float or quantized type");
}

void from_f32(DType dst_type, const float* src, void* dst, size_t n) {
  switch (dst_type) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
      return;
    }
    default: break;
  }
  fail("from_f32: ", dtype_name(dst_type), " is not a float type");
}

void convert(DType src_type, const void* src, DType dst_type, void* dst, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;  // a multiple of every block size
  std::vector<float> tmp(size_t(std::min(n, kChunk)));
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    to_f32(src_type, static_cast<const char*>(src) + dtype_bytes(src_type, i), tmp.data(), size_t(m));
    from_f32(dst_type, tmp.data(), static_cast<char*>(dst) + dtype_bytes(dst_type, i), size_t(m));
  }
}

}  // namespace tiller
