// Logits processing and token choice on the device, in engine/sampler.cpp's order: logit_bias,
// repetition penalty, frequency / presence penalties, then greedy (first argmax) or temperature -> top-k (ties kept) -> top-p ->
// min-p -> draw with the host's uniform. Only the chosen ids go back to the host.
//
// Sampled rows are sorted once (CUB segmented radix sort, stable, descending: ties keep ascending
// ids, the CPU's canonical order); then one block per row walks the sorted candidates. Each cut
// is a count over a monotone sequence (probabilities fall, cumulative sums rise), so a block-wide
// count replaces the CPU's sequential scans; probabilities are in double, as on the CPU.
#include <cub/device/device_segmented_radix_sort.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.h"

namespace tiller::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr size_t kAlign = 256;

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

template <typename T>
__device__ __forceinline__ T warp_sum_t(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum; every thread gets it. `sh` holds 32 T of shared memory.
template <typename T>
__device__ T block_sum_t(T v, T* sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  v = warp_sum_t(v);
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  return warp_sum_t(lane < n_warps ? sh[lane] : T(0));
}

// Σ of v over the threads before this one (thread order). `sh` holds 32 T of shared memory.
template <typename T>
__device__ T block_exclusive_scan(T v, T* sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  T inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  __syncthreads();
  if (lane == 31) sh[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    const T w = lane < n_warps ? sh[lane] : T(0);
    T winc = w;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const T y = __shfl_up_sync(0xffffffffu, winc, o);
      if (lane >= o) winc += y;
    }
    if (lane < n_warps) sh[lane] = winc - w;
  }
  __syncthreads();
  return sh[warp] + inc - v;
}

// logit_bias, then HF's RepetitionPenaltyLogitsProcessor, then the frequency / presence offsets.
// The host deduplicated each list and dropped ids outside [0, V), so within a step no two threads
// touch the same logit; the barriers order the steps.
__global__ void adjust_kernel(float* logits, const SampleRow* __restrict__ rows, const int32_t* __restrict__ tokens,
                              const TokenOffset* __restrict__ offsets, int64_t V) {
  const int64_t r = blockIdx.x;
  const SampleRow row = rows[r];
  float* x = logits + r * V;
  for (int i = row.bias_begin + int(threadIdx.x); i < row.bias_end; i += blockDim.x) x[offsets[i].token] += offsets[i].amount;
  __syncthreads();
  if (row.repetition_penalty != 1.0f) {
    for (int i = row.penalty_begin + int(threadIdx.x); i < row.penalty_end; i += blockDim.x) {
      float& l = x[tokens[i]];
      l = l < 0 ? l * row.repetition_penalty : l / row.repetition_penalty;
    }
  }
  __syncthreads();
  for (int i = row.offset_begin + int(threadIdx.x); i < row.offset_end; i += blockDim.x)
    x[offsets[i].token] += offsets[i].amount;
}

// Greedy rows: the first maximum, as torch.argmax and std::max_element.
__global__ void argmax_kernel(const float* __restrict__ logits, const SampleRow* __restrict__ rows, int64_t V,
                              int32_t* __restrict__ out_ids) {
  __shared__ float sh_v[32];
  __shared__ int64_t sh_i[32];
  const int64_t r = blockIdx.x;
  if (!rows[r].greedy) return;
  const float* x = logits + r * V;
  float best = -INFINITY;
  int64_t best_i = V;  // V: none yet (every real index wins against it)
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    if (x[i] > best || best_i == V) best = x[i], best_i = i;  // ascending i per thread: strict > keeps the first
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, o);
    const int64_t i = __shfl_xor_sync(0xffffffffu, best_i, o);
    if (i < V && (best_i == V || v > best || (v == best && i < best_i))) best = v, best_i = i;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  if (lane == 0) sh_v[warp] = best, sh_i[warp] = best_i;
  __syncthreads();
  if (warp == 0) {
    best = lane < n_warps ? sh_v[lane] : -INFINITY;
    best_i = lane < n_warps ? sh_i[lane] : V;
    for (int o = 16; o > 0; o >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, best, o);
      const int64_t i = __shfl_xor_sync(0xffffffffu, best_i, o);
      if (i < V && (best_i == V || v > best || (v == best && i < best_i))) best = v, best_i = i;
    }
    if (lane == 0) out_ids[r] = int32_t(best_i < V ? best_i : 0);
  }
}

__global__ void iota_kernel(int32_t* __restrict__ ids, int32_t* __restrict__ offsets, int64_t R, int64_t V) {
  const int64_t n = R * V;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    ids[i] = int32_t(i % V);
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i <= R) offsets[i] = int32_t(i * V);
}

// One block per sampled row over its candidates sorted by logit (descending, ties by ascending id).
__global__ void __launch_bounds__(kThreads) select_kernel(const float* __restrict__ sorted_logits,
                                                          const int32_t* __restrict__ sorted_ids,
                                                          const SampleRow* __restrict__ rows, int64_t V,
                                                          int32_t* __restrict__ out_ids) {
  __shared__ double sh_d[32];
  __shared__ long long sh_n[32];
  const int64_t r = blockIdx.x;
  const SampleRow row = rows[r];
  if (row.greedy) return;
  const float* keys = sorted_logits + r * V;
  const int32_t* ids = sorted_ids + r * V;

  // Top-k: every token whose logit is >= the k-th largest (a prefix of the sorted row).
  int64_t n = V;
  if (row.top_k > 0 && row.top_k < V) {
    const float kth = keys[row.top_k - 1];
    long long count = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) count += keys[i] >= kth ? 1 : 0;
    n = block_sum_t(count, sh_n);
  }

  // Temperature and softmax over the survivors, as the CPU: e_i = exp(double(l_i) · inv_t - max_l).
  const float inv_t = 1.0f / row.temperature;
  const float max_l = keys[0] * inv_t;
  auto e = [&](int64_t i) { return exp(double(keys[i]) * double(inv_t) - double(max_l)); };
  double local = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) local += e(i);
  const double total = block_sum_t(local, sh_d);
  auto prob = [&](int64_t i) { return e(i) / total; };

  // Each thread walks a contiguous run of the sorted candidates for the prefix sums below.
  auto run = [&](int64_t count, int64_t& begin, int64_t& end) {
    const int64_t per = (count + blockDim.x - 1) / blockDim.x;
    begin = min(count, int64_t(threadIdx.x) * per);
    end = min(count, begin + per);
  };
  int64_t b, en;

  // Top-p (HF TopPLogitsWarper): keep = 1 + #{i >= 1 : mass of ranks i..n-1 > 1 - top_p}.
  if (row.top_p < 1.0f) {
    const double threshold = 1.0 - double(row.top_p);
    run(n, b, en);
    double part = 0;
    for (int64_t i = b; i < en; i++) part += prob(i);
    const double all = block_sum_t(part, sh_d);
    double before = block_exclusive_scan(part, sh_d);  // mass of ranks < b
    long long cut = 0;
    for (int64_t i = b; i < en; i++) {
      if (i >= 1 && all - before > threshold) cut++;
      before += prob(i);
    }
    n = 1 + block_sum_t(cut, sh_n);
  }
  // Min-p (HF MinPLogitsWarper): keep the top and every token with p >= min_p · p_top.
  if (row.min_p > 0.0f) {
    const double floor_p = double(row.min_p) * prob(0);
    long long kept = 0;
    for (int64_t i = 1 + threadIdx.x; i < n; i += blockDim.x) kept += prob(i) >= floor_p ? 1 : 0;
    n = 1 + block_sum_t(kept, sh_n);
  }

  // Draw: the first rank whose cumulative mass exceeds uniform · (mass of the kept ranks).
  run(n, b, en);
  double part = 0;
  for (int64_t i = b; i < en; i++) part += prob(i);
  const double mass = block_sum_t(part, sh_d);
  const double target = row.uniform * mass;
  double acc = block_exclusive_scan(part, sh_d);
  long long below = 0;  // ranks whose inclusive cumulative mass is <= target
  for (int64_t i = b; i < en; i++) {
    acc += prob(i);
    below += acc <= target ? 1 : 0;
  }
  const long long pick = block_sum_t(below, sh_n);
  if (threadIdx.x == 0) out_ids[r] = ids[pick < n ? pick : n - 1];
}

struct Scratch {
  float* keys = nullptr;     // [R, V] sorted logits
  int32_t* ids_in = nullptr;   // [R, V]
  int32_t* ids_out = nullptr;  // [R, V] sorted ids
  int32_t* offsets = nullptr;  // [R + 1]
  void* cub = nullptr;
  size_t cub_bytes = 0, total = 0;
};

Scratch layout(void* base, int64_t R, int64_t V) {
  const size_t items = size_t(R * V);
  Scratch s;
  TILLER_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, s.cub_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), int(items), int(R),
      static_cast<const int32_t*>(nullptr), static_cast<const int32_t*>(nullptr)));
  char* p = static_cast<char*>(base);
  size_t at = 0;
  auto take = [&](size_t bytes) {
    void* q = p ? p + at : nullptr;
    at += round_up(bytes);
    return q;
  };
  s.keys = static_cast<float*>(take(items * sizeof(float)));
  s.ids_in = static_cast<int32_t*>(take(items * sizeof(int32_t)));
  s.ids_out = static_cast<int32_t*>(take(items * sizeof(int32_t)));
  s.offsets = static_cast<int32_t*>(take(size_t(R + 1) * sizeof(int32_t)));
  s.cub = take(s.cub_bytes);
  s.total = at;
  return s;
}

}  // namespace

size_t sample_scratch_bytes(int64_t R, int64_t V) {
  TILLER_CHECK(R > 0 && V > 0 && R * V < INT32_MAX, "sample: ", R, " x ", V, " logits");
  return layout(nullptr, R, V).total;
}

void sample(const SampleArgs& a, void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  TILLER_CHECK(a.logits && a.rows && a.out_ids && a.R > 0 && a.V > 0 && a.R * a.V < INT32_MAX && a.R <= INT32_MAX,
               "sample: ", a.R, " x ", a.V, " logits");
  TILLER_CHECK(!a.any_adjustment || (a.penalty_tokens && a.offsets), "sample: penalty tokens or offsets missing");
  const unsigned R = unsigned(a.R);
  if (a.any_adjustment) {
    adjust_kernel<<<R, 256, 0, stream>>>(a.logits, a.rows, a.penalty_tokens, a.offsets, a.V);
    TILLER_CUDA_CHECK(cudaGetLastError());
  }
  argmax_kernel<<<R, kThreads, 0, stream>>>(a.logits, a.rows, a.V, a.out_ids);
  TILLER_CUDA_CHECK(cudaGetLastError());
  if (!a.any_sampled) return;

  const Scratch s = layout(scratch, a.R, a.V);
  TILLER_CHECK(scratch && scratch_bytes >= s.total, "sample: scratch of ", scratch_bytes, " bytes, needs ", s.total);
  const int64_t items = a.R * a.V;
  const unsigned grid = unsigned(std::min<int64_t>(ceil_div(std::max<int64_t>(items, a.R + 1), 256), int64_t(1) << 20));
  iota_kernel<<<grid, 256, 0, stream>>>(s.ids_in, s.offsets, a.R, a.V);
  TILLER_CUDA_CHECK(cudaGetLastError());
  size_t cub_bytes = s.cub_bytes;
  TILLER_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      s.cub, cub_bytes, static_cast<const float*>(a.logits), s.keys, static_cast<const int32_t*>(s.ids_in), s.ids_out,
      int(items), int(a.R), static_cast<const int32_t*>(s.offsets), static_cast<const int32_t*>(s.offsets + 1), 0,
      int(sizeof(float) * 8), stream));
  select_kernel<<<R, kThreads, 0, stream>>>(s.keys, s.ids_out, a.rows, a.V, a.out_ids);
  TILLER_CUDA_CHECK(cudaGetLastError());
}

}  // namespace tiller::cuda
