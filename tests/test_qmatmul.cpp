// Quantized-weight projections (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K read in place): every ISA path this
// machine has, on odd shapes, against two double-precision references:
//   the exact product with the weights dequantized (engine/quant.h, itself checked bit for bit
//   against the gguf package): the GEMM (exact F32 panels) must match it to F32 rounding, and the
//   GEMV must stay within the a-priori bound of rounding x to 8 bits (Σ|w|·dx/2 per output);
//   the same product with x as the GEMV quantizes it: the GEMV must match that to F32 rounding,
//   so any error beyond x's rounding (a wrong scale, nibble order, offset) fails.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/quant.h"
#include "guarded_buffer.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_impl.h"
#include "kernels/cpu/qmatmul_impl.h"
#include "test_util.h"

using namespace tiller;
using namespace tiller::cpu;
using detail::Algo;
using detail::MatmulPath;
using test::GuardedBuffer;

namespace {

constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K};

// Random blocks whose F16 scale fields hold finite values of a realistic size.
GuardedBuffer random_blocks(DType t, int64_t N, int64_t K, std::mt19937& rng) {
  const size_t bytes = dtype_bytes(t, N * K), bb = dtype_block_bytes(t);
  GuardedBuffer w(bytes);
  auto* p = w.as<uint8_t>();
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> scale(0.0f, 0.02f);
  for (size_t i = 0; i < bytes; i++) p[i] = uint8_t(byte(rng));
  std::vector<size_t> fields = t == DType::Q4_1 || t == DType::Q4_K ? std::vector<size_t>{0, 2}
                               : t == DType::Q6_K                   ? std::vector<size_t>{208}
                                                                    : std::vector<size_t>{0};
  for (size_t b = 0; b < bytes / bb; b++) {
    for (size_t f : fields) {
      const uint16_t h = f32_to_f16(scale(rng));
      std::memcpy(p + b * bb + f, &h, 2);
    }
  }
  return w;
}

std::vector<float> dequantized(DType t, const void* w, int64_t N, int64_t K) {
  std::vector<float> f(size_t(N * K));
  to_f32(t, w, f.data(), f.size());
  return f;
}

struct Variant {
  std::string name;
  MatmulPath path;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  auto add = [&](const char* name, IsaLevel level, Algo algo, bool int8_prefill = false) {
    MatmulPath p;
    p.level = level;
    p.algo = algo;
    p.split_always = true;
    p.int8_prefill = int8_prefill;
    v.push_back({name, p});
  };
  add("generic/gemv", IsaLevel::Generic, Algo::Gemv);
  add("generic/gemm", IsaLevel::Generic, Algo::Gemm);
  if (cpu_features().avx2) {
    add("avx2/gemv", IsaLevel::Avx2, Algo::Gemv);
    add("avx2/gemm", IsaLevel::Avx2, Algo::Gemm);
  }
  if (cpu_features().avx512) {
    add("avx512/gemv", IsaLevel::Avx512, Algo::Gemv);
    add("avx512/gemm", IsaLevel::Avx512, Algo::Gemm);
  }
  // Chosen by row count: the int8 GEMV below 32 rows, then exact panels, or with
  // TILLER_QUANTIZED_PREFILL=int8 the int8 GEMV at every row count.
  add("auto", cpu_features().level, Algo::Auto);
  add("auto, int8 prefill", cpu_features().level, Algo::Auto, true);
  return v;
}

ThreadPool& pool(int n) {
  static ThreadPool p1(1), p2(2), p3(3);
  return n == 1 ? p1 : n == 2 ? p2 : p3;
}

}  // namespace

TEST_CASE("qmatmul: every quantized type on every path matches the exact products") {
  std::mt19937 rng(15);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int cases = 0;
  for (DType t : kTypes) {
    const int64_t block = dtype_block(t);
    for (int64_t K : {block, block * 3, (block == 32 ? 7 : 2) * block * 2 + block}) {
      for (int64_t N : {1, 5, 37}) {
        for (int64_t T : {1, 2, 3, 4, 7, 16, 40, 77}) {
          CAPTURE(dtype_name(t));
          CAPTURE(K);
          CAPTURE(N);
          CAPTURE(T);
          const GuardedBuffer w = random_blocks(t, N, K, rng);
          std::vector<float> x(static_cast<size_t>(T * K)), bias(static_cast<size_t>(N));
          for (float& v : x) v = u(rng);
          for (float& v : bias) v = u(rng);
          const bool with_bias = (cases % 2) == 1;
          const std::vector<float> wf = dequantized(t, w.data(), N, K);
          std::vector<uint8_t> qbuf(detail::quantized_x_bytes(T, K) + 64);
          void* qb = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(qbuf.data()) + 63) & ~uintptr_t(63));
          const detail::QuantizedX xq = detail::quantize_x(x.data(), T, K, qb, 0, T);
          for (const Variant& v : variants()) {
            CAPTURE(v.name);
            std::vector<float> y(size_t(T * N), NAN);
            detail::matmul_with({x.data(), T, K, w.data(), t, N, with_bias ? bias.data() : nullptr, y.data()}, v.path,
                                pool(3));
            const bool gemv = detail::resolve_algo(v.path, t, T, K) == Algo::Gemv;
            int64_t bad = 0;
            for (int64_t r = 0; r < T; r++) {
              for (int64_t n = 0; n < N; n++) {
                double exact = 0, exact_q = 0, mag = 0, bound = 0;
                for (int64_t k = 0; k < K; k++) {
                  const double wv = wf[size_t(n * K + k)], xv = x[size_t(r * K + k)];
                  const double dx = xq.ds[(r * (K / 32) + k / 32) * detail::kXScales];
                  const double xhat = dx * xq.qs[r * K + k];
                  exact += wv * xv;
                  exact_q += wv * xhat;
                  mag += std::fabs(wv * xv) + std::fabs(wv * xhat);
                  bound += std::fabs(wv) * dx / 2;  // |x - x̂| <= dx / 2
                }
                const double b = with_bias ? bias[size_t(n)] : 0.0;
                const double got = y[size_t(r * N + n)], f32_tol = 2e-6 * mag + 1e-6;
                const bool ok = std::isfinite(got) &&
                                (gemv ? std::fabs(got - (exact_q + b)) <= f32_tol &&
                                            std::fabs(got - (exact + b)) <= bound + f32_tol
                                      : std::fabs(got - (exact + b)) <= f32_tol);
                if (!ok && bad++ == 0) {
                  CAPTURE(r);
                  CAPTURE(n);
                  CAPTURE(got);
                  CAPTURE(exact + b);
                  CAPTURE(exact_q + b);
                  CAPTURE(bound);
                  CHECK(ok);
                }
              }
            }
            CHECK(bad == 0);
            cases++;
          }
        }
      }
    }
  }
  CHECK(cases > 300);
}

TEST_CASE("qmatmul: results do not depend on the thread count, and matmul_many equals one matmul each") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t K = 512, T = 3;
  std::vector<float> x(size_t(T * K));
  for (float& v : x) v = u(rng);
  // Mixed types and a float matrix in one call (a Q4_K_M file mixes Q4_K and Q6_K).
  const DType types[] = {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::BF16};
  const int64_t Ns[] = {70, 33, 48, 17};
  std::vector<GuardedBuffer> ws;
  std::vector<std::vector<float>> single(4), many(4);
  std::vector<MatmulTarget> targets;
  for (int i = 0; i < 4; i++) {
    if (types[i] == DType::BF16) {
      ws.emplace_back(size_t(Ns[i] * K) * 2);
      std::vector<float> f(size_t(Ns[i] * K));
      for (float& v : f) v = u(rng);
      from_f32(DType::BF16, f.data(), ws.back().data(), f.size());
    } else {
      ws.push_back(random_blocks(types[i], Ns[i], K, rng));
    }
    single[size_t(i)].assign(size_t(T * Ns[i]), NAN);
    many[size_t(i)].assign(size_t(T * Ns[i]), NAN);
    targets.push_back({ws.back().data(), types[i], Ns[i], nullptr, many[size_t(i)].data()});
  }
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    for (int i = 0; i < 4; i++) {
      std::vector<float> y(size_t(T * Ns[i]), NAN);
      matmul(x.data(), T, K, ws[size_t(i)].data(), types[i], Ns[i], nullptr, y.data(), pool(threads));
      if (threads == 1) single[size_t(i)] = y;
      CHECK(std::memcmp(y.data(), single[size_t(i)].data(), y.size() * 4) == 0);
    }
    matmul_many(x.data(), T, K, targets, pool(threads));
    for (int i = 0; i < 4; i++) CHECK(std::memcmp(many[size_t(i)].data(), single[size_t(i)].data(), many[size_t(i)].size() * 4) == 0);
  }
}

TEST_CASE("qmatmul: prompts take exact panels from 32 rows, or the int8 GEMV at every row count when asked") {
  MatmulPath exact, int8;
  exact.level = int8.level = IsaLevel::Avx2;
  int8.int8_prefill = true;
  for (DType t : kTypes) {
    CAPTURE(dtype_name(t));
    CHECK(detail::resolve_algo(exact, t, 31, 2048) == Algo::Gemv);
    CHECK(detail::resolve_algo(exact, t, 32, 2048) == Algo::Gemm);
    CHECK(detail::resolve_algo(int8, t, 512, 2048) == Algo::Gemv);
  }
  CHECK(detail::resolve_algo(int8, DType::BF16, 512, 2048) == detail::resolve_algo(exact, DType::BF16, 512, 2048));
}

TEST_CASE("qmatmul: types the kernels do not read are refused, and so are rows of partial blocks") {
  std::vector<float> x(64), y(2);
  std::vector<uint8_t> w(2 * 44);
  CHECK_THROWS_WITH_AS(matmul(x.data(), 1, 64, w.data(), DType::Q5_0, 2, nullptr, y.data(), pool(1)),
                       doctest::Contains("weight dtype Q5_0 is not supported"), Error);
  CHECK_THROWS_WITH_AS(matmul(x.data(), 1, 48, w.data(), DType::Q8_0, 1, nullptr, y.data(), pool(1)),
                       doctest::Contains("K a multiple of 32"), Error);
}
