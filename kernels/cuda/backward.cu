// Training kernels: elementwise helpers, the backward of rmsnorm / silu·mul / embedding /
// gather_rows, bias sums, the softmax cross-entropy, Σx² and AdamW. Straightforward kernels,
// checked against the CPU backend by the op table.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/train_ops.h"

namespace tiller::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) { return unsigned(std::clamp<int64_t>(ceil_div(n, kThreads), 1, int64_t(1) << 20)); }

#define TILLER_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void fill_kernel(float* x, float value, int64_t n) {
  TILLER_GRID_STRIDE(i, n) x[i] = value;
}

__global__ void add_scaled_kernel(float* x, const float* y, float alpha, int64_t n) {
  TILLER_GRID_STRIDE(i, n) x[i] += alpha * y[i];
}

__global__ void mul_kernel(const float* a, const float* b, float* out, int64_t n) {
  TILLER_GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}

__global__ void column_sums_kernel(const float* dy, int64_t T, int64_t N, float* dbias, bool accumulate) {
  TILLER_GRID_STRIDE(n, N) {
    double s = 0;
    for (int64_t t = 0; t < T; t++) s += dy[t * N + n];
    dbias[n] = accumulate ? dbias[n] + float(s) : float(s);
  }
}

// One block per row: dx = rstd · (w ∘ dy) - x · rstd³ · Σ(w ∘ dy ∘ x) / D.
__global__ void rmsnorm_backward_rows(const float* x, const float* w, float eps, const float* dy, int64_t D,
                                      float* dx, bool accumulate, float* rstd_out) {
  __shared__ float scratch[32];
  const int64_t t = blockIdx.x;
  const float* xr = x + t * D;
  const float* dyr = dy + t * D;
  float ss = 0, dot = 0;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    ss += xr[c] * xr[c];
    dot += w[c] * dyr[c] * xr[c];
  }
  ss = block_sum(ss, scratch);
  dot = block_sum(dot, scratch);
  const float rstd = 1.0f / sqrtf(ss / float(D) + eps);
  const float coef = rstd * rstd * rstd * dot / float(D);
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) {
    const float g = rstd * (w[c] * dyr[c]) - coef * xr[c];
    dx[t * D + c] = accumulate ? dx[t * D + c] + g : g;
  }
  if (threadIdx.x == 0) rstd_out[t] = rstd;
}

__global__ void rmsnorm_backward_weight(const float* x, const float* dy, const float* rstd, int64_t T, int64_t D,
                                        float* dw) {
  TILLER_GRID_STRIDE(c, D) {
    double s = 0;
    for (int64_t t = 0; t < T; t++) s += double(dy[t * D + c] * (x[t * D + c] * rstd[t]));
    dw[c] += float(s);
  }
}

__global__ void silu_mul_backward_kernel(const float* gate, const float* up, const float* dout, float* dgate,
                                         float* dup, int64_t n) {
  TILLER_GRID_STRIDE(i, n) {
    const float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dout[i], u = up[i];
    dgate[i] = d * u * (s * (1.0f + g * (1.0f - s)));
    dup[i] = d * (g * s);
  }
}

__global__ void embedding_backward_kernel(const float* dx, const int32_t* tokens, int64_t T, int64_t D,
                                          float* dtable) {
  TILLER_GRID_STRIDE(i, T * D) {
    const int64_t t = i / D, c = i % D;
    atomicAdd(dtable + int64_t(tokens[t]) * D + c, dx[i]);
  }
}

__global__ void gather_rows_backward_kernel(const float* dout, const int32_t* rows, int64_t R, int64_t D, float* dx) {
  TILLER_GRID_STRIDE(i, R * D) {
    const int64_t r = i / D, c = i % D;
    dx[int64_t(rows[r]) * D + c] += dout[i];  // logit rows are distinct
  }
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// One block per row.
__global__ void cross_entropy_kernel(float* logits, const int32_t* targets, const float* weights, int64_t V,
                                     float* loss) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  float* z = logits + r * V;
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, z[i]);
  mx = block_max(mx, scratch);
  float sum = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) sum += expf(z[i] - mx);
  sum = block_sum(sum, scratch);
  const float lse = mx + logf(sum);
  const int32_t y = targets[r];
  const float w = weights[r];
  __syncthreads();
  if (threadIdx.x == 0) loss[r] = lse - z[y];
  __syncthreads();
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) z[i] = w * expf(z[i] - lse) - (i == y ? w : 0.0f);
}

__global__ void sum_squares_kernel(const float* x, int64_t n, double* out) {
  __shared__ float scratch[32];
  float s = 0;
  TILLER_GRID_STRIDE(i, n) s += x[i] * x[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) atomicAdd(out, double(s));
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamWArgs s) {
  const float decay = 1.0f - s.lr * s.weight_decay;
  TILLER_GRID_STRIDE(i, n) {
    const float gi = g[i] * s.grad_scale;
    if (s.weight_decay != 0.0f) p[i] *= decay;
    m[i] += (1.0f - s.beta1) * (gi - m[i]);
    v[i] = v[i] * s.beta2 + (1.0f - s.beta2) * (gi * gi);
    const float denom = sqrtf(v[i]) / s.bias_correction2_sqrt + s.eps;
    p[i] += -s.step_size * (m[i] / denom);
  }
}

void check_launch() { TILLER_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void fill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, value, n);
  check_launch();
}

void add_scaled(float* x, const float* y, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_scaled_kernel<<<grid_for(n), kThreads, 0, stream>>>(x, y, alpha, n);
  check_launch();
}

void mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  mul_kernel<<<grid_for(n), kThreads, 0, stream>>>(a, b, out, n);
  check_launch();
}

void column_sums(const float* dy, int64_t T, int64_t N, float* dbias, bool accumulate, cudaStream_t stream) {
  if (N == 0) return;
  column_sums_kernel<<<grid_for(N), kThreads, 0, stream>>>(dy, T, N, dbias, accumulate);
  check_launch();
}

void rmsnorm_backward(const float* x, const float* w, float eps, const float* dy, int64_t T, int64_t D, float* dx,
                      float* dw, bool accumulate, float* rstd_scratch, cudaStream_t stream) {
  TILLER_CHECK(T >= 0 && T <= INT32_MAX && D > 0, "rmsnorm_backward: T ", T, " D ", D);
  if (T == 0) return;
  const unsigned threads = unsigned(std::clamp<int64_t>((D / 8 + 31) / 32 * 32, 128, 1024));
  rmsnorm_backward_rows<<<unsigned(T), threads, 0, stream>>>(x, w, eps, dy, D, dx, accumulate, rstd_scratch);
  check_launch();
  if (!dw) return;
  rmsnorm_backward_weight<<<grid_for(D), kThreads, 0, stream>>>(x, dy, rstd_scratch, T, D, dw);
  check_launch();
}

void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                       cudaStream_t stream) {
  if (n == 0) return;
  silu_mul_backward_kernel<<<grid_for(n), kThreads, 0, stream>>>(gate, up, dout, dgate, dup, n);
  check_launch();
}

void embedding_backward(const float* dx, const int32_t* tokens, int64_t T, int64_t D, float* dtable,
                        cudaStream_t stream) {
  if (T * D == 0) return;
  embedding_backward_kernel<<<grid_for(T * D), kThreads, 0, stream>>>(dx, tokens, T, D, dtable);
  check_launch();
}

void gather_rows_backward(const float* dout, const int32_t* rows, int64_t R, int64_t D, float* dx,
                          cudaStream_t stream) {
  if (R * D == 0) return;
  gather_rows_backward_kernel<<<grid_for(R * D), kThreads, 0, stream>>>(dout, rows, R, D, dx);
  check_launch();
}

void cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t R, int64_t V, float* loss,
                   cudaStream_t stream) {
  TILLER_CHECK(R >= 0 && R <= INT32_MAX && V > 0, "cross_entropy: R ", R, " V ", V);
  if (R == 0) return;
  cross_entropy_kernel<<<unsigned(R), 512, 0, stream>>>(logits, targets, weights, V, loss);
  check_launch();
}

void sum_squares(const float* x, int64_t n, double* out, cudaStream_t stream) {
  TILLER_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), stream));
  if (n == 0) return;
  sum_squares_kernel<<<std::min(grid_for(n), 1024u), kThreads, 0, stream>>>(x, n, out);
  check_launch();
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& s,
           cudaStream_t stream) {
  if (n == 0) return;
  adamw_kernel<<<grid_for(n), kThreads, 0, stream>>>(param, grad, m, v, n, s);
  check_launch();
}

}  // namespace tiller::cuda
