// CudaBackend: memory, layout upload, shape checks and dispatch to the kernel launchers, cuBLAS
// GEMMs, and the CUDA-graph cache behind run_graph.
#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <unordered_map>

#include "engine/error.h"
#include "engine/sampler.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace tiller {
namespace {

constexpr size_t kCublasWorkspace = size_t(32) << 20;
constexpr size_t kMaxGraphs = 64;  // least recently used graphs beyond this are destroyed
constexpr int64_t kDefaultGemvRows = 4;

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

void check_device_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::F32 || t.device != Device::Cuda || !t.data)
    fail(op, ": ", what, " must be an F32 CUDA tensor, found ", dtype_name(t.dtype),
         t.device == Device::Cuda ? " on CUDA" : " on the CPU");
}

void check_device(const Tensor& t, const char* op, const char* what) {
  if (t.device != Device::Cuda || !t.data) fail(op, ": ", what, " must be a CUDA tensor");
}

cudaDataType cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: fail("linear: weight dtype ", dtype_name(t), " is not F32, BF16 or F16");
  }
}

int64_t next_pow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p *= 2;
  return p;
}

// Pinned host memory for asynchronous uploads; `done` marks when the last copy out of it finished.
struct Staging {
  void* host = nullptr;
  size_t bytes = 0;
  cudaEvent_t done = nullptr;

  void* reserve(size_t n) {
    if (done) TILLER_CUDA_CHECK(cudaEventSynchronize(done));  // the previous copy has read it
    if (n > bytes) {
      if (host) TILLER_CUDA_CHECK(cudaFreeHost(host));
      bytes = std::max(n, 2 * bytes);
      TILLER_CUDA_CHECK(cudaMallocHost(&host, bytes));
    }
    return host;
  }
  void copy_to(void* dst, size_t n, cudaStream_t stream) {
    TILLER_CUDA_CHECK(cudaMemcpyAsync(dst, host, n, cudaMemcpyHostToDevice, stream));
    TILLER_CUDA_CHECK(cudaEventRecord(done, stream));
  }
};

// Device scratch that only grows; growing one that ops inside graphs use invalidates the graphs
// (they captured its address).
struct Arena {
  bool in_graphs = true;
  void* ptr = nullptr;
  size_t bytes = 0;
};

struct LayoutExtras {
  const int32_t* tile_rows = nullptr;  // [n_tiles, kAttentionTileRows]
  int64_t n_tiles = 0, max_tile_rows = 0;
};

struct GraphEntry {
  std::vector<int64_t> key;
  cudaGraphExec_t exec = nullptr;
};

}  // namespace

struct CudaBackend::Impl {
  CudaBackendOptions options;
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  void* cublas_workspace = nullptr;
  Staging layout_staging, sample_staging;
  Arena gemm_x, attention, sample_scratch, sample_io;
  std::unordered_map<const void*, LayoutExtras> extras;  // by BatchLayout::device_storage address
  std::list<GraphEntry> graphs;                            // most recently used first
  std::map<std::vector<int64_t>, std::list<GraphEntry>::iterator> graph_index;
  std::map<std::vector<int64_t>, int> seen_once;  // keys run eagerly once, not yet captured
  bool capturing = false;
  size_t n_captured = 0;

  void clear_graphs() {
    for (GraphEntry& g : graphs) {
      if (g.exec) cudaGraphExecDestroy(g.exec);
    }
    graphs.clear();
    graph_index.clear();
    seen_once.clear();
  }

  void* ensure(Arena& a, size_t bytes, const char* what) {
    if (bytes <= a.bytes) return a.ptr;
    if (capturing)
      fail("CUDA graph capture: ", what, " scratch would grow from ", a.bytes, " to ", bytes,
           " bytes; the graph key does not cover a shape the ops depend on");
    if (a.in_graphs) clear_graphs();  // they hold the old address
    const size_t n = std::max(bytes, a.bytes + a.bytes / 2);
    TILLER_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (a.ptr) TILLER_CUDA_CHECK(cudaFree(a.ptr));
    a.ptr = nullptr;
    a.bytes = 0;
    if (cudaMalloc(&a.ptr, n) != cudaSuccess) {
      (void)cudaGetLastError();
      fail("CUDA out of memory: ", what, " scratch of ", n, " bytes");
    }
    a.bytes = n;
    return a.ptr;
  }

  void not_capturing(const char* what) const {
    if (capturing) fail("CUDA graph capture: ", what, " inside run_graph's record (only ops may be recorded)");
  }
};

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver / no device: clear the error, report none
    return 0;
  }
  return n;
}

CudaBackend::CudaBackend(const CudaBackendOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  if (m.options.gemv_max_rows < 0) m.options.gemv_max_rows = env_int("TILLER_CUDA_GEMV_ROWS", kDefaultGemvRows);
  m.options.gemv_max_rows = std::min(m.options.gemv_max_rows, cuda::kGemvMaxRows);
  if (m.options.attention_splits < 0) m.options.attention_splits = env_int("TILLER_CUDA_ATTENTION_SPLITS", 0);
  if (env_int("TILLER_CUDA_GRAPHS", 1) == 0) m.options.graphs = false;

  const int count = cuda_device_count();
  if (count == 0) fail("--device cuda: no CUDA device is available (no driver, or no GPU visible)");
  if (options.device < 0 || options.device >= count)
    fail("CUDA device ", options.device, " does not exist (", count, " visible)");
  TILLER_CUDA_CHECK(cudaSetDevice(options.device));
  TILLER_CUDA_CHECK(cudaGetDeviceProperties(&m.prop, options.device));
  TILLER_CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  TILLER_CUDA_CHECK(cublasCreate(&m.cublas));
  TILLER_CUDA_CHECK(cublasSetStream(m.cublas, m.stream));
  // A fixed workspace: cuBLAS must not allocate while a graph is being captured.
  m.sample_scratch.in_graphs = m.sample_io.in_graphs = false;  // sampling is never captured
  TILLER_CUDA_CHECK(cudaMalloc(&m.cublas_workspace, kCublasWorkspace));
  TILLER_CUDA_CHECK(cublasSetWorkspace(m.cublas, m.cublas_workspace, kCublasWorkspace));
  for (Staging* s : {&m.layout_staging, &m.sample_staging})
    TILLER_CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
}

CudaBackend::~CudaBackend() {
  Impl& m = *impl_;
  cudaStreamSynchronize(m.stream);
  m.clear_graphs();
  for (Arena* a : {&m.gemm_x, &m.attention, &m.sample_scratch, &m.sample_io}) cudaFree(a->ptr);
  for (Staging* s : {&m.layout_staging, &m.sample_staging}) {
    if (s->host) cudaFreeHost(s->host);
    if (s->done) cudaEventDestroy(s->done);
  }
  if (m.cublas) cublasDestroy(m.cublas);
  cudaFree(m.cublas_workspace);
  if (m.stream) cudaStreamDestroy(m.stream);
}

std::string CudaBackend::name() const {
  const cudaDeviceProp& p = impl_->prop;
  return "cuda (" + std::string(p.name) + ", sm_" + std::to_string(p.major * 10 + p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.totalGlobalMem >> 30) + " GiB)";
}

int CudaBackend::sm_count() const { return impl_->prop.multiProcessorCount; }
void* CudaBackend::stream_handle() const { return impl_->stream; }
void* CudaBackend::cublas_handle() const { return impl_->cublas; }
size_t CudaBackend::graphs_captured() const { return impl_->n_captured; }
void CudaBackend::synchronize() { TILLER_CUDA_CHECK(cudaStreamSynchronize(impl_->stream)); }

// --- memory ----------------------------------------------------------------------------------------

Buffer CudaBackend::alloc(size_t bytes) {
  impl_->not_capturing("alloc");
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(bytes, 1)) != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("CUDA out of memory allocating ", bytes, " bytes (", free_b >> 20, " MiB of ", total_b >> 20, " MiB free)");
  }
  return Buffer(this, p, bytes, Device::Cuda);
}

void CudaBackend::release(void* data) {
  // Called from Buffer's destructor: report, never throw. Queued work may still use the memory.
  impl_->extras.erase(data);
  if (cudaStreamSynchronize(impl_->stream) != cudaSuccess || cudaFree(data) != cudaSuccess)
    std::fprintf(stderr, "tiller: warning: freeing CUDA memory failed: %s\n", cudaGetErrorString(cudaGetLastError()));
}

void CudaBackend::upload(void* dst, const void* host, size_t bytes) {
  impl_->not_capturing("upload");
  if (bytes == 0) return;
  TILLER_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyDefault, impl_->stream));
  TILLER_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));  // the caller may reuse `host` at once
}

void CudaBackend::download(void* host, const void* src, size_t bytes) {
  impl_->not_capturing("download");
  if (bytes == 0) return;
  TILLER_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDefault, impl_->stream));
  TILLER_CUDA_CHECK(cudaStreamSynchronize(impl_->stream));
}

// Block-quantized weights (GGUF) are dequantized to BF16 on the host, a slice of rows at a time,
// until the CUDA kernels read those formats themselves.
Tensor CudaBackend::place_weight(const Tensor& host, std::vector<Buffer>& owned) {
  TILLER_CHECK(host.device == Device::Cpu && host.data, "place_weight expects a CPU tensor");
  Tensor t = host;
  t.device = Device::Cuda;
  if (!is_quantized(host.dtype)) {
    owned.push_back(alloc(host.nbytes()));
    upload(owned.back().data(), host.data, host.nbytes());
    t.data = owned.back().data();
    return t;
  }
  t.dtype = DType::BF16;
  owned.push_back(alloc(t.nbytes()));
  t.data = owned.back().data();
  const int64_t rows = host.rank == 0 ? 1 : host.shape[0], row = host.row_size();
  const int64_t slice = std::max<int64_t>(1, (int64_t(8) << 20) / std::max<int64_t>(row, 1));  // ~16 MiB of BF16
  std::vector<uint16_t> bf16(size_t(std::min(rows, slice) * row));
  for (int64_t r0 = 0; r0 < rows; r0 += slice) {
    const int64_t n = std::min(slice, rows - r0);
    convert(host.dtype, host.rows(r0, n).data, DType::BF16, bf16.data(), n * row);
    upload(t.rows(r0, n).data, bf16.data(), size_t(n * row) * 2);
  }
  return t;
}

void CudaBackend::upload_layout(BatchLayout& b) {
  Impl& m = *impl_;
  m.not_capturing("upload_layout");
  const int64_t T = b.n_rows(), S = b.n_seqs;
  TILLER_CHECK(int64_t(b.positions.size()) == T && int64_t(b.row_seq.size()) == T && int64_t(b.slots.size()) == T &&
               int64_t(b.kv_lens.size()) == S && int64_t(b.block_tables.size()) == S * b.max_blocks);

  // Widen the block tables to a power of two: decode steps keep one shape (one graph) until a
  // sequence outgrows it.
  const int64_t width = next_pow2(std::max<int32_t>(b.max_blocks, 1));
  if (width != b.max_blocks) {
    std::vector<int32_t> wide(size_t(S * width), -1);
    for (int64_t s = 0; s < S; s++)
      std::copy_n(b.block_tables.begin() + s * b.max_blocks, b.max_blocks, wide.begin() + s * width);
    b.block_tables = std::move(wide);
    b.max_blocks = int32_t(width);
  }

  // Attention tiles: each sequence's rows in batch order, kAttentionTileRows at a time.
  std::vector<std::vector<int32_t>> seq_rows(size_t(std::max<int64_t>(S, 0)));
  for (int64_t t = 0; t < T; t++) {
    const int32_t s = b.row_seq[size_t(t)];
    TILLER_CHECK(s >= 0 && s < S, "row ", t, " names sequence ", s, " of ", S);
    seq_rows[size_t(s)].push_back(int32_t(t));
  }
  constexpr int64_t kTile = cuda::kAttentionTileRows;
  std::vector<int32_t> tiles;
  int64_t max_tile_rows = 0;
  for (const auto& rows : seq_rows) {
    for (size_t i = 0; i < rows.size(); i += size_t(kTile)) {
      const size_t n = std::min(rows.size() - i, size_t(kTile));
      tiles.insert(tiles.end(), rows.begin() + long(i), rows.begin() + long(i + n));
      tiles.insert(tiles.end(), size_t(kTile) - n, -1);
      max_tile_rows = std::max<int64_t>(max_tile_rows, int64_t(n));
    }
  }
  const int64_t n_tiles = int64_t(tiles.size()) / kTile;

  // One device buffer, sections 64 elements apart; the same sizes give the same offsets.
  const std::vector<int32_t>* parts[] = {&b.tokens, &b.positions, &b.row_seq, &b.slots, &b.block_tables,
                                         &b.kv_lens, &b.logit_rows, &tiles};
  size_t offsets[8], total = 0;
  for (int i = 0; i < 8; i++) {
    offsets[i] = total;
    total += (parts[i]->size() + 63) / 64 * 64;
  }
  const size_t bytes = std::max<size_t>(total, 1) * sizeof(int32_t);
  if (b.device_storage.device() != Device::Cuda || b.device_storage.size() < bytes)
    b.device_storage = alloc(std::max(bytes, 2 * b.device_storage.size()));
  auto* staged = static_cast<int32_t*>(m.layout_staging.reserve(bytes));
  for (int i = 0; i < 8; i++) std::copy(parts[i]->begin(), parts[i]->end(), staged + offsets[i]);
  m.layout_staging.copy_to(b.device_storage.data(), bytes, m.stream);

  auto* base = static_cast<int32_t*>(b.device_storage.data());
  auto view = [&](int i) { return Tensor(base + offsets[i], DType::I32, {int64_t(parts[i]->size())}, Device::Cuda); };
  b.device.tokens = view(0);
  b.device.positions = view(1);
  b.device.row_seq = view(2);
  b.device.slots = view(3);
  b.device.block_tables = view(4);
  b.device.kv_lens = view(5);
  b.device.logit_rows = view(6);
  m.extras[b.device_storage.data()] = LayoutExtras{base + offsets[7], n_tiles, max_tile_rows};
}

// --- ops -------------------------------------------------------------------------------------------

void CudaBackend::embedding(const Tensor& table, const BatchLayout& b, Tensor& out) {
  check_device(table, "embedding", "table");
  check_device_f32(out, "embedding", "out");
  TILLER_CHECK(table.rank == 2 && out.shape[0] == b.n_rows() && out.row_size() == table.shape[1], "table ",
               table.shape_string(), " out ", out.shape_string());
  cuda::embedding(table.data, table.dtype, table.shape[0], table.shape[1], b.device.tokens.ptr<int32_t>(), b.n_rows(),
                  out.ptr<float>(), impl_->stream);
}

void CudaBackend::rmsnorm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  check_device_f32(x, "rmsnorm", "x");
  check_device_f32(w, "rmsnorm", "weight");
  check_device_f32(out, "rmsnorm", "out");
  const int64_t D = w.numel();
  TILLER_CHECK(D == x.shape[x.rank - 1] && out.numel() == x.numel(), "x ", x.shape_string(), " w ", w.shape_string());
  cuda::rmsnorm(x.ptr<float>(), w.ptr<float>(), eps, x.numel() / D, D, out.ptr<float>(), impl_->stream);
}

void CudaBackend::add_rmsnorm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps, Tensor& out) {
  check_device_f32(residual, "add_rmsnorm", "residual");
  check_device_f32(delta, "add_rmsnorm", "delta");
  check_device_f32(w, "add_rmsnorm", "weight");
  check_device_f32(out, "add_rmsnorm", "out");
  const int64_t D = w.numel();
  TILLER_CHECK(D == residual.shape[residual.rank - 1] && delta.numel() == residual.numel() &&
               out.numel() == residual.numel());
  cuda::add_rmsnorm(residual.ptr<float>(), delta.ptr<float>(), w.ptr<float>(), eps, residual.numel() / D, D,
                    out.ptr<float>(), impl_->stream);
}

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  Impl& m = *impl_;
  check_device_f32(x, "linear", "x");
  check_device_f32(y, "linear", "y");
  check_device(w, "linear", "weight");
  TILLER_CHECK(w.rank == 2, "weight must be a matrix, found ", w.shape_string());
  const int64_t T = x.shape[0], K = x.row_size(), N = w.shape[0];
  TILLER_CHECK(w.shape[1] == K && y.shape[0] == T && y.row_size() == N, "x ", x.shape_string(), " w ",
               w.shape_string(), " y ", y.shape_string());
  if (bias) check_device_f32(*bias, "linear", "bias");
  TILLER_CHECK(!bias || bias->numel() == N);
  TILLER_CHECK(T < INT32_MAX && K < INT32_MAX && N < INT32_MAX);
  if (T == 0) return;
  const float* b = bias ? bias->ptr<float>() : nullptr;
  if (T <= m.options.gemv_max_rows && cuda::gemv_supported(T, K, w.dtype, x.data, w.data)) {
    cuda::gemv(x.ptr<float>(), T, K, w.data, w.dtype, N, b, y.ptr<float>(), m.stream);
    return;
  }
  // cuBLAS, column-major: yᵀ [N, T] = W [K, N]ᵀ · xᵀ [K, T], i.e. the row-major y = x · Wᵀ.
  // BF16/F16 weights: x is rounded to the weight dtype so the tensor cores take both operands;
  // accumulation and output stay F32.
  const void* xb = x.data;
  if (w.dtype != DType::F32) {
    void* conv = m.ensure(m.gemm_x, size_t(T * K) * dtype_size(w.dtype), "GEMM input");
    cuda::convert_f32(x.ptr<float>(), w.dtype, conv, T * K, m.stream);
    xb = conv;
  }
  const float one = 1.0f, zero = 0.0f;
  const cudaDataType wt = cuda_type(w.dtype);
  TILLER_CUDA_CHECK(cublasGemmEx(m.cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(T), int(K), &one, w.data, wt, int(K),
                                 xb, wt, int(K), &zero, y.data, CUDA_R_32F, int(N), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
  if (b) cuda::add_bias(y.ptr<float>(), b, T, N, m.stream);
}

void CudaBackend::rope(Tensor& q, Tensor& k, const Tensor& inv_freq, const BatchLayout& b) {
  check_device_f32(q, "rope", "q");
  check_device_f32(k, "rope", "k");
  check_device_f32(inv_freq, "rope", "inv_freq");
  TILLER_CHECK(q.rank == 3 && k.rank == 3 && q.shape[0] == b.n_rows() && k.shape[0] == b.n_rows() &&
                   q.shape[2] == k.shape[2] && inv_freq.numel() * 2 == q.shape[2],
               "q ", q.shape_string(), " k ", k.shape_string(), " inv_freq ", inv_freq.shape_string());
  cuda::rope(q.ptr<float>(), k.ptr<float>(), inv_freq.ptr<float>(), b.device.positions.ptr<int32_t>(), q.shape[0],
             q.shape[1], k.shape[1], q.shape[2], impl_->stream);
}

void CudaBackend::kv_append(KvStore& kv, int layer, const Tensor& k, const Tensor& v, const BatchLayout& b) {
  check_device_f32(k, "kv_append", "k");
  check_device_f32(v, "kv_append", "v");
  TILLER_CHECK(layer >= 0 && size_t(layer) < kv.k.size(), "layer ", layer);
  TILLER_CHECK(k.numel() == b.n_rows() * kv.n_kv_heads * kv.head_dim && v.numel() == k.numel());
  check_device(kv.k[size_t(layer)], "kv_append", "K cache");
  cuda::kv_append(kv.k[size_t(layer)].data, kv.v[size_t(layer)].data, kv.dtype, kv.n_blocks, kv.n_kv_heads,
                  kv.block_size, kv.head_dim, k.ptr<float>(), v.ptr<float>(), b.device.slots.ptr<int32_t>(),
                  b.n_rows(), impl_->stream);
}

void CudaBackend::attention(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                            const BatchLayout& b, Tensor& out) {
  Impl& m = *impl_;
  check_device_f32(q, "attention", "q");
  check_device_f32(out, "attention", "out");
  TILLER_CHECK(q.rank == 3 && q.shape[0] == b.n_rows() && q.shape[2] == kv.head_dim && out.numel() == q.numel(),
               "q ", q.shape_string(), " head_dim ", kv.head_dim);
  TILLER_CHECK(layer >= 0 && size_t(layer) < kv.k.size(), "layer ", layer);
  auto it = m.extras.find(b.device_storage.data());
  TILLER_CHECK(it != m.extras.end() && b.device.positions.device == Device::Cuda,
               "attention: the batch layout was not uploaded by this backend (call upload_layout)");
  cuda::AttentionArgs a;
  a.q = q.ptr<float>();
  a.k_cache = kv.k[size_t(layer)].data;
  a.v_cache = kv.v[size_t(layer)].data;
  a.kv_dtype = kv.dtype;
  a.out = out.ptr<float>();
  a.positions = b.device.positions.ptr<int32_t>();
  a.row_seq = b.device.row_seq.ptr<int32_t>();
  a.block_tables = b.device.block_tables.ptr<int32_t>();
  a.tile_rows = it->second.tile_rows;
  a.T = q.shape[0];
  a.H = q.shape[1];
  a.Hkv = kv.n_kv_heads;
  a.d = kv.head_dim;
  a.block_size = kv.block_size;
  a.n_blocks = kv.n_blocks;
  a.max_blocks = b.max_blocks;
  a.n_tiles = it->second.n_tiles;
  a.max_tile_rows = it->second.max_tile_rows;
  a.window = window;
  a.scale = scale;
  a.force_splits = m.options.attention_splits;
  a.n_sms = m.prop.multiProcessorCount;
  if (a.T == 0) return;
  const size_t need = cuda::attention_scratch_bytes(a);
  void* scratch = need ? m.ensure(m.attention, need, "attention") : nullptr;
  cuda::attention(a, scratch, need, m.stream);
}

void CudaBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_device_f32(gate, "silu_mul", "gate");
  check_device_f32(up, "silu_mul", "up");
  check_device_f32(out, "silu_mul", "out");
  TILLER_CHECK(gate.numel() == up.numel() && out.numel() == gate.numel());
  cuda::silu_mul(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), impl_->stream);
}

void CudaBackend::add(Tensor& x, const Tensor& y) {
  check_device_f32(x, "add", "x");
  check_device_f32(y, "add", "y");
  TILLER_CHECK(x.numel() == y.numel());
  cuda::add(x.ptr<float>(), y.ptr<float>(), x.numel(), impl_->stream);
}

void CudaBackend::gather_rows(const Tensor& x, const BatchLayout& b, Tensor& out) {
  check_device_f32(x, "gather_rows", "x");
  check_device_f32(out, "gather_rows", "out");
  const int64_t D = x.row_size(), R = int64_t(b.logit_rows.size());
  TILLER_CHECK(out.shape[0] == R && out.row_size() == D);
  cuda::gather_rows(x.ptr<float>(), D, b.device.logit_rows.ptr<int32_t>(), R, out.ptr<float>(), impl_->stream);
}

void CudaBackend::index_select(const Tensor& x, const Tensor& rows, const Tensor& blocks, int64_t width, Tensor& out) {
  check_device_f32(x, "index_select", "x");
  check_device_f32(out, "index_select", "out");
  const int64_t K = x.row_size(), n = rows.empty() ? out.shape[0] : rows.numel();
  const int64_t k = blocks.empty() ? 1 : blocks.numel(), c = blocks.empty() ? K : width;
  TILLER_CHECK(out.shape[0] == n && out.row_size() == k * c, "index_select: x ", x.shape_string(), " out ",
               out.shape_string());
  cuda::index_select(x.ptr<float>(), K, rows.empty() ? nullptr : rows.ptr<int32_t>(), n,
                     blocks.empty() ? nullptr : blocks.ptr<int32_t>(), k, c, out.ptr<float>(), impl_->stream);
}

void CudaBackend::index_add(Tensor& y, const Tensor& rows, const Tensor& src, const Tensor& bias) {
  check_device_f32(y, "index_add", "y");
  const int64_t N = y.row_size(), n = rows.empty() ? (src.empty() ? y.shape[0] : src.shape[0]) : rows.numel();
  TILLER_CHECK(n <= y.shape[0] && (src.empty() || (src.shape[0] == n && src.row_size() == N)) &&
                   (bias.empty() || bias.numel() == N),
               "index_add: y ", y.shape_string(), " src ", src.shape_string(), " bias ", bias.shape_string());
  if (!src.empty()) check_device_f32(src, "index_add", "src");
  if (!bias.empty()) check_device_f32(bias, "index_add", "bias");
  cuda::index_add(y.ptr<float>(), N, rows.empty() ? nullptr : rows.ptr<int32_t>(), n,
                  src.empty() ? nullptr : src.ptr<float>(), bias.empty() ? nullptr : bias.ptr<float>(), impl_->stream);
}

void CudaBackend::copy_kv_blocks(KvStore& kv, std::span<const std::pair<int32_t, int32_t>> src_dst) {
  impl_->not_capturing("copy_kv_blocks");
  const size_t block_bytes = size_t(kv.n_kv_heads * kv.block_size * kv.head_dim) * dtype_size(kv.dtype);
  for (size_t l = 0; l < kv.k.size(); l++) {
    for (const auto& [src, dst] : src_dst) {
      TILLER_CHECK(src >= 0 && dst >= 0 && src < kv.n_blocks && dst < kv.n_blocks, "copy_kv_blocks ", src, " -> ", dst);
      for (Tensor* t : {&kv.k[l], &kv.v[l]}) {
        auto* base = static_cast<char*>(t->data);
        TILLER_CUDA_CHECK(cudaMemcpyAsync(base + size_t(dst) * block_bytes, base + size_t(src) * block_bytes,
                                          block_bytes, cudaMemcpyDeviceToDevice, impl_->stream));
      }
    }
  }
}

void CudaBackend::sample(Tensor& logits, std::span<const SampleRequest> requests, std::span<int32_t> out_ids) {
  Impl& m = *impl_;
  m.not_capturing("sample");
  check_device_f32(logits, "sample", "logits");
  const int64_t R = int64_t(requests.size()), V = logits.row_size();
  TILLER_CHECK(R == logits.shape[0] && out_ids.size() == requests.size(), "sample: ", R, " requests for logits ",
               logits.shape_string());
  if (R == 0) return;

  // Per-row settings, the repetition-penalty tokens and the additive offsets (each deduplicated
  // and in range: applied once each).
  std::vector<cuda::SampleRow> rows(static_cast<size_t>(R));
  std::vector<int32_t> tokens;
  std::vector<cuda::TokenOffset> offsets;
  bool any_sampled = false, any_adjustment = false;
  auto append_offsets = [&](const std::vector<LogitOffset>& add, int32_t& begin, int32_t& end) {
    begin = int32_t(offsets.size());
    for (const LogitOffset& o : add) offsets.push_back({o.token, o.amount});
    end = int32_t(offsets.size());
    any_adjustment = any_adjustment || end > begin;
  };
  for (int64_t r = 0; r < R; r++) {
    const SampleRequest& q = requests[size_t(r)];
    cuda::SampleRow& row = rows[size_t(r)];
    row.temperature = q.params.temperature;
    row.top_p = q.params.top_p;
    row.min_p = q.params.min_p;
    row.repetition_penalty = q.params.repetition_penalty;
    row.uniform = q.uniform;
    row.top_k = q.params.top_k;
    row.greedy = q.params.greedy() ? 1 : 0;
    row.penalty_begin = row.penalty_end = int32_t(tokens.size());
    if (q.params.repetition_penalty != 1.0f && !q.penalty_tokens.empty()) {
      std::vector<int32_t> seen(q.penalty_tokens.begin(), q.penalty_tokens.end());
      std::sort(seen.begin(), seen.end());
      seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
      for (int32_t t : seen) {
        if (t >= 0 && t < V) tokens.push_back(t);
      }
      row.penalty_end = int32_t(tokens.size());
      any_adjustment = any_adjustment || row.penalty_end > row.penalty_begin;
    } else {
      row.repetition_penalty = 1.0f;
    }
    append_offsets(logit_bias_offsets(q.params, V), row.bias_begin, row.bias_end);
    append_offsets(output_penalty_offsets(q, V), row.offset_begin, row.offset_end);
    any_sampled = any_sampled || !row.greedy;
  }

  // Device copies: rows | tokens | offsets | ids, through pinned staging.
  auto padded = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const size_t rows_bytes = padded(size_t(R) * sizeof(cuda::SampleRow));
  const size_t tokens_bytes = padded(tokens.size() * sizeof(int32_t));
  const size_t offsets_bytes = padded(offsets.size() * sizeof(cuda::TokenOffset));
  const size_t in_bytes = rows_bytes + tokens_bytes + offsets_bytes;
  const size_t ids_bytes = size_t(R) * sizeof(int32_t);
  char* io = static_cast<char*>(m.ensure(m.sample_io, in_bytes + ids_bytes, "sampling"));
  char* staged = static_cast<char*>(m.sample_staging.reserve(in_bytes));
  std::memcpy(staged, rows.data(), rows.size() * sizeof(cuda::SampleRow));
  if (!tokens.empty()) std::memcpy(staged + rows_bytes, tokens.data(), tokens.size() * sizeof(int32_t));
  if (!offsets.empty())
    std::memcpy(staged + rows_bytes + tokens_bytes, offsets.data(), offsets.size() * sizeof(cuda::TokenOffset));
  m.sample_staging.copy_to(io, in_bytes, m.stream);

  cuda::SampleArgs a;
  a.logits = logits.ptr<float>();
  a.rows = reinterpret_cast<const cuda::SampleRow*>(io);
  a.penalty_tokens = reinterpret_cast<const int32_t*>(io + rows_bytes);
  a.offsets = reinterpret_cast<const cuda::TokenOffset*>(io + rows_bytes + tokens_bytes);
  a.out_ids = reinterpret_cast<int32_t*>(io + in_bytes);
  a.R = R;
  a.V = V;
  a.any_sampled = any_sampled;
  a.any_adjustment = any_adjustment;
  const size_t need = any_sampled ? cuda::sample_scratch_bytes(R, V) : 0;
  void* scratch = need ? m.ensure(m.sample_scratch, need, "sampling") : nullptr;
  cuda::sample(a, scratch, need, m.stream);
  download(out_ids.data(), a.out_ids, ids_bytes);
}

// --- graphs ----------------------------------------------------------------------------------------

void CudaBackend::run_graph(std::span<const int64_t> key, const std::function<void()>& record) {
  Impl& m = *impl_;
  if (!m.options.graphs || m.capturing) return record();
  std::vector<int64_t> k(key.begin(), key.end());
  auto found = m.graph_index.find(k);
  if (found == m.graph_index.end()) {
    if (m.seen_once.emplace(k, 1).second) {  // first sighting: eager, so scratch and cuBLAS are ready
      if (m.seen_once.size() > 4 * kMaxGraphs) m.seen_once.clear();
      record();
      return;
    }
    m.seen_once.erase(k);
    cudaGraph_t graph = nullptr;
    m.capturing = true;
    TILLER_CUDA_CHECK(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeThreadLocal));
    try {
      record();
    } catch (...) {
      m.capturing = false;
      if (cudaStreamEndCapture(m.stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw;
    }
    m.capturing = false;
    TILLER_CUDA_CHECK(cudaStreamEndCapture(m.stream, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    TILLER_CUDA_CHECK(inst);
    m.graphs.push_front(GraphEntry{k, exec});
    m.graph_index[k] = m.graphs.begin();
    m.n_captured++;
    while (m.graphs.size() > kMaxGraphs) {
      cudaGraphExecDestroy(m.graphs.back().exec);
      m.graph_index.erase(m.graphs.back().key);
      m.graphs.pop_back();
    }
    found = m.graph_index.find(k);
  } else {
    m.graphs.splice(m.graphs.begin(), m.graphs, found->second);  // most recently used
  }
  TILLER_CUDA_CHECK(cudaGraphLaunch(found->second->exec, m.stream));
}

}  // namespace tiller
