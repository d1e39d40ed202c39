// Tests of the CPU dense projections: every ISA path this machine has x both algorithms x dtypes,
// against the scalar reference, plus bitwise determinism across thread counts.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_impl.h"
#include "guarded_buffer.h"
#include "test_util.h"

namespace {

using namespace tiller;
using namespace tiller::cpu;
using detail::Algo;
using detail::MatmulArgs;
using detail::MatmulPath;
using test::GuardedBuffer;

struct Variant {
  std::string name;
  MatmulPath path;
};

// Every path the CPU itself supports (TILLER_CPU_ISA only caps what matmul() picks, not this).
std::vector<Variant> variants() {
  const CpuFeatures& f = cpu_features();
  std::vector<Variant> v;
  auto add = [&](const char* name, IsaLevel level, bool bf16_dot, Algo algo) {
    MatmulPath p;
    p.level = level;
    p.bf16_dot = bf16_dot;
    p.algo = algo;
    p.split_always = true;
    v.push_back({name, p});
  };
  add("generic/gemv", IsaLevel::Generic, false, Algo::Gemv);
  add("generic/gemm", IsaLevel::Generic, false, Algo::Gemm);
  if (f.avx2) {
    add("avx2/gemv", IsaLevel::Avx2, false, Algo::Gemv);
    add("avx2/gemm", IsaLevel::Avx2, false, Algo::Gemm);
  }
  if (f.avx512) {
    add("avx512/gemv", IsaLevel::Avx512, false, Algo::Gemv);
    add("avx512/gemm", IsaLevel::Avx512, false, Algo::Gemm);
  }
  if (f.avx512_bf16) {
    add("avx512/gemm-bf16dot", IsaLevel::Avx512, true, Algo::Gemm);
    add("avx512/gemv-bf16dot", IsaLevel::Avx512, true, Algo::GemvDot);  // = gemv unless BF16
  }
  return v;
}

ThreadPool& pool(int n) {
  static ThreadPool p1(1), p2(2), p3(3);
  return n == 1 ? p1 : n == 2 ? p2 : p3;
}

// Random weights in [-1, 1), stored in `dt`.
GuardedBuffer make_weights(DType dt, int64_t N, int64_t K, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> f(size_t(N * K));
  for (float& v : f) v = u(rng);
  GuardedBuffer w(std::max<size_t>(1, f.size() * dtype_size(dt)));
  from_f32(dt, f.data(), w.data(), f.size());
  return w;
}

GuardedBuffer guarded_copy(const std::vector<float>& v) {
  GuardedBuffer b(std::max<size_t>(1, v.size() * 4));
  std::memcpy(b.data(), v.data(), v.size() * 4);
  return b;
}

std::vector<float> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

std::vector<float> round_to_bf16(const float* x, size_t n) {
  std::vector<float> r(n);
  for (size_t i = 0; i < n; i++) r[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return r;
}

// F32 accumulation of K products of magnitude <= 1: a few ulps times sqrt(K) in practice, far
// below one missing product (a dropped K remainder or column fails this by orders of magnitude).
double tolerance(int64_t K, float ref) {
  return 5e-6 * std::sqrt(double(K)) + 1e-5 * std::fabs(ref);
}

// Number of outputs that are NaN/Inf or outside tolerance; describes the first in `first`.
int64_t count_bad(const float* y, const float* ref, int64_t T, int64_t N, int64_t K,
                  std::string* first) {
  int64_t bad = 0;
  for (int64_t i = 0; i < T * N; i++) {
    const bool ok = std::isfinite(y[i]) && std::fabs(double(y[i]) - ref[i]) <= tolerance(K, ref[i]);
    if (!ok && bad++ == 0 && first) {
      *first = "t=" + std::to_string(i / N) + " n=" + std::to_string(i % N) +
               " got=" + std::to_string(y[i]) + " ref=" + std::to_string(ref[i]);
    }
  }
  return bad;
}

struct Shape {
  int64_t K, N;
};

// Odd sizes around every vector width and tile edge (16-lane tails, 14/6/4-row tiles, 32/16/8
// column panels, 128/256-deep k slices), plus aligned ones.
constexpr int64_t kTs[] = {1, 2, 3, 7, 16, 19, 33, 111, 500};
constexpr Shape kShapes[] = {{1, 1},    {7, 19},  {19, 7},   {64, 64},  {111, 33},
                             {500, 17}, {577, 9}, {33, 577}, {257, 48}, {129, 100}};
constexpr int64_t kMaxWork = 3'000'000;  // T * K * N per case: keeps the reference fast

struct Case {
  DType dt;
  int64_t T, K, N;
  GuardedBuffer w, x, bias;  // bias: only read when with_bias
  bool with_bias;
  std::vector<float> ref, ref_rounded;  // ref_rounded: x rounded to bf16 first
  MatmulArgs args(float* y) const {
    return {x.as<float>(), T, K, w.data(), dt, N, with_bias ? bias.as<float>() : nullptr, y};
  }
};

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  std::mt19937 rng(1234);
  int parity = 0;
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t T : kTs) {
      for (const Shape& s : kShapes) {
        if (T * s.K * s.N > kMaxWork) continue;
        // Bias on and off alternate, so each shape and T sees both over the three dtypes.
        const bool with_bias = (parity++ % 2) == 1;
        const std::vector<float> x = random_vec(size_t(T * s.K), rng);
        Case c{dt,
               T,
               s.K,
               s.N,
               make_weights(dt, s.N, s.K, rng),
               guarded_copy(x),
               guarded_copy(random_vec(size_t(s.N), rng)),
               with_bias,
               {},
               {}};
        const float* b = with_bias ? c.bias.as<float>() : nullptr;
        c.ref.resize(size_t(T * s.N));
        matmul_reference(x.data(), T, s.K, c.w.data(), dt, s.N, b, c.ref.data());
        if (dt == DType::BF16) {
          const std::vector<float> xr = round_to_bf16(x.data(), x.size());
          c.ref_rounded.resize(c.ref.size());
          matmul_reference(xr.data(), T, s.K, c.w.data(), dt, s.N, b, c.ref_rounded.data());
        }
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

TEST_CASE("matmul: every path matches the reference and is deterministic across threads") {
  const std::vector<Variant> vs = variants();
  const std::vector<Case> cases = make_cases();
  MESSAGE("cpu: " << cpu_features().describe() << "; " << vs.size() << " paths x " << cases.size()
                  << " cases x threads 1, 2, 3");
  // Thread counts outermost: an idle pool's workers spin for a while after each job, and three
  // pools taking turns on a 2-core machine would mostly measure the scheduler.
  std::vector<std::vector<float>> single(cases.size() * vs.size());
  int64_t calls = 0;
  for (int threads = 1; threads <= 3; threads++) {
    for (size_t ci = 0; ci < cases.size(); ci++) {
      const Case& c = cases[ci];
      for (size_t vi = 0; vi < vs.size(); vi++) {
        const Variant& v = vs[vi];
        const bool rounded = detail::rounds_x_to_bf16(v.path, c.dt, v.path.algo);
        const std::vector<float>& want = rounded ? c.ref_rounded : c.ref;
        const size_t ny = size_t(c.T * c.N);
        GuardedBuffer yb(ny * 4);  // outputs poisoned; a write past the end faults
        std::fill_n(yb.as<float>(), ny, std::numeric_limits<float>::quiet_NaN());
        detail::matmul_with(c.args(yb.as<float>()), v.path, pool(threads));
        calls++;
        const std::vector<float> y(yb.as<float>(), yb.as<float>() + ny);
        std::string where;
        const int64_t bad = count_bad(y.data(), want.data(), c.T, c.N, c.K, &where);
        INFO(v.name, " ", dtype_name(c.dt), " T=", c.T, " K=", c.K, " N=", c.N,
             " bias=", c.with_bias, " threads=", threads, " ", where);
        REQUIRE(bad == 0);
        std::vector<float>& first = single[ci * vs.size() + vi];
        if (threads == 1) {
          first = y;
        } else {
          REQUIRE(std::memcmp(first.data(), y.data(), y.size() * 4) == 0);
        }
      }
    }
  }
  MESSAGE(calls << " kernel calls checked");
}

TEST_CASE("matmul: weights (and x) read transposed, with and without accumulation, on every GEMM path") {
  // y (+)= x · w with w stored [K, N] (a projection's input gradient), x as [T, K] or stored
  // [K, T] (a weight gradient's dyᵀ): checked against the reference on explicitly transposed
  // copies, plus y's old value when accumulating.
  std::vector<Variant> gemms;
  for (const Variant& v : variants()) {
    if (v.path.algo == Algo::Gemm && !v.path.bf16_dot) gemms.push_back(v);
  }
  std::mt19937 rng(99);
  int64_t calls = 0;
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t T : {1, 5, 33, 130}) {
      for (const Shape& s : {Shape{1, 1}, Shape{19, 7}, Shape{257, 48}, Shape{300, 129}, Shape{33, 577}}) {
        const GuardedBuffer wt = make_weights(dt, s.K, s.N, rng);  // [K, N]
        std::vector<float> wt_f(size_t(s.K * s.N)), w_f(size_t(s.N * s.K));
        to_f32(dt, wt.data(), wt_f.data(), wt_f.size());
        for (int64_t k = 0; k < s.K; k++) {
          for (int64_t n = 0; n < s.N; n++) w_f[size_t(n * s.K + k)] = wt_f[size_t(k * s.N + n)];
        }
        const std::vector<float> x = random_vec(size_t(T * s.K), rng), y0 = random_vec(size_t(T * s.N), rng);
        std::vector<float> ref(size_t(T * s.N));
        matmul_reference(x.data(), T, s.K, w_f.data(), DType::F32, s.N, nullptr, ref.data());
        std::vector<float> xt(x.size());  // [K, T]
        for (int64_t t = 0; t < T; t++) {
          for (int64_t k = 0; k < s.K; k++) xt[size_t(k * T + t)] = x[size_t(t * s.K + k)];
        }
        for (const bool accumulate : {false, true}) for (const bool x_transposed : {false, true}) {
          std::vector<float> want = ref;
          if (accumulate) {
            for (size_t i = 0; i < want.size(); i++) want[i] += y0[i];
          }
          for (const Variant& v : gemms) {
            std::vector<float> first;
            for (int threads = 1; threads <= 3; threads++) {
              std::vector<float> y = y0;
              MatmulArgs a{(x_transposed ? xt : x).data(), T, s.K, wt.data(), dt, s.N, nullptr, y.data()};
              a.w_transposed = true;
              a.x_transposed = x_transposed;
              a.accumulate = accumulate;
              detail::matmul_with(a, v.path, pool(threads));
              calls++;
              std::string where;
              INFO(v.name, " ", dtype_name(dt), " T=", T, " K=", s.K, " N=", s.N, " accumulate=", accumulate,
                   " x_transposed=", x_transposed, " threads=", threads);
              REQUIRE(count_bad(y.data(), want.data(), T, s.N, s.K + 1, &where) == 0);
              if (threads == 1) first = y;
              else REQUIRE(std::memcmp(first.data(), y.data(), y.size() * 4) == 0);
            }
          }
        }
      }
    }
  }
  MESSAGE(calls << " transposed calls checked");
  // The public entry point: same as the forced GEMM path on this machine.
  std::vector<float> x = random_vec(64 * 40, rng), y(64 * 24, 0.0f), ref(64 * 24);
  const GuardedBuffer wt = make_weights(DType::BF16, 40, 24, rng);
  std::vector<float> wt_f(40 * 24), w_f(24 * 40);
  to_f32(DType::BF16, wt.data(), wt_f.data(), wt_f.size());
  for (int k = 0; k < 40; k++) {
    for (int n = 0; n < 24; n++) w_f[size_t(n * 40 + k)] = wt_f[size_t(k * 24 + n)];
  }
  matmul_reference(x.data(), 64, 40, w_f.data(), DType::F32, 24, nullptr, ref.data());
  matmul_transposed(x.data(), 64, 40, wt.data(), DType::BF16, 24, y.data(), {}, pool(2));
  CHECK(count_bad(y.data(), ref.data(), 64, 24, 40, nullptr) == 0);
}

TEST_CASE("matmul: the public entry point picks a path and matches the reference") {
  std::mt19937 rng(7);
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    for (int64_t T : {1, 4, 16, 64}) {
      const int64_t K = 320, N = 200;
      const GuardedBuffer w = make_weights(dt, N, K, rng);
      const std::vector<float> x = random_vec(size_t(T * K), rng);
      const std::vector<float> bias = random_vec(size_t(N), rng);
      const MatmulPath p = detail::default_path();
      const bool rounded = detail::rounds_x_to_bf16(p, dt, detail::resolve_algo(p, dt, T, K));
      const std::vector<float> xr = rounded ? round_to_bf16(x.data(), x.size()) : x;
      std::vector<float> ref(size_t(T * N)), y(size_t(T * N), std::nanf(""));
      matmul_reference(xr.data(), T, K, w.data(), dt, N, bias.data(), ref.data());
      matmul(x.data(), T, K, w.data(), dt, N, bias.data(), y.data(), pool(2));
      INFO(dtype_name(dt), " T=", T);
      CHECK(count_bad(y.data(), ref.data(), T, N, K, nullptr) == 0);
    }
  }
}

TEST_CASE("matmul_many: bitwise the same as one matmul per target, for any thread count") {
  std::mt19937 rng(11);
  const int64_t K = 192;
  // q/k/v-like shapes with mixed dtypes and odd N, so the row split crosses target boundaries.
  const std::vector<std::pair<DType, int64_t>> shapes = {{DType::BF16, 96}, {DType::F16, 33}, {DType::F32, 7}};
  std::vector<GuardedBuffer> ws;
  std::vector<std::vector<float>> biases;
  for (const auto& [dt, N] : shapes) {
    ws.push_back(make_weights(dt, N, K, rng));
    biases.push_back(random_vec(size_t(N), rng));
  }
  for (int64_t T : {1, 3, 16}) {  // the GEMV split and the per-target fallback
    const std::vector<float> x = random_vec(size_t(T * K), rng);
    for (int threads : {1, 2, 3}) {
      std::vector<std::vector<float>> want, got;
      std::vector<MatmulTarget> targets;
      for (size_t i = 0; i < shapes.size(); i++) {
        const auto& [dt, N] = shapes[i];
        const float* bias = i == 1 ? nullptr : biases[i].data();
        want.emplace_back(size_t(T * N));
        got.emplace_back(size_t(T * N), std::nanf(""));
        matmul(x.data(), T, K, ws[i].data(), dt, N, bias, want.back().data(), pool(threads));
        targets.push_back({ws[i].data(), dt, N, bias, got.back().data()});
      }
      matmul_many(x.data(), T, K, targets, pool(threads));
      for (size_t i = 0; i < shapes.size(); i++) {
        INFO("T=", T, " threads=", threads, " target ", i);
        CHECK(std::memcmp(want[i].data(), got[i].data(), want[i].size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("matmul: the checker would catch a dropped k remainder") {
  // Zeroing the last column of x is what a kernel that skips the K tail computes.
  std::mt19937 rng(99);
  for (int64_t K : {7, 19, 111, 577}) {
    const int64_t T = 3, N = 5;
    const GuardedBuffer w = make_weights(DType::BF16, N, K, rng);
    std::vector<float> x = random_vec(size_t(T * K), rng);
    std::vector<float> ref(size_t(T * N)), dropped(size_t(T * N));
    matmul_reference(x.data(), T, K, w.data(), DType::BF16, N, nullptr, ref.data());
    for (int64_t t = 0; t < T; t++) x[size_t(t * K + K - 1)] = 0.0f;
    matmul_reference(x.data(), T, K, w.data(), DType::BF16, N, nullptr, dropped.data());
    CHECK(count_bad(dropped.data(), ref.data(), T, N, K, nullptr) == T * N);
  }
}

TEST_CASE("matmul: the vdpbf16ps path rounds x to bf16 to nearest even, as torch does") {
  TILLER_SKIP_UNLESS(cpu_features().avx512_bf16, "no avx512_bf16 on this CPU");
  // With w = 1, y = sum of bf16(x): 1 + 2^-8 is a tie that rounds down to 1 (even), 1 + 3 * 2^-8
  // is a tie that rounds up to 1 + 2^-6, 1 + 2^-10 rounds to 1.
  const int64_t T = 3, K = 64, N = 3;
  const float xs[T] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-10f};
  const float expect[T] = {64.0f, 64.0f * (1.0f + 0x1p-6f), 64.0f};
  std::vector<float> x(size_t(T * K));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t k = 0; k < K; k++) x[size_t(t * K + k)] = xs[t];
  }
  std::vector<uint16_t> w(size_t(N * K), f32_to_bf16(1.0f));
  std::vector<float> y(size_t(T * N));
  MatmulPath p;
  p.level = IsaLevel::Avx512;
  p.bf16_dot = true;
  p.algo = Algo::Gemm;
  detail::matmul_with({x.data(), T, K, w.data(), DType::BF16, N, nullptr, y.data()}, p, pool(1));
  for (int64_t t = 0; t < T; t++) {
    for (int64_t n = 0; n < N; n++) CHECK(y[size_t(t * N + n)] == expect[t]);
  }
}

TEST_CASE("matmul: edge shapes") {
  const float bias[3] = {1.0f, 2.0f, 3.0f};
  const float x[2] = {1.0f, 2.0f};
  float y[6] = {-1, -1, -1, -1, -1, -1};
  // K = 0: an empty sum is just the bias.
  matmul(x, 2, 0, x, DType::F32, 3, bias, y, pool(2));
  CHECK(y[0] == 1.0f);
  CHECK(y[5] == 3.0f);
  matmul(x, 2, 0, x, DType::F32, 3, nullptr, y, pool(2));
  CHECK(y[4] == 0.0f);
  // T = 0 or N = 0 touch nothing.
  y[0] = -7.0f;
  matmul(x, 0, 1, x, DType::F32, 3, bias, y, pool(2));
  matmul(x, 1, 1, x, DType::F32, 0, bias, y, pool(2));
  CHECK(y[0] == -7.0f);
  CHECK_THROWS_AS(matmul(x, 1, 1, x, DType::I32, 1, nullptr, y, pool(1)), Error);
}

TEST_CASE("cpu_features: reports a consistent level") {
  const CpuFeatures& f = cpu_features();
  CHECK(!f.describe().empty());
  if (f.level == IsaLevel::Avx512) CHECK(f.avx512);
  if (f.level >= IsaLevel::Avx2) CHECK(f.avx2);
  if (f.avx512) CHECK(f.avx2);
  if (f.avx512_bf16) CHECK(f.avx512);
}

}  // namespace
