// tiller-bench-matmul: throughput of the CPU dense projections beside the memory roofline.
//
// Measures STREAM copy bandwidth (read + write bytes) and read-only bandwidth with the same
// threads, then times y[T, N] = x[T, K] · w[N, K]ᵀ for model-shaped matrices. Decode-sized T
// reads weights cold: calls rotate over enough copies to overflow the L3, as a model's layers
// do. Prints time, GFLOP/s, GB/s of weight bytes and the fraction of STREAM.
//
//   tiller-bench-matmul [--threads N] [--isa generic|avx2|avx512|avx512-nobf16]
//                       [--algo auto|gemv|gemvdot|gemm] [--T 1,4,16,512] [--dtype bf16,f32,f16]
//                       [--shape 8192x2048,...] [--sweep] [--min-ms 60]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_impl.h"
#include "bench/roofline.h"
#include "bench/flags.h"

namespace {

constexpr const char* kUsage = R"(Usage: tiller-bench-matmul [--threads N] [--isa generic|avx2|avx512|avx512-nobf16]
                           [--algo auto|gemv|gemvdot|gemm] [--T 1,4,16,512] [--dtype bf16,f32,f16]
                           [--shape 8192x2048,...] [--sweep] [--min-ms 60]
CPU projection throughput (GFLOP/s, weight GB/s) beside the measured memory bandwidth.
)";

using namespace tiller;
using namespace tiller::cpu;
using bench::Bandwidth;
using bench::Clock;
using bench::measure_bandwidth;
using bench::seconds_since;
using bench::for_each_flag;

struct Shape {
  const char* name;
  int64_t N, K;  // weight [N, K]
};

// SmolLM2-135M per-layer projections and lm_head, then Llama-3.2-1B-sized ones.
const Shape kShapes[] = {
    {"smol.q/o", 576, 576},   {"smol.k/v", 192, 576},       {"smol.gate/up", 1536, 576},
    {"smol.down", 576, 1536}, {"smol.lm_head", 49152, 576}, {"1b.up", 8192, 2048},
    {"1b.down", 2048, 8192},  {"1b.k/v", 512, 2048},        {"1b.lm_head", 128256, 2048},
};

struct Options {
  int threads = 0;
  std::string isa;
  detail::Algo algo = detail::Algo::Auto;
  std::vector<int64_t> Ts = {1, 4, 16, 512};
  std::vector<DType> dtypes = {DType::BF16, DType::F32, DType::F16};
  std::vector<Shape> shapes;
  bool sweep = false;
  double min_ms = 60;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for_each_flag(argc, argv, kUsage, [&](const std::string& a, auto& next) {
    if (a == "--threads") {
      o.threads = std::atoi(next().c_str());
    } else if (a == "--isa") {
      o.isa = next();
    } else if (a == "--algo") {
      const std::string v = next();
      o.algo = v == "gemv"      ? detail::Algo::Gemv
               : v == "gemm"    ? detail::Algo::Gemm
               : v == "gemvdot" ? detail::Algo::GemvDot
                                : detail::Algo::Auto;
    } else if (a == "--T") {
      o.Ts.clear();
      for (const auto& s : split(next())) o.Ts.push_back(std::atoll(s.c_str()));
    } else if (a == "--dtype") {
      o.dtypes.clear();
      for (auto s : split(next())) {
        for (char& c : s) c = char(std::toupper(c));
        const auto d = dtype_from_name(s);
        if (!d || !(is_float(*d) || is_quantized(*d)))
          fail("--dtype ", s, ": expected f32, f16, bf16 or a block type (q8_0, q4_0, q4_1, q4_k, q6_k)");
        o.dtypes.push_back(*d);
      }
    } else if (a == "--shape") {
      for (const auto& s : split(next())) {
        const size_t x = s.find('x');
        if (x == std::string::npos) fail("--shape ", s, ": expected NxK, e.g. 8192x2048");
        o.shapes.push_back({strdup(s.c_str()), std::atoll(s.substr(0, x).c_str()),
                            std::atoll(s.substr(x + 1).c_str())});
      }
    } else if (a == "--sweep") {
      o.sweep = true;
    } else if (a == "--min-ms") {
      o.min_ms = std::atof(next().c_str());
    } else {
      return false;
    }
    return true;
  });
  if (o.shapes.empty()) o.shapes.assign(std::begin(kShapes), std::end(kShapes));
  return o;
}

detail::MatmulPath make_path(const Options& o) {
  detail::MatmulPath p = detail::default_path();
  const CpuFeatures& f = cpu_features();
  if (o.isa == "generic") {
    p.level = IsaLevel::Generic;
  } else if (o.isa == "avx2") {
    if (!f.avx2) fail("--isa avx2: this CPU has no avx2");
    p.level = IsaLevel::Avx2;
  } else if (o.isa == "avx512" || o.isa == "avx512-nobf16") {
    if (!f.avx512) fail("--isa ", o.isa, ": this CPU has no avx512");
    p.level = IsaLevel::Avx512;
  } else if (!o.isa.empty()) {
    fail("--isa ", o.isa, ": expected generic, avx2, avx512 or avx512-nobf16");
  }
  p.bf16_dot = p.level == IsaLevel::Avx512 && f.avx512_bf16 && o.isa != "avx512-nobf16";  // even where not the default
  p.algo = o.algo;
  return p;
}

// Weight copies laid out back to back (each at a 2-byte offset from a page, like a tensor inside
// a safetensors file), filled with small random values.
struct WeightPool {
  std::vector<char> mem;
  std::vector<const void*> copies;
  size_t next = 0;
  const void* get() {
    const void* p = copies[next];
    next = (next + 1) % copies.size();
    return p;
  }
};

// Quantized: 64 random blocks with F16 scales of a realistic size (never denormal products), tiled.
std::vector<char> quantized_prototype(DType dt) {
  std::mt19937 rng(3);
  std::vector<char> blocks(64 * dtype_block_bytes(dt));
  for (char& c : blocks) c = char(rng());
  const size_t bb = dtype_block_bytes(dt);
  const size_t scale_at = dt == DType::Q6_K ? 208 : dt == DType::Q2_K ? 80 : dt == DType::Q3_K ? 108 : 0;
  const bool two = dt == DType::Q4_1 || dt == DType::Q5_1 || dt == DType::Q4_K || dt == DType::Q5_K || dt == DType::Q2_K;
  for (size_t b = 0; b < 64; b++) {
    for (size_t f = 0; f < (two ? 2u : 1u); f++) {
      const uint16_t h = f32_to_f16(0.01f + 0.001f * float(b % 7));
      std::memcpy(blocks.data() + b * bb + scale_at + 2 * f, &h, 2);
    }
  }
  return blocks;
}

WeightPool make_weights(DType dt, int64_t N, int64_t K, bool cold) {
  const size_t bytes = dtype_bytes(dt, N * K);
  const size_t stride = (bytes + 4095) / 4096 * 4096 + 4096;
  const size_t want = cold ? std::max<size_t>(256u << 20, 2 * stride) : stride;
  const size_t count = std::max<size_t>(1, want / stride);
  WeightPool w;
  w.mem.resize(count * stride + 4096);
  // One random page of values, tiled: fast to fill, and finite for every dtype.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> f(1024);
  for (float& v : f) v = u(rng);
  std::vector<char> page(4096);
  if (is_quantized(dt)) page = quantized_prototype(dt);  // a whole number of blocks
  else from_f32(dt, f.data(), page.data(), 4096 / dtype_size(dt));
  char* base = w.mem.data() + (4096 - reinterpret_cast<uintptr_t>(w.mem.data()) % 4096);
  for (size_t c = 0; c < count; c++) {
    char* p = base + c * stride + 2;
    for (size_t o = 0; o < bytes; o += page.size())
      std::memcpy(p + o, page.data(), std::min<size_t>(page.size(), bytes - o));
    w.copies.push_back(p);
  }
  return w;
}

struct Timing {
  double best_s, median_s;
};

Timing time_matmul(const detail::MatmulPath& path, const Shape& s, DType dt, int64_t T,
                   ThreadPool& pool, double min_ms) {
  const bool cold = T <= 64;
  WeightPool w = make_weights(dt, s.N, s.K, cold);
  std::vector<float> x(size_t(T * s.K)), y(size_t(T * s.N)), bias(size_t(s.N), 0.5f);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& v : x) v = u(rng);
  auto call = [&] {
    detail::matmul_with({x.data(), T, s.K, w.get(), dt, s.N, bias.data(), y.data()}, path, pool);
  };
  call();  // warm up: scratch buffers, page faults of x/y
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 3 || (seconds_since(start) * 1e3 < min_ms && times.size() < 100000)) {
    const auto t0 = Clock::now();
    call();
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  return {times.front(), times[times.size() / 2]};
}

const char* algo_name(const detail::MatmulPath& p, DType dt, int64_t T, int64_t K) {
  const detail::Algo a = detail::resolve_algo(p, dt, T, K);
  const bool dot = detail::rounds_x_to_bf16(p, dt, a);
  switch (a) {
    case detail::Algo::Gemv: return "gemv";
    case detail::Algo::GemvDot: return "gemv-bf16dot";
    default: return dot ? "gemm-bf16dot" : "gemm";
  }
}

void print_row(const char* name, const Shape& s, DType dt, int64_t T, const char* algo,
               const Timing& t, double stream) {
  const double flops = 2.0 * double(T) * double(s.N) * double(s.K);
  const double wbytes = double(dtype_bytes(dt, s.N * s.K));
  const double gbs = wbytes / t.best_s / 1e9;
  std::printf("%-14s %6lldx%-5lld %-4s T=%-4lld %-12s %10.1f %10.1f %8.1f %7.1f %6.0f%%\n", name,
              (long long)s.N, (long long)s.K, std::string(dtype_name(dt)).c_str(), (long long)T,
              algo, t.best_s * 1e6, t.median_s * 1e6, flops / t.best_s / 1e9, gbs,
              100.0 * gbs / stream);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    ThreadPool pool(o.threads);
    const detail::MatmulPath path = make_path(o);
    const Bandwidth bw = measure_bandwidth(pool);
    const double stream = bw.copy_gbs;
    std::printf("cpu: %s; path: level %d%s; threads: %d\n", cpu_features().describe().c_str(),
                int(path.level), path.bf16_dot ? " +bf16dot" : "", pool.size());
    std::printf(
        "bandwidth: STREAM copy %.1f GB/s (read + write), read-only %.1f GB/s; %%strm below "
        "is weight bytes / time vs STREAM copy\n",
        bw.copy_gbs, bw.read_gbs);
    std::printf("%-14s %12s %-4s %-6s %-12s %10s %10s %8s %7s %7s\n", "shape", "NxK", "type", "T",
                "algo", "best_us", "median_us", "GFLOP/s", "w_GB/s", "%strm");
    if (o.sweep) {
      // GEMV vs GEMM across T: where the crossover lies for each dtype.
      for (const Shape& s : o.shapes) {
        for (DType dt : o.dtypes) {
          for (int64_t T : {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256}) {
            for (detail::Algo a : {detail::Algo::Gemv, detail::Algo::GemvDot, detail::Algo::Gemm}) {
              detail::MatmulPath p = path;
              p.algo = a;
              if (a == detail::Algo::GemvDot && detail::resolve_algo(p, dt, T, s.K) != a) continue;
              print_row(s.name, s, dt, T, algo_name(p, dt, T, s.K),
                        time_matmul(p, s, dt, T, pool, o.min_ms), stream);
            }
          }
        }
      }
      return 0;
    }
    for (const Shape& s : o.shapes) {
      for (DType dt : o.dtypes) {
        for (int64_t T : o.Ts) {
          if (2.0 * T * s.N * s.K > 100e9) continue;  // a full-vocabulary prefill: seconds per call
          print_row(s.name, s, dt, T, algo_name(path, dt, T, s.K),
                    time_matmul(path, s, dt, T, pool, o.min_ms), stream);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiller-bench-matmul: %s\n", e.what());
    return 1;
  }
  return 0;
}
