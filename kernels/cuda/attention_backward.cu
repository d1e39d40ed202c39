// The gradient of paged causal attention for batches of whole sequences (training), the same two
// passes as the CPU backend (kernels/cpu/attention_backward.cpp): one warp per (query row, head)
// recomputes the row's softmax and writes dq, the log-sum-exp and D = dout · out; then one warp per
// (key row, KV head) sums dk and dv over the queries that see the key. Lanes split head_dim
// (up to 256); every dot product is a warp sum.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/train_ops.h"

namespace tiller::cuda {
namespace {

constexpr int kWarps = 4;         // items per block
constexpr int kMaxPerLane = 8;    // head_dim <= 256

template <typename KvT>
struct Paged {
  const KvT* base;
  const int32_t* table;  // this sequence's block table
  int64_t Hkv, bs, d;
  __device__ const KvT* row(int64_t pos, int64_t head) const {
    return base + ((int64_t(table[pos / bs]) * Hkv + head) * bs + pos % bs) * d;
  }
};

template <typename KvT>
__device__ __forceinline__ void load_lanes(const KvT* p, int64_t d, float (&out)[kMaxPerLane]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    const int64_t i = lane + 32 * e;
    out[e] = i < d ? to_float(p[i]) : 0.0f;
  }
}

__device__ __forceinline__ float lanes_dot(const float (&a)[kMaxPerLane], const float (&b)[kMaxPerLane]) {
  float s = 0;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) s += a[e] * b[e];
  return warp_sum(s);
}

template <typename KvT>
__device__ Paged<KvT> paged(const AttentionBackwardArgs& a, const void* cache, int64_t t) {
  return Paged<KvT>{static_cast<const KvT*>(cache), a.block_tables + int64_t(a.row_seq[t]) * a.max_blocks, a.Hkv,
                    a.block_size, a.d};
}

template <typename KvT>
__global__ void dq_kernel(AttentionBackwardArgs a) {
  const int64_t item = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (item >= a.T * a.H) return;
  const int64_t t = item / a.H, h = item % a.H, hk = h / (a.H / a.Hkv);
  const int64_t pos = a.positions[t];
  const int64_t lo = a.window > 0 ? max(int64_t(0), pos - a.window + 1) : 0;
  const Paged<KvT> K = paged<KvT>(a, a.k_cache, t), V = paged<KvT>(a, a.v_cache, t);
  float q[kMaxPerLane], dout[kMaxPerLane], o[kMaxPerLane], kr[kMaxPerLane], vr[kMaxPerLane], dq[kMaxPerLane] = {};
  load_lanes(a.q + (t * a.H + h) * a.d, a.d, q);
  load_lanes(a.dout + (t * a.H + h) * a.d, a.d, dout);
  load_lanes(a.out + (t * a.H + h) * a.d, a.d, o);
  float m = -INFINITY, l = 0;
  for (int64_t p = lo; p <= pos; p++) {
    load_lanes(K.row(p, hk), a.d, kr);
    const float s = a.scale * lanes_dot(q, kr);
    const float mn = fmaxf(m, s);
    l = l * expf(m - mn) + expf(s - mn);
    m = mn;
  }
  const float lse = m + logf(l), delta = lanes_dot(dout, o);
  for (int64_t p = lo; p <= pos; p++) {
    load_lanes(K.row(p, hk), a.d, kr);
    load_lanes(V.row(p, hk), a.d, vr);
    const float pj = expf(a.scale * lanes_dot(q, kr) - lse);
    const float ds = pj * (lanes_dot(dout, vr) - delta);
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) dq[e] += a.scale * ds * kr[e];
  }
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    const int64_t i = lane + 32 * e;
    if (i < a.d) a.dq[(t * a.H + h) * a.d + i] = dq[e];
  }
  if (lane == 0) {
    a.lse[t * a.H + h] = lse;
    a.delta[t * a.H + h] = delta;
  }
}

template <typename KvT>
__global__ void dkv_kernel(AttentionBackwardArgs a) {
  const int64_t item = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (item >= a.T * a.Hkv) return;
  const int64_t j = item / a.Hkv, hk = item % a.Hkv, G = a.H / a.Hkv;
  const int64_t pos = a.positions[j], first = j - pos, len = a.kv_lens[a.row_seq[j]];
  const int64_t last = a.window > 0 ? min(len - 1, pos + a.window - 1) : len - 1;
  const Paged<KvT> K = paged<KvT>(a, a.k_cache, j), V = paged<KvT>(a, a.v_cache, j);
  float kr[kMaxPerLane], vr[kMaxPerLane], q[kMaxPerLane], dout[kMaxPerLane], dk[kMaxPerLane] = {},
                                                                           dv[kMaxPerLane] = {};
  load_lanes(K.row(pos, hk), a.d, kr);
  load_lanes(V.row(pos, hk), a.d, vr);
  for (int64_t qp = pos; qp <= last; qp++) {
    const int64_t i = first + qp;
    for (int64_t g = 0; g < G; g++) {
      const int64_t h = hk * G + g;
      load_lanes(a.q + (i * a.H + h) * a.d, a.d, q);
      load_lanes(a.dout + (i * a.H + h) * a.d, a.d, dout);
      const float pij = expf(a.scale * lanes_dot(q, kr) - a.lse[i * a.H + h]);
      const float ds = pij * (lanes_dot(dout, vr) - a.delta[i * a.H + h]);
#pragma unroll
      for (int e = 0; e < kMaxPerLane; e++) {
        dv[e] += pij * dout[e];
        dk[e] += a.scale * ds * q[e];
      }
    }
  }
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; e++) {
    const int64_t i = lane + 32 * e;
    if (i < a.d) {
      a.dk[(j * a.Hkv + hk) * a.d + i] = dk[e];
      a.dv[(j * a.Hkv + hk) * a.d + i] = dv[e];
    }
  }
}

template <typename KvT>
void launch(const AttentionBackwardArgs& a, cudaStream_t stream) {
  dq_kernel<KvT><<<unsigned(ceil_div(a.T * a.H, kWarps)), kWarps * 32, 0, stream>>>(a);
  TILLER_CUDA_CHECK(cudaGetLastError());
  dkv_kernel<KvT><<<unsigned(ceil_div(a.T * a.Hkv, kWarps)), kWarps * 32, 0, stream>>>(a);
  TILLER_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void attention_backward(const AttentionBackwardArgs& a, cudaStream_t stream) {
  TILLER_CHECK(a.d > 0 && a.d <= 32 * kMaxPerLane, "attention_backward: head_dim ", a.d, " (at most ",
               32 * kMaxPerLane, ")");
  TILLER_CHECK(a.Hkv > 0 && a.H % a.Hkv == 0 && a.T * a.H < INT32_MAX * int64_t(kWarps), "attention_backward: H ",
               a.H, " Hkv ", a.Hkv, " T ", a.T);
  if (a.T == 0) return;
  if (a.kv_dtype == DType::BF16) {
    launch<__nv_bfloat16>(a, stream);
  } else {
    TILLER_CHECK(a.kv_dtype == DType::F32, "attention_backward: KV cache dtype ", dtype_name(a.kv_dtype));
    launch<float>(a, stream);
  }
}

}  // namespace tiller::cuda
