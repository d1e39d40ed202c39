// llama.cpp's block-quantized weight formats (ggml-common.h), byte for byte, and their scalar
// dequantization: the reference the CPU kernels (kernels/cpu/qmatmul*) and the fixtures made
// with the gguf Python package check against.
//
// A row of K values is K / block consecutive blocks. In each format a value is
//   Q8_0  d·q                      q int8                       32 per block
//   Q4_0  d·(q − 8)                q 4 bits                     32
//   Q4_1  d·q + m                  q 4 bits                     32
//   Q5_0  d·(q − 16)               q 5 bits (4 + 1 in qh)       32
//   Q5_1  d·q + m                  q 5 bits                     32
//   Q2_K  d·s·q − dmin·m           q 2 bits, s/m 4 bits per 16  256
//   Q3_K  d·(s − 32)·(q − 4·!h)    q 2 bits + high bit, s 6 bits per 16
//   Q4_K  d·s·q − dmin·m           q 4 bits, s/m 6 bits per 32
//   Q5_K  d·s·q − dmin·m           q 5 bits, s/m 6 bits per 32
//   Q6_K  d·s·(q − 32)             q 6 bits, s int8 per 16
// with d, m, dmin F16. Products are rounded in the order written (no fused multiply-add), as
// ggml's reference C and numpy compute them.
#pragma once

#include <cstdint>

#include "engine/dtype.h"

namespace tiller {

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // value j in the low nibble of qs[j], value j + 16 in the high nibble
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // bit j: the fifth bit of value j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble: scale, high nibble: min, per 16 values
  uint8_t qs[64];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];  // 16 six-bit scales
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins (get_scale_min_k4)
  uint8_t qs[128];     // 64 values per 32 bytes: low nibbles first, then high nibbles
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ2_K) == 84 &&
              sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockQ6_K) == 210);
static_assert(dtype_block_bytes(DType::Q4_K) == sizeof(BlockQ4_K) && dtype_block_bytes(DType::Q6_K) == sizeof(BlockQ6_K));

// Scale and min j (0..7) of a Q4_K / Q5_K super-block, each 6 bits.
inline void q4k_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = uint8_t((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    *m = uint8_t((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// n values (a multiple of the block) of a block type -> F32.
void dequantize(DType type, const void* src, float* dst, int64_t n);

}  // namespace tiller
