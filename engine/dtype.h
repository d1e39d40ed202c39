// Element types tiller stores and the exact scalar conversions between them.
//
// Besides the plain element types there are llama.cpp's block-quantized weight formats (GGUF):
// a block of 32 or 256 values stored as small integers with shared scales (engine/quant.h has
// the layouts). A tensor of such a type has whole blocks along its rows; its size in bytes is
// dtype_bytes(type, n), never n * dtype_size(type).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace tiller {

enum class DType : uint8_t {
  F32, F16, BF16, I32, I64,
  // Block-quantized (GGUF): 32 values per block ...
  Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
  // ... and the K-quants, 256 values per super-block.
  Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
};

constexpr bool is_quantized(DType t) { return t >= DType::Q8_0; }

// Values per block: 1 for element types.
constexpr int64_t dtype_block(DType t) {
  if (!is_quantized(t)) return 1;
  return t >= DType::Q2_K ? 256 : 32;
}

// Bytes per block (per element for element types).
constexpr size_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I64: return 8;
    case DType::Q8_0: return 34;
    case DType::Q4_0: return 18;
    case DType::Q4_1: return 20;
    case DType::Q5_0: return 22;
    case DType::Q5_1: return 24;
    case DType::Q2_K: return 84;
    case DType::Q3_K: return 110;
    case DType::Q4_K: return 144;
    case DType::Q5_K: return 176;
    case DType::Q6_K: return 210;
  }
  return 0;
}

// Bytes per element of an element type; 0 for block types (use dtype_bytes).
constexpr size_t dtype_size(DType t) { return is_quantized(t) ? 0 : dtype_block_bytes(t); }

// Bytes of n values (n a multiple of dtype_block(t) for block types).
constexpr size_t dtype_bytes(DType t, int64_t n) { return size_t(n / dtype_block(t)) * dtype_block_bytes(t); }

// The safetensors / GGUF spelling ("F32", "BF16", "Q4_K", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

constexpr bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Converts n elements of a float type to F32, or dequantizes n values of a block type (n a
// multiple of its block; exactly as ggml and the gguf Python package do). The scalar reference
// every SIMD path is tested against.
void to_f32(DType src_type, const void* src, float* dst, size_t n);
void from_f32(DType dst_type, const float* src, void* dst, size_t n);
// n values of any float or block type to a float type, through F32 a chunk at a time.
void convert(DType src_type, const void* src, DType dst_type, void* dst, int64_t n);

}  // namespace tiller
