// The CUDA backend: the Backend interface on one GPU, with hand-written kernels (kernels/cuda/*.cu)
// and cuBLAS for the GEMMs. Weights and the KV cache stay in the model's dtype on the device;
// activations are F32; decode steps run as CUDA graphs (run_graph).
//
// This header needs no CUDA headers, so the CLI, tests and benchmarks include it as plain C++.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace tiller {

struct CudaBackendOptions {
  int device = 0;
  // linear() uses the hand-written GEMV up to this many rows and cuBLAS above; 0: cuBLAS always.
  // -1: the default (4), or the TILLER_CUDA_GEMV_ROWS environment variable.
  int64_t gemv_max_rows = -1;
  // > 0 forces attention to split every query group's keys into up to this many chunks (tests
  // use it to run the split + combine path on every shape); 0: chosen from the shapes.
  // -1: 0, or TILLER_CUDA_ATTENTION_SPLITS.
  int64_t attention_splits = -1;
  // Capture run_graph's ops as CUDA graphs (TILLER_CUDA_GRAPHS=0 turns them off).
  bool graphs = true;
};

// GPUs the CUDA runtime can use; 0 (never an exception) without a driver or device.
int cuda_device_count();

class CudaBackend final : public Backend {
 public:
  // Throws Error when the device cannot be used.
  explicit CudaBackend(const CudaBackendOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;  // "cuda (NVIDIA H200, 132 SMs, 140 GiB)"
  Device device() const override { return Device::Cuda; }

  Buffer alloc(size_t bytes) override;
  void release(void* data) override;
  void upload(void* dst, const void* host, size_t bytes) override;
  void download(void* host, const void* src, size_t bytes) override;
  Tensor place_weight(const Tensor& host, std::vector<Buffer>& owned) override;
  // Also pads block_tables to a power-of-two max_blocks (so decode graphs see stable shapes) and
  // builds attention's row tiles.
  void upload_layout(BatchLayout& layout) override;

  void embedding(const Tensor& table, const BatchLayout& b, Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void rope(Tensor& q, Tensor& k, const Tensor& inv_freq, const BatchLayout& b) override;
  void kv_append(KvStore& kv, int layer, const Tensor& k, const Tensor& v, const BatchLayout& b) override;
  void attention(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale, const BatchLayout& b,
                 Tensor& out) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add(Tensor& x, const Tensor& y) override;
  void gather_rows(const Tensor& x, const BatchLayout& b, Tensor& out) override;
  void index_select(const Tensor& x, const Tensor& rows, const Tensor& blocks, int64_t block_width, Tensor& out) override;
  void index_add(Tensor& y, const Tensor& rows, const Tensor& src, const Tensor& bias) override;
  void copy_kv_blocks(KvStore& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) override;
  void sample(Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> out_ids) override;

  // Training ops (cuda_backend_train.cpp).
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& x, float value) override;
  void add_scaled(Tensor& x, const Tensor& y, float alpha) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) override;
  void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* dbias, bool accumulate) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx, Tensor* dw,
                        bool accumulate) override;
  void silu_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate, Tensor& dup) override;
  void attention_backward(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                          const BatchLayout& b, const Tensor& out, const Tensor& dout, Tensor& dq, Tensor& dk,
                          Tensor& dv) override;
  void embedding_backward(const Tensor& dx, const BatchLayout& b, Tensor& dtable) override;
  void gather_rows_backward(const Tensor& dout, const BatchLayout& b, Tensor& dx) override;
  void cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& loss) override;
  double sum_squares(const Tensor& x) override;
  void adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& step) override;

  // First call of a key: runs `record` eagerly (sizing scratch, warming cuBLAS); second call:
  // captures it as a CUDA graph and launches it; later calls: launches the graph.
  void run_graph(std::span<const int64_t> key, const std::function<void()>& record) override;

  // Waits for all queued work.
  void synchronize();
  // The cudaStream_t every op is queued on (for benchmarks timing with events).
  void* stream_handle() const;
  void* cublas_handle() const;  // the cublasHandle_t bound to that stream
  int sm_count() const;
  size_t graphs_captured() const;  // graphs instantiated so far (tests check that replay happens)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tiller
