// The CPU backend's training kernels: the backward of each forward op, the loss and the optimizer
// step. Plain loops vectorised per instruction set like ops.cpp; reductions that a gradient's
// accuracy depends on (norm statistics, softmax sums) accumulate in double.
#pragma once

#include <cstdint>

#include "engine/backend.h"
#include "engine/thread_pool.h"

namespace tiller::cpu {

// dx (+)= gradient of rmsnorm; dw += Σ_t dy ∘ x · rstd when dw is given.   x, dy, dx [T, D], w, dw [D]
void rmsnorm_backward(const float* x, const float* w, float eps, const float* dy, int64_t T, int64_t D, float* dx,
                      float* dw, bool accumulate, ThreadPool& pool);

// dgate = dout · up · silu'(gate), dup = dout · silu(gate)                  [n]
void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                       ThreadPool& pool);

// dtable[tokens[t]] += dx[t]                                                 dx [T, D], dtable [V, D]
void embedding_backward(const float* dx, const int32_t* tokens, int64_t T, int64_t D, float* dtable, ThreadPool& pool);

// Softmax cross-entropy per row; logits become weights[r] · (softmax - onehot).   logits [R, V]
void cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t R, int64_t V, float* loss,
                   ThreadPool& pool);

// Σ x² in double (a fixed split, so the same value for the same thread count).
double sum_squares(const float* x, int64_t n, ThreadPool& pool);

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const Backend::AdamWStep& s,
           ThreadPool& pool);

// x += alpha · y; out = a · b                                                [n]
void add_scaled(float* x, const float* y, float alpha, int64_t n, ThreadPool& pool);
void mul(const float* a, const float* b, float* out, int64_t n, ThreadPool& pool);

// Gradient of attention() for whole sequences (see Backend::attention_backward).
//   q, out, dout, dq [T, H, d]; dk, dv [T, Hkv, d]
void attention_backward(const float* q, const KvStore& kv, int layer, int64_t window, float scale,
                        const BatchLayout& b, int64_t H, const float* out, const float* dout, float* dq, float* dk,
                        float* dv, ThreadPool& pool);

// dx (+)= dy · w                 dy [T, N], w [N, K] (F32/F16/BF16), dx [T, K]
void linear_backward_input(const float* dy, int64_t T, int64_t N, const void* w, DType w_type, int64_t K, float* dx,
                           bool accumulate, ThreadPool& pool);
// dw (+)= dyᵀ · x, dbias (+)= Σ_t dy[t]     dy [T, N], x [T, K], dw [N, K], dbias [N] or null
void linear_backward_weight(const float* dy, const float* x, int64_t T, int64_t N, int64_t K, float* dw, float* dbias,
                            bool accumulate, ThreadPool& pool);

}  // namespace tiller::cpu
