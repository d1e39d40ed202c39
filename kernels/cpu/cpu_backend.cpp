// CpuBackend: shape checks and dispatch to the CPU kernels.
#include "kernels/cpu/cpu_backend.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/error.h"
#include "engine/sampler.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul_impl.h"

namespace tiller {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kHugePage = 2u << 20;

void check_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::F32 || t.device != Device::Cpu)
    fail(op, ": ", what, " must be an F32 CPU tensor, found ", dtype_name(t.dtype));
}

}  // namespace

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads) {}

std::string CpuBackend::name() const {
  return "cpu (" + cpu::cpu_features().describe() + ", " + std::to_string(pool_.size()) + " threads)";
}

Buffer CpuBackend::alloc(size_t bytes) {
  const size_t rounded = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
  void* p = std::aligned_alloc(kAlign, rounded);
  if (!p) fail("out of memory allocating ", bytes, " bytes");
  // Large buffers (the KV cache, prefill activations) are streamed: back them with huge pages.
  if (rounded >= kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
  return Buffer(this, p, bytes, Device::Cpu);
}

void CpuBackend::release(void* data) { std::free(data); }
void CpuBackend::upload(void* dst, const void* host, size_t bytes) { std::memmove(dst, host, bytes); }
void CpuBackend::download(void* host, const void* src, size_t bytes) { std::memmove(host, src, bytes); }

// Weights are used in place, except block types the kernels do not read: those become BF16.
Tensor CpuBackend::place_weight(const Tensor& host, std::vector<Buffer>& owned) {
  if (!is_quantized(host.dtype) || cpu::detail::qgemv_reads(host.dtype)) return host;
  owned.push_back(alloc(dtype_bytes(DType::BF16, host.numel())));
  Tensor t = host;
  t.data = owned.back().data();
  t.dtype = DType::BF16;
  pool_.parallel_for(host.shape[0], 16, [&](int64_t r0, int64_t r1) {
    const int64_t row = host.row_size();
    convert(host.dtype, host.rows(r0, r1 - r0).data, DType::BF16, t.rows(r0, r1 - r0).data, (r1 - r0) * row);
  });
  return t;
}

void CpuBackend::upload_layout(BatchLayout& b) {
  auto view = [](std::vector<int32_t>& v) { return Tensor(v.data(), DType::I32, {int64_t(v.size())}); };
  b.device.tokens = view(b.tokens);
  b.device.positions = view(b.positions);
  b.device.row_seq = view(b.row_seq);
  b.device.slots = view(b.slots);
  b.device.block_tables = view(b.block_tables);
  b.device.kv_lens = view(b.kv_lens);
  b.device.logit_rows = view(b.logit_rows);
}

void CpuBackend::embedding(const Tensor& table, const BatchLayout& b, Tensor& out) {
  check_f32(out, "embedding", "out");
  TILLER_CHECK(out.shape[0] == b.n_rows() && out.shape[1] == table.shape[1]);
  cpu::embedding(table, b.tokens.data(), b.n_rows(), out.ptr<float>(), pool_);
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  check_f32(x, "rmsnorm", "x");
  check_f32(w, "rmsnorm", "weight");
  TILLER_CHECK(w.numel() == x.shape[x.rank - 1] && out.numel() == x.numel());
  const int64_t D = w.numel();
  cpu::rmsnorm(x.ptr<float>(), w.ptr<float>(), eps, x.numel() / D, D, out.ptr<float>(), pool_);
}

void CpuBackend::add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps, Tensor& out) {
  check_f32(residual, "add_rmsnorm", "residual");
  TILLER_CHECK(delta.numel() == residual.numel() && out.numel() == residual.numel());
  const int64_t D = w.numel();
  cpu::add_rmsnorm(residual.ptr<float>(), delta.ptr<float>(), w.ptr<float>(), eps, residual.numel() / D, D,
                   out.ptr<float>(), pool_);
}

void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  check_f32(x, "linear", "x");
  check_f32(y, "linear", "y");
  TILLER_CHECK(w.rank == 2, "weight must be a matrix, found ", w.shape_string());
  const int64_t T = x.shape[0], K = x.row_size(), N = w.shape[0];
  TILLER_CHECK(w.shape[1] == K && y.shape[0] == T && y.row_size() == N, "x ", x.shape_string(), " w ",
               w.shape_string(), " y ", y.shape_string());
  TILLER_CHECK(!bias || (bias->dtype == DType::F32 && bias->numel() == N));
  cpu::matmul(x.ptr<float>(), T, K, w.data, w.dtype, N, bias ? bias->ptr<float>() : nullptr, y.ptr<float>(), pool_);
}

void CpuBackend::linear_many(const Tensor& x, std::span<const LinearJob> jobs) {
  check_f32(x, "linear_many", "x");
  const int64_t T = x.shape[0], K = x.row_size();
  std::vector<cpu::MatmulTarget> targets;
  for (const LinearJob& j : jobs) {
    check_f32(*j.y, "linear_many", "y");
    TILLER_CHECK(j.w->rank == 2 && j.w->shape[1] == K && j.y->shape[0] == T && j.y->row_size() == j.w->shape[0]);
    TILLER_CHECK(!j.bias || (j.bias->dtype == DType::F32 && j.bias->numel() == j.w->shape[0]));
    targets.push_back({j.w->data, j.w->dtype, j.w->shape[0], j.bias ? j.bias->ptr<float>() : nullptr, j.y->ptr<float>()});
  }
  cpu::matmul_many(x.ptr<float>(), T, K, targets, pool_);
}

void CpuBackend::rope(Tensor& q, Tensor& k, const Tensor& inv_freq, const BatchLayout& b) {
  TILLER_CHECK(q.rank == 3 && k.rank == 3 && q.shape[2] == k.shape[2] && inv_freq.numel() * 2 == q.shape[2]);
  cpu::rope(q.ptr<float>(), k.ptr<float>(), inv_freq.ptr<float>(), b.positions.data(), q.shape[0], q.shape[1],
            k.shape[1], q.shape[2], pool_);
}

void CpuBackend::kv_append(KvStore& kv, int layer, const Tensor& k, const Tensor& v, const BatchLayout& b) {
  TILLER_CHECK(k.numel() == b.n_rows() * kv.n_kv_heads * kv.head_dim && v.numel() == k.numel());
  cpu::kv_append(kv, layer, k.ptr<float>(), v.ptr<float>(), b.slots.data(), b.n_rows());
}

void CpuBackend::attention(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                           const BatchLayout& b, Tensor& out) {
  TILLER_CHECK(q.rank == 3 && q.shape[2] == kv.head_dim && out.numel() == q.numel());
  TILLER_CHECK(kv.dtype == DType::F32 || kv.dtype == DType::BF16, "KV cache dtype ", dtype_name(kv.dtype));
  cpu::attention(q.ptr<float>(), kv, layer, window, scale, b, q.shape[1], out.ptr<float>(), pool_);
}

void CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  TILLER_CHECK(gate.numel() == up.numel() && out.numel() == gate.numel());
  cpu::silu_mul(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), pool_);
}

void CpuBackend::add(Tensor& x, const Tensor& y) {
  TILLER_CHECK(x.numel() == y.numel());
  cpu::add(x.ptr<float>(), y.ptr<float>(), x.numel());
}

void CpuBackend::gather_rows(const Tensor& x, const BatchLayout& b, Tensor& out) {
  const int64_t D = x.row_size();
  TILLER_CHECK(out.shape[0] == int64_t(b.logit_rows.size()) && out.row_size() == D);
  for (size_t i = 0; i < b.logit_rows.size(); i++)
    std::memcpy(out.ptr<float>() + int64_t(i) * D, x.ptr<float>() + int64_t(b.logit_rows[i]) * D, size_t(D) * 4);
}

void CpuBackend::index_select(const Tensor& x, const Tensor& rows, const Tensor& blocks, int64_t width, Tensor& out) {
  check_f32(x, "index_select", "x");
  check_f32(out, "index_select", "out");
  const int64_t K = x.row_size(), n = rows.empty() ? out.shape[0] : rows.numel();
  const int64_t k = blocks.empty() ? 1 : blocks.numel(), c = blocks.empty() ? K : width;
  TILLER_CHECK(out.shape[0] == n && out.row_size() == k * c && c > 0 && (blocks.empty() || k * c <= K), "index_select: x ",
               x.shape_string(), " out ", out.shape_string(), " blocks ", k, " x ", c);
  const int32_t* r = rows.empty() ? nullptr : rows.ptr<int32_t>();
  for (int64_t i = 0; i < n; i++) {
    const float* src = x.ptr<float>() + (r ? int64_t(r[i]) : i) * K;
    float* dst = out.ptr<float>() + i * k * c;
    for (int64_t j = 0; j < k; j++) {
      const int64_t col = blocks.empty() ? 0 : int64_t(blocks.ptr<int32_t>()[j]) * c;
      std::memcpy(dst + j * c, src + col, size_t(c) * sizeof(float));
    }
  }
}

void CpuBackend::index_add(Tensor& y, const Tensor& rows, const Tensor& src, const Tensor& bias) {
  check_f32(y, "index_add", "y");
  const int64_t N = y.row_size(), n = rows.empty() ? (src.empty() ? y.shape[0] : src.shape[0]) : rows.numel();
  TILLER_CHECK(n <= y.shape[0] && (src.empty() || (src.dtype == DType::F32 && src.shape[0] == n && src.row_size() == N)) &&
                   (bias.empty() || (bias.dtype == DType::F32 && bias.numel() == N)),
               "index_add: y ", y.shape_string(), " src ", src.shape_string(), " bias ", bias.shape_string());
  const int32_t* r = rows.empty() ? nullptr : rows.ptr<int32_t>();
  for (int64_t i = 0; i < n; i++) {
    float* dst = y.ptr<float>() + (r ? int64_t(r[i]) : i) * N;
    if (!src.empty()) cpu::add(dst, src.ptr<float>() + i * N, N);
    if (!bias.empty()) cpu::add(dst, bias.ptr<float>(), N);
  }
}

void CpuBackend::copy_kv_blocks(KvStore& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) {
  const size_t block_bytes = size_t(kv.n_kv_heads * kv.block_size * kv.head_dim) * dtype_size(kv.dtype);
  for (size_t l = 0; l < kv.k.size(); l++) {
    for (const auto& [src, dst] : src_dst) {
      for (Tensor* t : {&kv.k[l], &kv.v[l]}) {
        auto* base = static_cast<char*>(t->data);
        std::memcpy(base + size_t(dst) * block_bytes, base + size_t(src) * block_bytes, block_bytes);
      }
    }
  }
}

void CpuBackend::sample(Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> out_ids) {
  check_f32(logits, "sample", "logits");
  const int64_t V = logits.row_size();
  TILLER_CHECK(int64_t(requests.size()) == logits.shape[0] && out_ids.size() == requests.size());
  for (size_t i = 0; i < requests.size(); i++)
    out_ids[i] = sample_logits(std::span<float>(logits.ptr<float>() + int64_t(i) * V, size_t(V)), requests[i]);
}

}  // namespace tiller
