// Host launchers of the CUDA kernels, one op family per .cu file. Each takes an explicit stream,
// checks its preconditions (throwing tiller::Error) and checks the launch. Pointers are device
// pointers; shapes are given in elements. CudaBackend (cuda_backend.cpp) maps Tensors onto these.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/dtype.h"

namespace tiller::cuda {

// --- embedding.cu ---
// out[t] = table[tokens[t]]                            table [V, D] F32/BF16/F16, out [T, D] F32
void embedding(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* tokens, int64_t T, float* out,
               cudaStream_t stream);
// out[i] = x[rows[i]]                                  x [T, D], out [R, D] F32
void gather_rows(const float* x, int64_t D, const int32_t* rows, int64_t R, float* out, cudaStream_t stream);

// out[i, j·c + e] = x[rows[i], blocks[j]·c + e]         x [T, K], out [n, k·c] F32; rows null: i;
//                                                      blocks null: k = 1, c = K
void index_select(const float* x, int64_t K, const int32_t* rows, int64_t n, const int32_t* blocks, int64_t k,
                  int64_t c, float* out, cudaStream_t stream);
// y[rows[i]] += src[i] + bias                          y [T, N], src [n, N] or null, bias [N] or null;
//                                                      rows null: i; rows distinct
void index_add(float* y, int64_t N, const int32_t* rows, int64_t n, const float* src, const float* bias,
               cudaStream_t stream);

// --- norm.cu ---
// out = x · rsqrt(mean(x²) + eps) · w                  x, out [T, D] (may alias), w [D]
void rmsnorm(const float* x, const float* w, float eps, int64_t T, int64_t D, float* out, cudaStream_t stream);
// residual += delta; out = rmsnorm(residual) · w       residual, delta, out [T, D]
void add_rmsnorm(float* residual, const float* delta, const float* w, float eps, int64_t T, int64_t D, float* out,
                 cudaStream_t stream);

// --- rope.cu ---
// Rotate-half RoPE in place: q [T, H, d], k [T, Hkv, d], inv_freq [d/2], positions [T]
void rope(float* q, float* k, const float* inv_freq, const int32_t* positions, int64_t T, int64_t H, int64_t Hkv,
          int64_t d, cudaStream_t stream);

// --- elementwise.cu ---
// out = silu(gate) · up                                [n]; out may alias gate or up
void silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
// x += y                                               [n]
void add(float* x, const float* y, int64_t n, cudaStream_t stream);
// y[t, :] += bias                                      y [T, N], bias [N]
void add_bias(float* y, const float* bias, int64_t T, int64_t N, cudaStream_t stream);
// dst = (dst_type) src, round to nearest even           [n]
void convert_f32(const float* src, DType dst_type, void* dst, int64_t n, cudaStream_t stream);

// --- kv_cache.cu ---
// Stores k, v [T, Hkv, d] F32 at slots [T] of one layer's cache [n_blocks, Hkv, block_size, d].
void kv_append(void* k_cache, void* v_cache, DType dtype, int64_t n_blocks, int64_t Hkv, int64_t block_size,
               int64_t d, const float* k, const float* v, const int32_t* slots, int64_t T, cudaStream_t stream);

// --- attention.cu ---
// Paged causal attention over a ragged batch; see attention.cu for the tiling. Rows are grouped
// into tiles of up to kAttentionTileRows consecutive rows of one sequence (built on the host by
// CudaBackend::upload_layout: tile_rows [n_tiles, kAttentionTileRows], -1 padded).
constexpr int kAttentionTileRows = 16;

struct AttentionArgs {
  const float* q = nullptr;          // [T, H, d]
  const void* k_cache = nullptr;     // [n_blocks, Hkv, block_size, d] of this layer
  const void* v_cache = nullptr;     // [n_blocks, Hkv, block_size, d]
  DType kv_dtype = DType::F32;
  float* out = nullptr;              // [T, H, d]
  const int32_t* positions = nullptr;     // [T]
  const int32_t* row_seq = nullptr;       // [T]
  const int32_t* block_tables = nullptr;  // [S, max_blocks]
  const int32_t* tile_rows = nullptr;     // [n_tiles, kAttentionTileRows]
  int64_t T = 0, H = 0, Hkv = 0, d = 0, block_size = 0, n_blocks = 0, max_blocks = 0;
  int64_t n_tiles = 0, max_tile_rows = 0;
  int64_t window = 0;  // 0: unlimited
  float scale = 1.0f;
  // Key splits (flash-decoding): 0 chooses from the shapes; > 0 forces up to that many.
  int64_t force_splits = 0;
  int n_sms = 132;
};

// Bytes of scratch attention() needs for `args` (split partial results; 0 when unsplit).
size_t attention_scratch_bytes(const AttentionArgs& args);
void attention(const AttentionArgs& args, void* scratch, size_t scratch_bytes, cudaStream_t stream);

// --- gemv.cu ---
// y = x · wᵀ (+ bias) for a few rows, streaming w once: x [T, K] F32, w [N, K] F32/BF16/F16, y [T, N] F32.
constexpr int64_t kGemvMaxRows = 8;
bool gemv_supported(int64_t T, int64_t K, DType w_dtype, const void* x, const void* w);
void gemv(const float* x, int64_t T, int64_t K, const void* w, DType w_dtype, int64_t N, const float* bias, float* y,
          cudaStream_t stream);

// --- sample.cu ---
// Per-row sampling settings as the sampling kernels read them.
struct SampleRow {
  float temperature;
  float top_p;
  float min_p;
  float repetition_penalty;
  double uniform;
  int32_t top_k;
  int32_t greedy;         // 1: first argmax
  int32_t penalty_begin;  // [begin, end) into the penalty token list (deduplicated, in range)
  int32_t penalty_end;
  int32_t bias_begin;     // [begin, end) into the offset list: logit_bias, before the penalty
  int32_t bias_end;
  int32_t offset_begin;   // [begin, end) into the offset list: frequency / presence, after it
  int32_t offset_end;
};

// One additive logit adjustment (engine/sampler.h's LogitOffset, the same layout).
struct TokenOffset {
  int32_t token;
  float amount;
};

struct SampleArgs {
  float* logits = nullptr;          // [R, V], modified (bias, penalties)
  const SampleRow* rows = nullptr;  // [R]
  const int32_t* penalty_tokens = nullptr;
  const TokenOffset* offsets = nullptr;
  int32_t* out_ids = nullptr;       // [R]
  int64_t R = 0, V = 0;
  bool any_sampled = false;         // false: greedy only (no sort)
  bool any_adjustment = false;      // some row has a bias, a penalty token or an offset
};

// Bytes of scratch sample() needs (sorted keys and ids, CUB temporary storage).
size_t sample_scratch_bytes(int64_t R, int64_t V);
void sample(const SampleArgs& args, void* scratch, size_t scratch_bytes, cudaStream_t stream);

}  // namespace tiller::cuda
