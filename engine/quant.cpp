// Scalar dequantization of llama.cpp's block formats, in the arithmetic order of ggml's reference
// C and the gguf Python package (tests/fixtures/make_quant_fixtures.py checks bit equality).
#include "engine/quant.h"

#include <cstring>
#include <type_traits>

#include "engine/error.h"

namespace tiller {
namespace {

float h(uint16_t v) { return f16_to_f32(v); }

void q8_0(const BlockQ8_0& b, float* y) {
  const float d = h(b.d);
  for (int j = 0; j < 32; j++) y[j] = float(b.qs[j]) * d;
}

void q4_0(const BlockQ4_0& b, float* y) {
  const float d = h(b.d);
  for (int j = 0; j < 16; j++) {
    y[j] = d * float(int(b.qs[j] & 0xF) - 8);
    y[j + 16] = d * float(int(b.qs[j] >> 4) - 8);
  }
}

void q4_1(const BlockQ4_1& b, float* y) {
  const float d = h(b.d), m = h(b.m);
  for (int j = 0; j < 16; j++) {
    y[j] = d * float(b.qs[j] & 0xF) + m;
    y[j + 16] = d * float(b.qs[j] >> 4) + m;
  }
}

uint32_t high_bits(const uint8_t qh[4]) {
  uint32_t v;
  std::memcpy(&v, qh, 4);  // little-endian, as the format stores it
  return v;
}

void q5_0(const BlockQ5_0& b, float* y) {
  const float d = h(b.d);
  const uint32_t qh = high_bits(b.qh);
  for (int j = 0; j < 16; j++) {
    const int lo = int((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    const int hi = int((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    y[j] = d * float(lo - 16);
    y[j + 16] = d * float(hi - 16);
  }
}

void q5_1(const BlockQ5_1& b, float* y) {
  const float d = h(b.d), m = h(b.m);
  const uint32_t qh = high_bits(b.qh);
  for (int j = 0; j < 16; j++) {
    const int lo = int((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    const int hi = int((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    y[j] = d * float(lo) + m;
    y[j + 16] = d * float(hi) + m;
  }
}

void q2_k(const BlockQ2_K& b, float* y) {
  const float d = h(b.d), dmin = h(b.dmin);
  for (int e = 0; e < 256; e++) {
    const int chunk = e / 128, shift = (e % 128) / 32, l = e % 32;
    const int q = (b.qs[chunk * 32 + l] >> (2 * shift)) & 3;
    const uint8_t sc = b.scales[e / 16];
    const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
    y[e] = dl * float(q) - ml;
  }
}

void q3_k(const BlockQ3_K& b, float* y) {
  const float d = h(b.d);
  float dl[16];
  for (int i = 0; i < 16; i++) {
    const int lo = i < 8 ? (b.scales[i] & 0xF) : (b.scales[i - 8] >> 4);
    const int hi = (b.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
    dl[i] = d * float(int8_t(uint8_t(lo | (hi << 4))) - 32);
  }
  for (int e = 0; e < 256; e++) {
    const int chunk = e / 128, shift = (e % 128) / 32, l = e % 32;
    const int q = (b.qs[chunk * 32 + l] >> (2 * shift)) & 3;
    const int high = (b.hmask[l] >> (e / 32)) & 1;
    y[e] = dl[e / 16] * float(q - (high ? 0 : 4));
  }
}

// Q4_K and Q5_K: eight 32-value sub-blocks with six-bit scales and mins, four low bits per value
// from qs; Q5_K adds a fifth from qh (bit j of qh[l] for sub-block j).
template <class Block>
void k_quant_4_5(const Block& b, float* y) {
  const float d = h(b.d), dmin = h(b.dmin);
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    q4k_scale_min(b.scales, j, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    const uint8_t* q = b.qs + (j / 2) * 32;
    const int shift = 4 * (j % 2);
    for (int l = 0; l < 32; l++) {
      int v = (q[l] >> shift) & 0xF;
      if constexpr (std::is_same_v<Block, BlockQ5_K>) v |= ((b.qh[l] >> j) & 1) << 4;
      y[j * 32 + l] = d1 * float(v) - m1;
    }
  }
}

void q6_k(const BlockQ6_K& b, float* y) {
  const float d = h(b.d);
  for (int e = 0; e < 256; e++) {
    const int half = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[half * 64 + (g % 2) * 32 + l];
    const int q4 = g < 2 ? (lo & 0xF) : (lo >> 4);
    const int q2 = (b.qh[half * 32 + l] >> (2 * g)) & 3;
    const float dl = d * float(b.scales[e / 16]);
    y[e] = dl * float((q4 | (q2 << 4)) - 32);
  }
}

template <class Block>
void each_block(const void* src, float* dst, int64_t n, int64_t block, void (*fn)(const Block&, float*)) {
  const auto* b = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / block; i++) fn(b[i], dst + i * block);
}

}  // namespace

void dequantize(DType type, const void* src, float* dst, int64_t n) {
  TILLER_CHECK(is_quantized(type) && n % dtype_block(type) == 0, dtype_name(type), " n=", n);
  switch (type) {
    case DType::Q8_0: return each_block<BlockQ8_0>(src, dst, n, 32, q8_0);
    case DType::Q4_0: return each_block<BlockQ4_0>(src, dst, n, 32, q4_0);
    case DType::Q4_1: return each_block<BlockQ4_1>(src, dst, n, 32, q4_1);
    case DType::Q5_0: return each_block<BlockQ5_0>(src, dst, n, 32, q5_0);
    case DType::Q5_1: return each_block<BlockQ5_1>(src, dst, n, 32, q5_1);
    case DType::Q2_K: return each_block<BlockQ2_K>(src, dst, n, 256, q2_k);
    case DType::Q3_K: return each_block<BlockQ3_K>(src, dst, n, 256, q3_k);
    case DType::Q4_K: return each_block<BlockQ4_K>(src, dst, n, 256, k_quant_4_5<BlockQ4_K>);
    case DType::Q5_K: return each_block<BlockQ5_K>(src, dst, n, 256, k_quant_4_5<BlockQ5_K>);
    case DType::Q6_K: return each_block<BlockQ6_K>(src, dst, n, 256, q6_k);
    default: break;
  }
}

}  // namespace tiller
