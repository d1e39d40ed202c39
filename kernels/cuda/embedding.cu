// Row gathers: the token embedding (widened to F32), gather_rows (the logit rows of x), and the
// indexed row / column-block select and add of per-row steering deltas.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tiller::cuda {
namespace {

constexpr int kThreads = 256;

// One block per output row; threads stride over the D columns.
template <typename T>
__global__ void embedding_kernel(const T* __restrict__ table, const int32_t* __restrict__ tokens, int64_t V,
                                 int64_t D, float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int32_t token = tokens[t];
  float* dst = out + t * D;
  if (token < 0 || token >= V) {  // the forward validates ids; poison rather than read out of bounds
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x) dst[c] = __int_as_float(0x7fc00000);
    return;
  }
  const T* src = table + int64_t(token) * D;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) dst[c] = to_float(src[c]);
}

__global__ void gather_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ rows, int64_t D,
                                   float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const float* src = x + int64_t(rows[i]) * D;
  float* dst = out + i * D;
  for (int64_t c = threadIdx.x; c < D; c += blockDim.x) dst[c] = src[c];
}

// One block per output row; threads stride over the k·c selected columns.
__global__ void index_select_kernel(const float* __restrict__ x, int64_t K, const int32_t* __restrict__ rows,
                                    const int32_t* __restrict__ blocks, int64_t k, int64_t c, float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const float* src = x + (rows ? int64_t(rows[i]) : i) * K;
  float* dst = out + i * k * c;
  for (int64_t e = threadIdx.x; e < k * c; e += blockDim.x) {
    const int64_t j = e / c;
    dst[e] = src[(blocks ? int64_t(blocks[j]) * c : 0) + e % c];
  }
}

// One block per source row; rows are distinct, so no two blocks write one element.
__global__ void index_add_kernel(float* __restrict__ y, int64_t N, const int32_t* __restrict__ rows,
                                 const float* __restrict__ src, const float* __restrict__ bias) {
  const int64_t i = blockIdx.x;
  float* dst = y + (rows ? int64_t(rows[i]) : i) * N;
  for (int64_t e = threadIdx.x; e < N; e += blockDim.x) {
    float v = dst[e];
    if (src) v += src[i * N + e];
    if (bias) v += bias[e];
    dst[e] = v;
  }
}

}  // namespace

void index_select(const float* x, int64_t K, const int32_t* rows, int64_t n, const int32_t* blocks, int64_t k,
                  int64_t c, float* out, cudaStream_t stream) {
  TILLER_CHECK(x && out && K > 0 && n >= 0 && n <= INT32_MAX && k > 0 && c > 0 && k * c <= K,
               "index_select: K ", K, " n ", n, " k ", k, " c ", c);
  if (n == 0) return;
  index_select_kernel<<<unsigned(n), kThreads, 0, stream>>>(x, K, rows, blocks, k, c, out);
  TILLER_CUDA_CHECK(cudaGetLastError());
}

void index_add(float* y, int64_t N, const int32_t* rows, int64_t n, const float* src, const float* bias,
               cudaStream_t stream) {
  TILLER_CHECK(y && N > 0 && n >= 0 && n <= INT32_MAX, "index_add: N ", N, " n ", n);
  if (n == 0 || (!src && !bias)) return;
  index_add_kernel<<<unsigned(n), kThreads, 0, stream>>>(y, N, rows, src, bias);
  TILLER_CUDA_CHECK(cudaGetLastError());
}

void embedding(const void* table, DType dtype, int64_t V, int64_t D, const int32_t* tokens, int64_t T, float* out,
               cudaStream_t stream) {
  TILLER_CHECK(table && tokens && out && V > 0 && D > 0 && T >= 0, "embedding: V ", V, " D ", D, " T ", T);
  TILLER_CHECK(T <= INT32_MAX, "embedding: ", T, " rows");
  if (T == 0) return;
  dispatch_float(dtype, "embedding table", [&](auto tag) {
    using E = decltype(tag);
    embedding_kernel<E><<<unsigned(T), kThreads, 0, stream>>>(static_cast<const E*>(table), tokens, V, D, out);
  });
  TILLER_CUDA_CHECK(cudaGetLastError());
}

void gather_rows(const float* x, int64_t D, const int32_t* rows, int64_t R, float* out, cudaStream_t stream) {
  TILLER_CHECK(x && rows && out && D > 0 && R >= 0 && R <= INT32_MAX, "gather_rows: D ", D, " R ", R);
  if (R == 0) return;
  gather_rows_kernel<<<unsigned(R), kThreads, 0, stream>>>(x, rows, D, out);
  TILLER_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tiller::cuda
