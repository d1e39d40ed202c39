// Every training op of the CPU backend against an independent reference: each forward op written
// again in double precision here, its gradient taken by central finite differences in double, on
// tiny shapes with odd sizes. The double forward is first checked against the backend's F32
// forward, so the finite differences differentiate the function the engine computes.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "engine/sampler.h"
#include "kernels/cpu/cpu_backend.h"
#include "test_util.h"

using namespace tiller;

namespace {

using Vec = std::vector<double>;

std::vector<float> randoms(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = lo + float(rng.uniform()) * (hi - lo);
  return v;
}

Vec widen(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// ∂L/∂p for every element of p by central differences; f reads p.
Vec finite_diff(Vec& p, const std::function<double()>& f, double h = 1e-6) {
  Vec g(p.size());
  for (size_t i = 0; i < p.size(); i++) {
    const double keep = p[i];
    p[i] = keep + h;
    const double up = f();
    p[i] = keep - h;
    const double down = f();
    p[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

// max |got - want| relative to max |want|.
double rel_err(const std::vector<float>& got, const Vec& want) {
  REQUIRE(got.size() == want.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < got.size(); i++) {
    err = std::max(err, std::abs(double(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0 ? err / scale : err;
}

Tensor view(std::vector<float>& v, std::initializer_list<int64_t> shape) { return Tensor(v.data(), DType::F32, shape); }

constexpr double kTol = 2e-5;  // F32 kernels against double finite differences

// --- linear ---------------------------------------------------------------------------------------

Vec linear_ref(const Vec& x, const Vec& w, const Vec& b, int64_t T, int64_t N, int64_t K) {
  Vec y(size_t(T * N));
  for (int64_t t = 0; t < T; t++)
    for (int64_t n = 0; n < N; n++) {
      double s = b.empty() ? 0 : b[size_t(n)];
      for (int64_t k = 0; k < K; k++) s += x[size_t(t * K + k)] * w[size_t(n * K + k)];
      y[size_t(t * N + n)] = s;
    }
  return y;
}

// --- attention ------------------------------------------------------------------------------------

struct AttnCase {
  std::vector<int> lens;  // whole sequences, in batch order
  int64_t H, Hkv, d, window, block_size;
  DType kv_dtype;
};

// out[t, h] = softmax(scale q·k) v over row t's keys; k, v indexed by batch row.
Vec attention_ref(const Vec& q, const Vec& k, const Vec& v, const std::vector<int>& lens, int64_t H, int64_t Hkv,
                  int64_t d, int64_t window, double scale) {
  const int64_t T = std::accumulate(lens.begin(), lens.end(), int64_t(0)), G = H / Hkv;
  Vec out(size_t(T * H * d), 0.0);
  int64_t first = 0;
  for (int len : lens) {
    for (int64_t p = 0; p < len; p++) {
      const int64_t t = first + p, lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
      for (int64_t h = 0; h < H; h++) {
        const int64_t hk = h / G;
        Vec s;
        for (int64_t j = lo; j <= p; j++) {
          double acc = 0;
          for (int64_t i = 0; i < d; i++) acc += q[size_t((t * H + h) * d + i)] * k[size_t(((first + j) * Hkv + hk) * d + i)];
          s.push_back(scale * acc);
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double& x : s) sum += (x = std::exp(x - mx));
        for (int64_t j = lo; j <= p; j++) {
          const double pj = s[size_t(j - lo)] / sum;
          for (int64_t i = 0; i < d; i++)
            out[size_t((t * H + h) * d + i)] += pj * v[size_t(((first + j) * Hkv + hk) * d + i)];
        }
      }
    }
    first += len;
  }
  return out;
}

// A paged cache holding k, v of whole sequences in shuffled blocks, and the batch's layout.
struct PagedBatch {
  std::vector<char> kmem, vmem;
  KvStore kv;
  BatchLayout layout;
};

PagedBatch make_paged(const AttnCase& c, const std::vector<float>& k, const std::vector<float>& v, CpuBackend& be) {
  PagedBatch p;
  const int64_t bs = c.block_size;
  int64_t blocks = 0;
  for (int len : c.lens) blocks += (len + bs - 1) / bs;
  blocks += 3;
  std::vector<int32_t> order(static_cast<size_t>(blocks));
  std::iota(order.begin(), order.end(), 0);
  std::reverse(order.begin(), order.end());
  std::rotate(order.begin(), order.begin() + 1, order.end());
  const size_t layer_bytes = size_t(blocks * c.Hkv * bs * c.d) * dtype_size(c.kv_dtype);
  p.kmem.assign(layer_bytes, 0);
  p.vmem.assign(layer_bytes, 0);
  p.kv.k = {Tensor(p.kmem.data(), c.kv_dtype, {blocks, c.Hkv, bs, c.d})};
  p.kv.v = {Tensor(p.vmem.data(), c.kv_dtype, {blocks, c.Hkv, bs, c.d})};
  p.kv.n_blocks = blocks;
  p.kv.block_size = bs;
  p.kv.n_kv_heads = c.Hkv;
  p.kv.head_dim = c.d;
  p.kv.dtype = c.kv_dtype;
  BatchLayout& L = p.layout;
  int32_t max_blocks = 0;
  for (int len : c.lens) max_blocks = std::max(max_blocks, int32_t((len + bs - 1) / bs));
  L.n_seqs = int32_t(c.lens.size());
  L.max_blocks = max_blocks;
  L.block_tables.assign(size_t(L.n_seqs * max_blocks), -1);
  size_t next = 0;
  for (int32_t s = 0; s < L.n_seqs; s++) {
    const int len = c.lens[size_t(s)];
    for (int64_t b = 0; b < (len + bs - 1) / bs; b++) L.block_tables[size_t(s * max_blocks + b)] = order[next++];
    for (int pos = 0; pos < len; pos++) {
      L.tokens.push_back(0);
      L.positions.push_back(pos);
      L.row_seq.push_back(s);
      L.slots.push_back(L.block_tables[size_t(s * max_blocks + pos / bs)] * int32_t(bs) + pos % int32_t(bs));
    }
    L.kv_lens.push_back(len);
    L.max_kv_len = std::max(L.max_kv_len, len);
  }
  be.upload_layout(L);
  const int64_t T = L.n_rows();
  std::vector<float> kc = k, vc = v;
  Tensor kt(kc.data(), DType::F32, {T, c.Hkv, c.d}), vt(vc.data(), DType::F32, {T, c.Hkv, c.d});
  be.kv_append(p.kv, 0, kt, vt, L);
  return p;
}

std::vector<float> round_to(DType dtype, const std::vector<float>& v) {
  std::vector<char> raw(v.size() * dtype_size(dtype));
  from_f32(dtype, v.data(), raw.data(), v.size());
  std::vector<float> out(v.size());
  to_f32(dtype, raw.data(), out.data(), v.size());
  return out;
}

}  // namespace

TEST_CASE("backward ops: linear's input, weight and bias gradients (F32 and BF16 weights, GEMV and GEMM sizes)") {
  CpuBackend be(2);
  struct Shape {
    int64_t T, N, K;
  };
  for (DType wt : {DType::F32, DType::BF16}) {
    for (Shape s : {Shape{1, 13, 11}, Shape{7, 37, 29}, Shape{19, 5, 33}, Shape{130, 130, 7}}) {
      CAPTURE(dtype_name(wt));
      CAPTURE(s.T);
      const auto xf = randoms(size_t(s.T * s.K), 1), bf = randoms(size_t(s.N), 3), rf = randoms(size_t(s.T * s.N), 4);
      const auto wf = round_to(wt, randoms(size_t(s.N * s.K), 2));
      Vec x = widen(xf), w = widen(wf), b = widen(bf);
      const Vec r = widen(rf);
      auto loss = [&] { return dot(r, linear_ref(x, w, b, s.T, s.N, s.K)); };
      const Vec dx = finite_diff(x, loss), dw = finite_diff(w, loss), db = finite_diff(b, loss);

      std::vector<char> wraw(wf.size() * dtype_size(wt));
      from_f32(wt, wf.data(), wraw.data(), wf.size());
      Tensor W(wraw.data(), wt, {s.N, s.K});
      std::vector<float> rr = rf, xx = xf, gx(size_t(s.T * s.K), 0.5f), gw(size_t(s.N * s.K), -0.25f), gb(size_t(s.N), 2.0f);
      Tensor R = view(rr, {s.T, s.N}), X = view(xx, {s.T, s.K}), GX = view(gx, {s.T, s.K}), GW = view(gw, {s.N, s.K}),
             GB = view(gb, {s.N});
      // BF16 weights: dy is rounded to BF16 where the forward's kernels round x (vdpbf16ps).
      const double tol_x = wt == DType::F32 ? kTol : 8e-3;
      be.linear_backward_input(R, W, GX, false);
      CHECK(rel_err(gx, dx) < tol_x);
      be.linear_backward_input(R, W, GX, true);  // accumulates: twice the gradient
      Vec twice = dx;
      for (double& g : twice) g *= 2;
      CHECK(rel_err(gx, twice) < tol_x);
      be.linear_backward_weight(R, X, GW, &GB, false);
      CHECK(rel_err(gw, dw) < kTol);
      CHECK(rel_err(gb, db) < kTol);
      std::vector<float> gw2(gw.size(), 1.0f);
      Tensor GW2 = view(gw2, {s.N, s.K});
      be.linear_backward_weight(R, X, GW2, nullptr, true);
      Vec dw1 = dw;
      for (double& g : dw1) g += 1.0;
      CHECK(rel_err(gw2, dw1) < kTol);
    }
  }
}

TEST_CASE("backward ops: rmsnorm (x and weight gradients)") {
  CpuBackend be(2);
  for (int64_t T : {1, 5, 17}) {
    for (int64_t D : {7, 37, 130}) {
      CAPTURE(T);
      CAPTURE(D);
      const float eps = 1e-5f;
      const auto xf = randoms(size_t(T * D), uint64_t(T * D), -2, 2), wf = randoms(size_t(D), 9, 0.5f, 1.5f);
      const auto rf = randoms(size_t(T * D), 10);
      Vec x = widen(xf), w = widen(wf);
      const Vec r = widen(rf);
      auto forward = [&] {
        Vec y(x.size());
        for (int64_t t = 0; t < T; t++) {
          double ss = 0;
          for (int64_t i = 0; i < D; i++) ss += x[size_t(t * D + i)] * x[size_t(t * D + i)];
          const double rs = 1.0 / std::sqrt(ss / double(D) + double(eps));
          for (int64_t i = 0; i < D; i++) y[size_t(t * D + i)] = w[size_t(i)] * x[size_t(t * D + i)] * rs;
        }
        return y;
      };
      // The reference is the engine's function.
      std::vector<float> xx = xf, ww = wf, y(xf.size());
      Tensor X = view(xx, {T, D}), W = view(ww, {D}), Y = view(y, {T, D});
      be.rmsnorm(X, W, eps, Y);
      CHECK(rel_err(y, forward()) < 1e-6);
      auto loss = [&] { return dot(r, forward()); };
      const Vec dx = finite_diff(x, loss), dw = finite_diff(w, loss);
      std::vector<float> rr = rf, gx(xf.size()), gw(wf.size(), 0.0f);
      Tensor R = view(rr, {T, D}), GX = view(gx, {T, D}), GW = view(gw, {D});
      be.rmsnorm_backward(X, W, eps, R, GX, &GW, false);
      CHECK(rel_err(gx, dx) < kTol);
      CHECK(rel_err(gw, dw) < kTol);
    }
  }
}

TEST_CASE("backward ops: silu_mul") {
  CpuBackend be(2);
  const int64_t n = 301;
  const auto gf = randoms(size_t(n), 1, -6, 6), uf = randoms(size_t(n), 2), rf = randoms(size_t(n), 3);
  Vec g = widen(gf), u = widen(uf);
  const Vec r = widen(rf);
  auto forward = [&] {
    Vec y(static_cast<size_t>(n));
    for (size_t i = 0; i < y.size(); i++) y[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
    return y;
  };
  std::vector<float> gg = gf, uu = uf, y(static_cast<size_t>(n));
  Tensor G = view(gg, {n}), U = view(uu, {n}), Y = view(y, {n});
  be.silu_mul(G, U, Y);
  CHECK(rel_err(y, forward()) < 1e-6);
  auto loss = [&] { return dot(r, forward()); };
  const Vec dg = finite_diff(g, loss), du = finite_diff(u, loss);
  std::vector<float> rr = rf, dgate(static_cast<size_t>(n)), dup(static_cast<size_t>(n));
  Tensor R = view(rr, {n}), DG = view(dgate, {n}), DU = view(dup, {n});
  be.silu_mul_backward(G, U, R, DG, DU);
  CHECK(rel_err(dgate, dg) < kTol);
  CHECK(rel_err(dup, du) < kTol);
}

TEST_CASE("backward ops: attention over whole ragged sequences, GQA, windows, F32 and BF16 caches") {
  CpuBackend be(2);
  const std::vector<AttnCase> cases = {
      {{1, 9, 23}, 6, 2, 8, 0, 4, DType::F32},   {{1, 9, 23}, 6, 2, 8, 5, 4, DType::F32},
      {{13, 2}, 3, 3, 16, 0, 16, DType::F32},    {{11}, 4, 1, 6, 3, 5, DType::F32},
      {{9, 17}, 6, 2, 8, 4, 4, DType::BF16},
      // Two query tiles (64 rows) of the CPU kernel, a window across them.
      {{70, 37}, 4, 2, 4, 0, 8, DType::F32},     {{70, 37}, 4, 2, 4, 40, 8, DType::F32},
  };
  for (const AttnCase& c : cases) {
    CAPTURE(c.window);
    CAPTURE(c.H);
    CAPTURE(dtype_name(c.kv_dtype));
    const int64_t T = std::accumulate(c.lens.begin(), c.lens.end(), int64_t(0));
    const double scale = 1.0 / std::sqrt(double(c.d));
    const auto qf = randoms(size_t(T * c.H * c.d), 1, -2, 2), rf = randoms(size_t(T * c.H * c.d), 4);
    const auto kf = round_to(c.kv_dtype, randoms(size_t(T * c.Hkv * c.d), 2, -2, 2));
    const auto vf = round_to(c.kv_dtype, randoms(size_t(T * c.Hkv * c.d), 3));
    Vec q = widen(qf), k = widen(kf), v = widen(vf);
    const Vec r = widen(rf);
    auto forward = [&] { return attention_ref(q, k, v, c.lens, c.H, c.Hkv, c.d, c.window, scale); };
    PagedBatch p = make_paged(c, kf, vf, be);
    std::vector<float> qq = qf, out(qf.size());
    Tensor Q = view(qq, {T, c.H, c.d}), O = view(out, {T, c.H, c.d});
    be.attention(Q, p.kv, 0, c.window, float(scale), p.layout, O);
    CHECK(rel_err(out, forward()) < 1e-6);
    auto loss = [&] { return dot(r, forward()); };
    const Vec dq = finite_diff(q, loss), dk = finite_diff(k, loss), dv = finite_diff(v, loss);
    std::vector<float> rr = rf, gq(qf.size()), gk(kf.size()), gv(vf.size());
    Tensor R = view(rr, {T, c.H, c.d}), GQ = view(gq, {T, c.H, c.d}), GK = view(gk, {T, c.Hkv, c.d}),
           GV = view(gv, {T, c.Hkv, c.d});
    be.attention_backward(Q, p.kv, 0, c.window, float(scale), p.layout, O, R, GQ, GK, GV);
    CHECK(rel_err(gq, dq) < kTol);
    CHECK(rel_err(gk, dk) < kTol);
    CHECK(rel_err(gv, dv) < kTol);
  }
}

TEST_CASE("backward ops: attention refuses a batch whose sequences are not whole") {
  CpuBackend be(1);
  AttnCase c{{5, 4}, 2, 1, 4, 0, 4, DType::F32};
  const auto kf = randoms(9 * 4, 1), vf = randoms(9 * 4, 2), qf = randoms(9 * 8, 3);
  PagedBatch p = make_paged(c, kf, vf, be);
  std::swap(p.layout.positions[1], p.layout.positions[2]);
  std::vector<float> qq = qf, out(qf.size()), gk(kf.size()), gv(vf.size());
  Tensor Q = view(qq, {9, 2, 4}), O = view(out, {9, 2, 4}), GK = view(gk, {9, 1, 4}), GV = view(gv, {9, 1, 4});
  CHECK_THROWS_WITH(be.attention_backward(Q, p.kv, 0, 0, 0.5f, p.layout, O, O, O, GK, GV),
                    doctest::Contains("rows consecutive from position 0"));
}

TEST_CASE("backward ops: rope's gradient is rope with negated frequencies") {
  CpuBackend be(1);
  const int64_t T = 7, H = 3, Hkv = 1, d = 10;
  std::vector<float> inv_freq(size_t(d / 2)), neg(size_t(d / 2));
  for (int64_t i = 0; i < d / 2; i++) inv_freq[size_t(i)] = float(std::pow(1000.0, -2.0 * double(i) / double(d)));
  for (size_t i = 0; i < neg.size(); i++) neg[i] = -inv_freq[i];
  BatchLayout b;
  for (int t = 0; t < T; t++) b.positions.push_back(int32_t(3 * t + 1));
  b.tokens.assign(size_t(T), 0);
  const auto xf = randoms(size_t(T * H * d), 1), rf = randoms(size_t(T * H * d), 2);
  Vec x = widen(xf);
  const Vec r = widen(rf);
  auto forward = [&] {
    Vec y = x;
    for (int64_t t = 0; t < T; t++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < d / 2; i++) {
          const double a = double(float(b.positions[size_t(t)]) * inv_freq[size_t(i)]);
          const double x1 = x[size_t((t * H + h) * d + i)], x2 = x[size_t((t * H + h) * d + i + d / 2)];
          y[size_t((t * H + h) * d + i)] = x1 * std::cos(a) - x2 * std::sin(a);
          y[size_t((t * H + h) * d + i + d / 2)] = x2 * std::cos(a) + x1 * std::sin(a);
        }
    return y;
  };
  const Vec dx = finite_diff(x, [&] { return dot(r, forward()); });
  std::vector<float> g = rf, kscratch(size_t(T * Hkv * d));
  Tensor G = view(g, {T, H, d}), K = view(kscratch, {T, Hkv, d}), NF = view(neg, {d / 2});
  be.rope(G, K, NF, b);
  CHECK(rel_err(g, dx) < 1e-6);
}

TEST_CASE("backward ops: embedding and gather_rows scatter-add (repeated tokens sum)") {
  CpuBackend be(2);
  const int64_t V = 11, D = 37, T = 9;
  BatchLayout b;
  b.tokens = {3, 0, 3, 10, 7, 3, 0, 1, 10};
  b.logit_rows = {1, 4, 8};
  const auto dxf = randoms(size_t(T * D), 1);
  std::vector<float> dx = dxf, table(size_t(V * D), 0.25f);
  Tensor DX = view(dx, {T, D}), TAB = view(table, {V, D});
  be.embedding_backward(DX, b, TAB);
  Vec want(size_t(V * D), 0.25);
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < D; i++) want[size_t(b.tokens[size_t(t)] * D + i)] += dxf[size_t(t * D + i)];
  CHECK(rel_err(table, want) < 1e-7);
  std::vector<float> rows = randoms(size_t(3 * D), 2), acc(size_t(T * D), 1.0f);
  Tensor ROWS = view(rows, {3, D}), ACC = view(acc, {T, D});
  be.gather_rows_backward(ROWS, b, ACC);
  Vec want2(size_t(T * D), 1.0);
  for (size_t i = 0; i < 3; i++)
    for (int64_t j = 0; j < D; j++) want2[size_t(b.logit_rows[i] * D + j)] += rows[i * size_t(D) + size_t(j)];
  CHECK(rel_err(acc, want2) < 1e-7);
}

TEST_CASE("backward ops: softmax cross-entropy loss and gradient") {
  CpuBackend be(2);
  const int64_t R = 5, V = 301;
  const auto zf = randoms(size_t(R * V), 1, -9, 9);
  std::vector<int32_t> targets = {0, 300, 17, 17, 150};
  std::vector<float> weights = {1.0f, 0.5f, 0.0f, 2.0f, 0.125f};
  Vec z = widen(zf);
  auto losses = [&] {
    Vec l(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; r++) {
      const double* row = z.data() + r * V;
      const double mx = *std::max_element(row, row + V);
      double s = 0;
      for (int64_t i = 0; i < V; i++) s += std::exp(row[i] - mx);
      l[size_t(r)] = mx + std::log(s) - row[targets[size_t(r)]];
    }
    return l;
  };
  const Vec want_loss = losses();
  const Vec dz = finite_diff(z, [&] { return dot(widen(weights), losses()); });
  std::vector<float> logits = zf, loss(static_cast<size_t>(R));
  Tensor L = view(logits, {R, V}), T(targets.data(), DType::I32, {R}), W = view(weights, {R}), LOSS = view(loss, {R});
  be.cross_entropy(L, T, W, LOSS);
  CHECK(rel_err(loss, want_loss) < 1e-6);
  CHECK(rel_err(logits, dz) < kTol);
  targets[1] = int32_t(V);
  CHECK_THROWS_WITH(be.cross_entropy(L, T, W, LOSS), doctest::Contains("outside the vocabulary"));
}

TEST_CASE("backward ops: AdamW matches torch's update in double; sum_squares; the elementwise helpers") {
  CpuBackend be(2);
  const int64_t n = 1001;
  std::vector<float> p = randoms(size_t(n), 1), m(size_t(n), 0.0f), v(size_t(n), 0.0f);
  const std::vector<float> p0 = p;
  Vec pd = widen(p), md(size_t(n), 0.0), vd(size_t(n), 0.0);
  const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, clip = 0.7;
  for (int step = 1; step <= 4; step++) {
    std::vector<float> g = randoms(size_t(n), uint64_t(10 + step), -0.1f, 0.1f);
    Backend::AdamWStep s;
    s.lr = float(lr);
    s.beta1 = float(b1);
    s.beta2 = float(b2);
    s.eps = float(eps);
    s.weight_decay = float(wd);
    s.step_size = float(lr / (1 - std::pow(b1, step)));
    s.bias_correction2_sqrt = float(std::sqrt(1 - std::pow(b2, step)));
    s.grad_scale = float(clip);
    Tensor P = view(p, {n}), G = view(g, {n}), M = view(m, {n}), VV = view(v, {n});
    be.adamw(P, G, M, VV, s);
    for (size_t i = 0; i < size_t(n); i++) {
      const double gi = double(g[i]) * clip;
      pd[i] *= 1 - lr * wd;
      md[i] = b1 * md[i] + (1 - b1) * gi;
      vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
      pd[i] -= lr / (1 - std::pow(b1, step)) * md[i] / (std::sqrt(vd[i]) / std::sqrt(1 - std::pow(b2, step)) + eps);
    }
  }
  // The change, not the value: an error in the step would hide behind |p| (the limit is p's own F32
  // rounding, ~1e-7 of |p| per step, against steps of ~1e-2).
  std::vector<float> moved(p.size());
  Vec want(p.size());
  for (size_t i = 0; i < p.size(); i++) moved[i] = p[i] - p0[i], want[i] = pd[i] - double(p0[i]);
  CHECK(rel_err(moved, want) < 5e-5);
  Tensor P = view(p, {n});
  CHECK(be.sum_squares(P) == doctest::Approx(dot(widen(p), widen(p))).epsilon(1e-12));
  std::vector<float> a = randoms(size_t(n), 5), b2v = randoms(size_t(n), 6), out(static_cast<size_t>(n)), c(static_cast<size_t>(n));
  Tensor A = view(a, {n}), B = view(b2v, {n}), O = view(out, {n}), C = view(c, {n});
  be.mul(A, B, O);
  be.copy(A, C);
  be.add_scaled(C, B, -0.5f);
  for (size_t i = 0; i < size_t(n); i++) {
    CHECK(out[i] == a[i] * b2v[i]);
    CHECK(c[i] == a[i] + -0.5f * b2v[i]);
  }
  be.fill(C, 3.0f);
  CHECK(std::all_of(c.begin(), c.end(), [](float x) { return x == 3.0f; }));
}
