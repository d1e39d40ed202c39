// Host launchers of the training kernels (backward.cu, attention_backward.cu), in the style of
// ops.h: explicit stream, checked preconditions, checked launches; device pointers, element counts.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/dtype.h"

namespace tiller::cuda {

// Backend::AdamWStep in a form the C++17 device code can include.
struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt, grad_scale;
};

// --- backward.cu ---
void fill(float* x, float value, int64_t n, cudaStream_t stream);
void add_scaled(float* x, const float* y, float alpha, int64_t n, cudaStream_t stream);
void mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream);
// dbias (+)= Σ_t dy[t]                                  dy [T, N]
void column_sums(const float* dy, int64_t T, int64_t N, float* dbias, bool accumulate, cudaStream_t stream);
// rstd_scratch holds T floats.                          x, dy, dx [T, D]; w, dw [D]
void rmsnorm_backward(const float* x, const float* w, float eps, const float* dy, int64_t T, int64_t D, float* dx,
                      float* dw, bool accumulate, float* rstd_scratch, cudaStream_t stream);
void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                       cudaStream_t stream);
// dtable[tokens[t]] += dx[t] (atomic adds)             dx [T, D], dtable [V, D]
void embedding_backward(const float* dx, const int32_t* tokens, int64_t T, int64_t D, float* dtable,
                        cudaStream_t stream);
// dx[rows[i]] += dout[i]                                dout [R, D]
void gather_rows_backward(const float* dout, const int32_t* rows, int64_t R, int64_t D, float* dx,
                          cudaStream_t stream);
void cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t R, int64_t V, float* loss,
                   cudaStream_t stream);
// *out = Σ x² (a double on the device, zeroed by the call)
void sum_squares(const float* x, int64_t n, double* out, cudaStream_t stream);
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& s,
           cudaStream_t stream);

// --- attention_backward.cu ---
struct AttentionBackwardArgs {
  const float* q = nullptr;     // [T, H, d] roped queries
  const void* k_cache = nullptr;  // [n_blocks, Hkv, block_size, d] of this layer
  const void* v_cache = nullptr;
  DType kv_dtype = DType::F32;
  const float* out = nullptr;   // [T, H, d]
  const float* dout = nullptr;  // [T, H, d]
  float* dq = nullptr;          // [T, H, d]
  float* dk = nullptr;          // [T, Hkv, d]
  float* dv = nullptr;          // [T, Hkv, d]
  float* lse = nullptr;         // [T, H] scratch
  float* delta = nullptr;       // [T, H] scratch
  const int32_t* positions = nullptr;     // [T]
  const int32_t* row_seq = nullptr;       // [T]
  const int32_t* block_tables = nullptr;  // [S, max_blocks]
  const int32_t* kv_lens = nullptr;       // [S]
  int64_t T = 0, H = 0, Hkv = 0, d = 0, block_size = 0, max_blocks = 0, window = 0;
  float scale = 1.0f;
};
void attention_backward(const AttentionBackwardArgs& a, cudaStream_t stream);

}  // namespace tiller::cuda
