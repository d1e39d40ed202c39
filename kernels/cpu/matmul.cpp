// Dense projections on the CPU: run-time dispatch (ISA; GEMV, GEMV-dot or GEMM by T), the split
// over threads, and the scalar reference. The kernels live in matmul_{generic,avx2,avx512}.cpp,
// matmul_gemv_dot_avx512.cpp and matmul_gemm_avx512.cpp.
#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/matmul_impl.h"
#include "kernels/cpu/qmatmul_impl.h"

namespace tiller::cpu {
namespace detail {
namespace {

// Below these amounts of work per thread, waking another thread costs more than it saves
// (a pool dispatch is ~1-2 us; a core streams ~15 GB/s of weights and does ~100 GFLOP/s).
constexpr int64_t kGemvMinBytesPerThread = 48 << 10;
constexpr int64_t kGemmMinFlopsPerThread = 1 << 19;
// x up to this many elements is packed by the caller alone: cheaper than a second dispatch.
constexpr int64_t kSerialPackElems = 64 << 10;

// GEMV splits N in multiples of 16 rows so no two threads write the same cache line of y.
constexpr int64_t kGemvRowGrain = 16;

using GemvFn = void (*)(const MatmulArgs&, int64_t, int64_t);
using QGemvFn = void (*)(const QGemvArgs&, int64_t, int64_t);

GemvFn gemv_for(IsaLevel level) {
  switch (level) {
    case IsaLevel::Avx512: return gemv_avx512;
    case IsaLevel::Avx2: return gemv_avx2;
    case IsaLevel::Generic: break;
  }
  return gemv_generic;
}

QGemvFn qgemv_for(IsaLevel level) {
  switch (level) {
    case IsaLevel::Avx512: return cpu_features().avx512_vnni ? qgemv_avx512vnni : qgemv_avx2;
    case IsaLevel::Avx2: return qgemv_avx2;
    case IsaLevel::Generic: break;
  }
  return qgemv_generic;
}

const GemmKernel& gemm_for(const MatmulPath& path, DType w_type, Algo algo) {
  switch (path.level) {
    case IsaLevel::Avx512:
      if (!(path.bf16_dot && w_type == DType::BF16)) return kGemmAvx512;
      return algo == Algo::GemvDot ? kGemvDotAvx512Bf16 : kGemmAvx512Bf16;
    case IsaLevel::Avx2: return kGemmAvx2;
    case IsaLevel::Generic: break;
  }
  return kGemmGeneric;
}

// How many threads are worth waking for `work` units when each should get at least `min_work`.
int useful_threads(const ThreadPool& pool, int64_t work, int64_t min_work, int64_t max_parts) {
  const int64_t by_work = std::max<int64_t>(1, work / min_work);
  return int(std::min<int64_t>({int64_t(pool.size()), by_work, std::max<int64_t>(1, max_parts)}));
}

// The pool takes a std::function: lambdas here capture one reference to a job on the stack, so
// the function object fits its small buffer and a call never allocates.

// Several matrices sharing x, split as one: the rows of all of them, in kGemvRowGrain units
// numbered across the matrices in order, divided into one contiguous range per thread. One matrix
// is the plain case.
struct GemvJob {
  std::span<const MatmulArgs> as;
  const int64_t* first_unit;  // [as.size() + 1]: the first unit of each matrix, then the total
  GemvFn fn;
  QGemvFn qfn;
  QuantizedX xq;  // x quantized once for every quantized matrix
  int parts;
  int64_t units_per_part;

  void run_units(int64_t u0, int64_t u1) const {
    for (size_t i = 0; i < as.size(); i++) {
      const int64_t a0 = std::max(u0, first_unit[i]), a1 = std::min(u1, first_unit[i + 1]);
      if (a0 >= a1) continue;
      const int64_t n0 = (a0 - first_unit[i]) * kGemvRowGrain;
      const int64_t n1 = std::min(as[i].N, (a1 - first_unit[i]) * kGemvRowGrain);
      const MatmulArgs& m = as[i];
      if (is_quantized(m.w_type)) qfn({xq, m.w, m.w_type, m.N, m.bias, m.y}, n0, n1);
      else fn(m, n0, n1);
    }
  }
};

void run_gemv_many(std::span<const MatmulArgs> as, const MatmulPath& path, ThreadPool& pool) {
  std::vector<int64_t> first_unit(as.size() + 1, 0);
  int64_t bytes = 0;
  bool quantized = false;
  for (size_t i = 0; i < as.size(); i++) {
    first_unit[i + 1] = first_unit[i] + (as[i].N + kGemvRowGrain - 1) / kGemvRowGrain;
    bytes += int64_t(dtype_bytes(as[i].w_type, as[i].N * as[i].K)) * std::max<int64_t>(1, as[i].T / 4);
    quantized = quantized || is_quantized(as[i].w_type);
  }
  const int64_t units = first_unit.back();
  const int parts = useful_threads(pool, bytes, path.split_always ? 1 : kGemvMinBytesPerThread, units);
  QuantizedX xq{};
  if (quantized) {
    const MatmulArgs& a = as.front();  // every target shares x
    xq = quantize_x(a.x, a.T, a.K, thread_scratch(0, quantized_x_bytes(a.T, a.K)), 0, a.T);
  }
  const GemvJob job{as, first_unit.data(), gemv_for(path.level), qgemv_for(path.level), xq, parts,
                    (units + parts - 1) / parts};
  if (parts == 1) {
    job.run_units(0, units);
    return;
  }
  pool.run([&job](int t, int) {
    if (t < job.parts) job.run_units(t * job.units_per_part, (t + 1) * job.units_per_part);
  });
}

void run_gemv(const MatmulArgs& a, const MatmulPath& path, ThreadPool& pool) {
  run_gemv_many(std::span(&a, 1), path, pool);
}

struct GemmJob {
  const MatmulArgs& a;
  const GemmKernel& g;
  void (*pack_x)(const float*, int64_t, int64_t, void*, int64_t, int64_t);
  void* xp;
  int parts;
  int64_t tblocks, panels;
};

// Block range [b0, b1) of `count` blocks for part t of `parts`.
void part_range(int64_t count, int t, int parts, int64_t* b0, int64_t* b1) {
  const int64_t per = (count + parts - 1) / parts;
  *b0 = std::min(count, t * per);
  *b1 = std::min(count, (t + 1) * per);
}

void run_gemm(const MatmulArgs& a, const MatmulPath& path, Algo algo, ThreadPool& pool) {
  const GemmKernel& g = gemm_for(path, a.w_type, algo);
  const auto pack_x = a.x_transposed ? g.pack_x_transposed : g.pack_x;
  TILLER_CHECK(pack_x, "matmul: this kernel cannot read x transposed");
  const int64_t tblocks = (a.T + g.mr - 1) / g.mr;
  const int64_t panels = (a.N + g.nr - 1) / g.nr;
  void* xp = thread_scratch(0, g.packed_x_bytes(a.T, a.K));
  const int64_t flops = 2 * a.T * a.N * a.K;
  const int parts = useful_threads(pool, flops, path.split_always ? 1 : kGemmMinFlopsPerThread,
                                   std::max(tblocks, panels));
  if (parts == 1) {
    pack_x(a.x, a.T, a.K, xp, 0, tblocks);
    g.compute(a, xp, 0, a.N, 0, tblocks);
    return;
  }
  const GemmJob job{a, g, pack_x, xp, parts, tblocks, panels};
  // Every thread reads all of x, so pack it first (in parallel when it is big), then split the
  // outputs.
  if (a.T * a.K <= kSerialPackElems) {
    pack_x(a.x, a.T, a.K, xp, 0, tblocks);
  } else {
    pool.run([&job](int t, int) {
      int64_t b0, b1;
      part_range(job.tblocks, t, int(std::min<int64_t>(job.parts, job.tblocks)), &b0, &b1);
      if (b0 < b1) job.pack_x(job.a.x, job.a.T, job.a.K, job.xp, b0, b1);
    });
  }
  // Split over weight panels (each thread then reads its own weights once); only when there are
  // too few panels to go round, split over row blocks (threads then pack the same panels).
  pool.run([&job](int t, int) {
    if (t >= job.parts) return;
    int64_t b0, b1;
    if (job.panels >= job.parts) {
      part_range(job.panels, t, job.parts, &b0, &b1);
      const int64_t n0 = std::min(job.a.N, b0 * job.g.nr), n1 = std::min(job.a.N, b1 * job.g.nr);
      if (n0 < n1) job.g.compute(job.a, job.xp, n0, n1, 0, job.tblocks);
    } else {
      part_range(job.tblocks, t, job.parts, &b0, &b1);
      if (b0 < b1) job.g.compute(job.a, job.xp, 0, job.a.N, b0, b1);
    }
  });
}

struct ScratchSlot {
  void* data = nullptr;
  size_t bytes = 0;
  ~ScratchSlot() { std::free(data); }
};

}  // namespace

void* thread_scratch(int slot, size_t bytes) {
  thread_local ScratchSlot slots[2];
  TILLER_CHECK(slot >= 0 && slot < 2);
  ScratchSlot& s = slots[slot];
  if (s.bytes < bytes) {
    std::free(s.data);
    s.bytes = (bytes + 4095) & ~size_t(4095);
    s.data = std::aligned_alloc(64, s.bytes);
    if (!s.data) fail("matmul: out of memory allocating ", s.bytes, " bytes of scratch");
  }
  return s.data;
}

MatmulPath default_path() {
  const CpuFeatures& f = cpu_features();
  MatmulPath p;
  p.level = f.level;
  p.bf16_dot = f.level == IsaLevel::Avx512 && f.avx512_bf16 && f.fast_bf16_dot;
  p.int8_prefill = f.int8_prefill;
  return p;
}

// Crossovers, measured with tiller-bench-matmul (--sweep, --algo) on Zen 4. The AVX-512 GEMV
// keeps F32 FMAs at ~85-95% of peak up to T ~ 100 while streaming the weights once, so the packed
// GEMM only pulls ahead when x (T x K) re-read per weight row block falls out of L2; vdpbf16ps
// doubles the peak, so BF16 weights leave the exact GEMV as soon as it stops being memory-bound.
// The AVX2 and generic GEMVs have fewer registers for row blocking and give way sooner.
constexpr int64_t kGemmMinRowsAvx512 = 128;  // F32 and F16 weights (F32 FMA either way)
constexpr int64_t kGemmMinRowsAvx2 = 32;
constexpr int64_t kGemmMinRowsGeneric = 16;
// Quantized weights: int8 GEMV below, exactly dequantized panels from here. The int8 GEMV is still
// faster at 32-64 rows, but a prompt of 32 tokens or more then gets the numbers its F32 weights
// give, not those of 8-bit activations (which move SmolLM2-135M's prompt logits by up to 1.5).
// TILLER_QUANTIZED_PREFILL=int8 (path.int8_prefill) keeps the int8 GEMV at every row count.
constexpr int64_t kQGemmMinRows = 32;
constexpr int64_t kDotMinRows = 8;     // BF16 weights on avx512_bf16: GEMV-dot from here
// ... and the packed vdpbf16ps GEMM from here: GEMV-dot pays a reduction per output, which a
// short K amortises poorly.
int64_t dot_gemm_min_rows(int64_t K) { return K < 1024 ? 64 : 192; }

Algo resolve_algo(const MatmulPath& path, DType w_type, int64_t T, int64_t K) {
  if (is_quantized(w_type)) {  // the int8 GEMV up to the row count where exact F32 panels win
    if (path.algo != Algo::Auto) return path.algo == Algo::GemvDot ? Algo::Gemv : path.algo;
    if (path.int8_prefill) return Algo::Gemv;
    return T < (path.level == IsaLevel::Generic ? kGemmMinRowsGeneric : kQGemmMinRows) ? Algo::Gemv : Algo::Gemm;
  }
  const bool dot = path.level == IsaLevel::Avx512 && path.bf16_dot && w_type == DType::BF16;
  if (path.algo != Algo::Auto) return (path.algo == Algo::GemvDot && !dot) ? Algo::Gemv : path.algo;
  if (dot) {
    if (T < kDotMinRows) return Algo::Gemv;
    return T < dot_gemm_min_rows(K) ? Algo::GemvDot : Algo::Gemm;
  }
  const int64_t gemm_min = path.level == IsaLevel::Avx512 ? kGemmMinRowsAvx512
                           : path.level == IsaLevel::Avx2 ? kGemmMinRowsAvx2
                                                          : kGemmMinRowsGeneric;
  return T < gemm_min ? Algo::Gemv : Algo::Gemm;
}

bool rounds_x_to_bf16(const MatmulPath& path, DType w_type, Algo algo) {
  return path.level == IsaLevel::Avx512 && path.bf16_dot && w_type == DType::BF16 &&
         algo != Algo::Gemv;
}

void matmul_with(const MatmulArgs& a, const MatmulPath& path, ThreadPool& pool) {
  TILLER_CHECK(a.T >= 0 && a.K >= 0 && a.N >= 0, "T=", a.T, " K=", a.K, " N=", a.N);
  if (!is_float(a.w_type) && !qgemv_reads(a.w_type)) {
    fail("matmul: weight dtype ", dtype_name(a.w_type),
         " is not supported: expected F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K or Q6_K");
  }
  if (is_quantized(a.w_type) && a.K % dtype_block(a.w_type) != 0)
    fail("matmul: ", dtype_name(a.w_type), " weights need K a multiple of ", dtype_block(a.w_type), ", found ", a.K);
  TILLER_CHECK(!(path.bf16_dot && path.level != IsaLevel::Avx512),
               "bf16_dot needs the avx512 path");
  if (a.T == 0 || a.N == 0) return;
  TILLER_CHECK(a.y && (a.K == 0 || (a.x && a.w)));
  if (a.K == 0) {  // an empty sum: just the bias
    for (int64_t t = 0; t < a.T; t++) {
      for (int64_t n = 0; n < a.N; n++) {
        const float b = a.bias ? a.bias[n] : 0.0f;
        a.y[t * a.N + n] = a.accumulate ? a.y[t * a.N + n] + b : b;
      }
    }
    return;
  }
  if (a.w_transposed || a.x_transposed || a.accumulate) {  // only the packed F32 GEMM reads these layouts
    TILLER_CHECK(is_float(a.w_type), "matmul: transposed or accumulating weights must be F32, F16 or BF16, found ",
                 dtype_name(a.w_type));
    MatmulPath f32 = path;
    f32.bf16_dot = false;
    run_gemm(a, f32, Algo::Gemm, pool);
    return;
  }
  const Algo algo = resolve_algo(path, a.w_type, a.T, a.K);
  if (algo == Algo::Gemv) {
    run_gemv(a, path, pool);
  } else {
    run_gemm(a, path, algo, pool);
  }
}

}  // namespace detail

void matmul(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N,
            const float* bias, float* y, ThreadPool& pool) {
  static const detail::MatmulPath path = detail::default_path();
  detail::matmul_with({x, T, K, w, w_type, N, bias, y}, path, pool);
}

void matmul_transposed(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N, float* y,
                       TransposedMatmul how, ThreadPool& pool) {
  static const detail::MatmulPath path = detail::default_path();
  detail::MatmulArgs a{x, T, K, w, w_type, N, nullptr, y};
  a.w_transposed = true;
  a.x_transposed = how.x_transposed;
  a.accumulate = how.accumulate;
  detail::matmul_with(a, path, pool);
}

void matmul_many(const float* x, int64_t T, int64_t K, std::span<const MatmulTarget> targets, ThreadPool& pool) {
  static const detail::MatmulPath path = detail::default_path();
  std::vector<detail::MatmulArgs> args;
  bool all_gemv = K > 0 && T > 0;
  for (const MatmulTarget& m : targets) {
    args.push_back({x, T, K, m.w, m.w_type, m.N, m.bias, m.y});
    all_gemv = all_gemv && (is_float(m.w_type) || detail::qgemv_reads(m.w_type)) &&
               detail::resolve_algo(path, m.w_type, T, K) == detail::Algo::Gemv;
  }
  if (!all_gemv) {  // a GEMM already fills the threads on its own
    for (const auto& a : args) detail::matmul_with(a, path, pool);
    return;
  }
  detail::run_gemv_many(args, path, pool);
}

void matmul_reference(const float* x, int64_t T, int64_t K, const void* w, DType w_type, int64_t N,
                      const float* bias, float* y) {
  if (!is_float(w_type) && !is_quantized(w_type)) {
    fail("matmul_reference: weight dtype ", dtype_name(w_type), " is not supported");
  }
  std::vector<float> row(size_t(std::max<int64_t>(K, 1)));
  const size_t row_bytes = dtype_bytes(w_type, K);
  for (int64_t n = 0; n < N; n++) {
    to_f32(w_type, static_cast<const char*>(w) + size_t(n) * row_bytes, row.data(), size_t(K));
    for (int64_t t = 0; t < T; t++) {
      double s = 0.0;
      for (int64_t k = 0; k < K; k++) s += double(x[t * K + k]) * double(row[size_t(k)]);
      if (bias) s += bias[n];
      y[t * N + n] = float(s);
    }
  }
}

}  // namespace tiller::cpu
