// The CPU backend: the executable specification of the Backend interface, multithreaded and
// vectorised (AVX2 / AVX-512 / AVX-512-BF16 chosen at run time).
#pragma once

#include <memory>

#include "engine/backend.h"
#include "engine/thread_pool.h"

namespace tiller {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads = 0);  // 0: one thread per core

  std::string name() const override;
  Device device() const override { return Device::Cpu; }
  ThreadPool& pool() { return pool_; }

  Buffer alloc(size_t bytes) override;
  void release(void* data) override;
  void upload(void* dst, const void* host, size_t bytes) override;
  void download(void* host, const void* src, size_t bytes) override;
  Tensor place_weight(const Tensor& host, std::vector<Buffer>& owned) override;
  void upload_layout(BatchLayout& layout) override;

  void embedding(const Tensor& table, const BatchLayout& b, Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps, Tensor& out) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void linear_many(const Tensor& x, std::span<const LinearJob> jobs) override;
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

  // Training ops (cpu_backend_train.cpp).
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

 private:
  ThreadPool pool_;
};

}  // namespace tiller
