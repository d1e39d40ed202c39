// The narrow, transformer-shaped interface every compute backend implements (CPU, CUDA).
//
// Not a tensor library: a dozen ops a pre-norm decoder needs, over a ragged batch of rows and a
// paged KV cache. The CPU backend (kernels/cpu) is the executable specification; the CUDA
// backend (kernels/cuda) must match it op for op on the same table of tests.
//
// Conventions: activations are F32 [rows, features] row-major; weights keep their stored dtype
// (F32/F16/BF16) and HF layout [out, in]; the KV cache is in the store's dtype. Every op is
// asynchronous on devices that have streams; download() synchronizes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/buffer.h"
#include "engine/tensor.h"

namespace tiller {

// Index data of one forward pass, built on the host by the decoder from a Batch and the KV cache.
// Backend::upload_layout makes the device views (the CPU backend points them at the vectors); a
// device backend may widen block_tables to a larger max_blocks (padding with -1) so that shapes
// stay the same from one decode step to the next.
struct BatchLayout {
  std::vector<int32_t> tokens;        // [T]
  std::vector<int32_t> positions;     // [T] position of the row in its sequence
  std::vector<int32_t> row_seq;       // [T] index of the row's sequence among this batch's S
  std::vector<int32_t> slots;         // [T] cache slot of the row's K/V: block * block_size + offset
  std::vector<int32_t> block_tables;  // [S, max_blocks] block ids, -1 past the end
  std::vector<int32_t> kv_lens;       // [S] keys each sequence has once this batch is appended
  std::vector<int32_t> logit_rows;    // [R] rows whose logits are wanted, ascending
  int32_t n_seqs = 0;
  int32_t max_blocks = 0;
  int32_t max_kv_len = 0;

  struct DeviceViews {
    Tensor tokens, positions, row_seq, slots, block_tables, kv_lens, logit_rows;  // I32
  } device;
  Buffer device_storage;  // memory behind `device` (empty on the CPU)

  int64_t n_rows() const { return int64_t(tokens.size()); }
};

// The paged K/V memory of every layer. Each of k[l], v[l] is [n_blocks, Hkv, block_size, d]:
// within a block, one head's keys are contiguous, so attention streams them.
struct KvStore {
  std::vector<Tensor> k, v;  // [L] of [n_blocks, Hkv, block_size, d]
  int64_t n_blocks = 0;
  int64_t block_size = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  DType dtype = DType::F32;
};

// Decoding settings of one sequence (HF semantics; see engine/sampler.h).
struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  // OpenAI's additive penalties over the generated tokens (not the prompt), as vLLM applies them:
  // logit -= frequency_penalty · count + presence_penalty · (count > 0). 0: off
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // OpenAI logit_bias: added to a token's logit before any other processing.
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool greedy() const { return temperature <= 0.0f || top_k == 1; }
};

// One row of a sampling call: its settings, the uniform draw in [0, 1) that picks the token (drawn
// by the host so every backend samples the same token from the same distribution), and the tokens
// the repetition penalty applies to.
struct SampleRequest {
  SamplingParams params;
  double uniform = 0.0;
  std::span<const int32_t> penalty_tokens;
  size_t n_prompt = 0;  // penalty_tokens[n_prompt:] are the generated ones (frequency / presence)
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // e.g. "cpu (avx512+bf16, 2 threads)"
  virtual Device device() const = 0;

  // --- memory ---
  virtual Buffer alloc(size_t bytes) = 0;
  virtual void release(void* data) = 0;  // called by Buffer
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;  // waits for pending work
  // Makes a weight given as a CPU view (e.g. into a mapped file) usable by the ops. The CPU
  // backend uses it in place; a device backend copies it into memory it appends to `owned`.
  virtual Tensor place_weight(const Tensor& host, std::vector<Buffer>& owned) = 0;
  virtual void upload_layout(BatchLayout& layout) = 0;

  // --- ops ---
  // out[t] = table[tokens[t]]                           table [V, D] any float, out [T, D]
  virtual void embedding(const Tensor& table, const BatchLayout& b, Tensor& out) = 0;
  // out = x · rsqrt(mean(x²) + eps) · w                 x, out [T, D] (may alias); w [D] F32
  virtual void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  // residual += delta; out = rmsnorm(residual) · w      the block boundary, fused
  virtual void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps, Tensor& out) = 0;
  // y = x · wᵀ (+ bias)                                 x [T, K], w [N, K], bias [N] F32 or null, y [T, N]
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // Several projections of the same x at once (q/k/v, gate/up): y_i = x · w_iᵀ (+ bias_i), the
  // same results as one linear() each. A backend may run them as one job; this default does not.
  struct LinearJob {
    const Tensor* w;
    const Tensor* bias;  // null when absent
    Tensor* y;
  };
  virtual void linear_many(const Tensor& x, std::span<const LinearJob> jobs) {
    for (const LinearJob& j : jobs) linear(x, *j.w, j.bias, *j.y);
  }
  // Rotates q [T, H, d] and k [T, Hkv, d] in place by each row's position (HF rotate-half
  // pairing i, i + d/2), angle = position · inv_freq[i] in F32.  inv_freq [d/2] F32
  virtual void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, const BatchLayout& b) = 0;
  // Stores each row's k, v [T, Hkv, d] at its slot in layer `layer` of the cache.
  virtual void kv_append(KvStore& kv, int layer, const Tensor& k, const Tensor& v, const BatchLayout& b) = 0;
  // out[t, h] = softmax(scale · q[t, h] · Kᵀ) · V over the keys of row t's sequence at positions
  // (pos_t - window, pos_t] (window 0: [0, pos_t]); query head h reads KV head h / (H / Hkv).
  // q, out [T, H, d]
  virtual void attention(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                         const BatchLayout& b, Tensor& out) = 0;
  // out = silu(gate) · up                               [T, F]; out may alias gate
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // x += y                                              same shape
  virtual void add(Tensor& x, const Tensor& y) = 0;
  // out[i] = x[logit_rows[i]]                           x [T, D], out [R, D]
  virtual void gather_rows(const Tensor& x, const BatchLayout& b, Tensor& out) = 0;
  // Row and column-block selection (per-row steering deltas: the rows of one profile, the o_proj
  // columns of its heads):
  //   out[i, j·c + e] = x[rows[i], blocks[j]·c + e]       x [T, K] F32, out [n, k·c]
  // rows I32 [n] (empty: rows 0..n-1), blocks I32 [k] (empty: all K columns, c = K). Indices live
  // on the backend's device and are in range (checked by whoever builds them).
  virtual void index_select(const Tensor& x, const Tensor& rows, const Tensor& blocks, int64_t block_width,
                            Tensor& out) = 0;
  // y[rows[i]] += src[i] + bias                         y [T, N]; rows I32 [n] distinct (empty: 0..n-1);
  //                                                     src [n, N] F32 or empty; bias [N] F32 or empty
  virtual void index_add(Tensor& y, const Tensor& rows, const Tensor& src, const Tensor& bias) = 0;
  // Copies whole blocks (every layer, K and V): copy-on-write of shared cache blocks.
  virtual void copy_kv_blocks(KvStore& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) = 0;
  // Chooses one token per logits row; logits [R, V] may be modified. Only ids leave the device.
  virtual void sample(Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> out_ids) = 0;

  // --- training: backward ops and the optimizer (train/) ---
  // A backward op takes its forward's inputs and the gradient of its output and writes, or with
  // `accumulate` adds to, the gradients of its inputs. Gradients and trained parameters are F32.

  // dst = src                                           same dtype and size, both on this device
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
  // x[i] = value                                        F32
  virtual void fill(Tensor& x, float value) = 0;
  // x += alpha · y                                      F32, same size
  virtual void add_scaled(Tensor& x, const Tensor& y, float alpha) = 0;
  // out = a · b elementwise                             F32, same size; out may alias a or b
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // Gradient of linear() with respect to x: dx (+)= dy · w     dy [T, N], w [N, K] any float, dx [T, K]
  virtual void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) = 0;
  // With respect to the weight and bias: dw (+)= dyᵀ · x, dbias (+)= Σ_t dy[t]
  //   dy [T, N], x [T, K], dw [N, K] F32, dbias [N] F32 or null
  virtual void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* dbias,
                                      bool accumulate) = 0;
  // Gradient of rmsnorm(x, w): dx (+)= ∂/∂x, and dw += ∂/∂w when dw is given.
  //   x, dy, dx [T, D]; w, dw [D] F32
  virtual void rmsnorm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                                Tensor* dw, bool accumulate) = 0;
  // Gradient of silu_mul: dgate = dout · up · silu'(gate), dup = dout · silu(gate)     [T, F]
  virtual void silu_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                                 Tensor& dup) = 0;
  // Gradient of attention() for a batch of whole sequences: each sequence's rows are consecutive,
  // at positions 0, 1, 2, ..., so every key is a row of the batch. q the roped queries and out
  // attention's output [T, H, d]; dout the gradient of out. Writes dq [T, H, d] and dk, dv
  // [T, Hkv, d] (the roped key and the value of each row; a KV head sums over its query heads).
  virtual void attention_backward(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                                  const BatchLayout& b, const Tensor& out, const Tensor& dout, Tensor& dq,
                                  Tensor& dk, Tensor& dv) = 0;
  // Gradient of embedding(): dtable[tokens[t]] += dx[t]        dx [T, D], dtable [V, D] F32
  virtual void embedding_backward(const Tensor& dx, const BatchLayout& b, Tensor& dtable) = 0;
  // Gradient of gather_rows(): dx[logit_rows[i]] += dout[i]    dout [R, D], dx [T, D]
  virtual void gather_rows_backward(const Tensor& dout, const BatchLayout& b, Tensor& dx) = 0;
  // Softmax cross-entropy of each row against its target: loss[r] = logsumexp(logits[r]) -
  // logits[r, targets[r]]; logits is overwritten with weights[r] · (softmax(logits[r]) - onehot),
  // the gradient of Σ_r weights[r] · loss[r].   logits [R, V] F32, targets [R] I32, weights, loss [R] F32
  virtual void cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& loss) = 0;
  // Σ x² over every element, summed in double; waits for pending work.   x F32
  virtual double sum_squares(const Tensor& x) = 0;
  // One AdamW update of param with grad · grad_scale, as torch.optim.AdamW computes it (decoupled
  // weight decay first; step_size = lr / (1 - beta1^t), denom = sqrt(v) / sqrt(1 - beta2^t) + eps).
  //   param, grad, m, v: F32, same size
  struct AdamWStep {
    float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
    float step_size = 0;            // lr / (1 - beta1^t), computed on the host in double as torch does
    float bias_correction2_sqrt = 1;  // sqrt(1 - beta2^t)
    float grad_scale = 1;           // gradient clipping's factor
  };
  virtual void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& step) = 0;

  // --- graphs ---
  // Runs `record` (a sequence of the ops above), or a replay of it. `key` names everything the ops
  // turn into kernel arguments: shapes, buffer addresses, the layout's sizes. Calls with equal keys
  // must issue the same ops on the same memory, differing only in what the memory holds (the
  // uploaded layout, the cache, the activations), so a device backend may record the ops once per
  // key and replay them (CUDA graphs); `record` must then not upload, download or read back.
  // The default (CPU) just runs `record`.
  virtual void run_graph(std::span<const int64_t> key, const std::function<void()>& record) { record(); }
};

}  // namespace tiller
