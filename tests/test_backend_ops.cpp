// The op table (in the style of llama.cpp's test-backend-ops): every Backend op over a grid of
// shapes, dtypes and ragged paged layouts, run on each device backend and on CpuBackend (the
// executable specification) from the same seeded inputs. Outputs are poisoned with NaN first and
// followed by a guard region; a device result must be finite, leave the guard intact and match
// the CPU within a normalized squared error Σ(got - ref)² / Σref² of 1e-7 (F32 elementwise, norms,
// rope, F32 matmul and attention) or 5e-4 (BF16/F16 matmul and attention). Sampling must pick the
// CPU's token for the same uniforms. Written against the Backend interface only; without a
// device backend every case skips with a message.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>
#include <vector>

#include "engine/sampler.h"
#include "models/rope.h"
#include "test_backends.h"
#include "test_util.h"

using namespace tiller;

namespace {

constexpr double kTightNse = 1e-7;
constexpr double kLowPrecisionNse = 5e-4;
constexpr size_t kGuard = 256;  // bytes after every tensor, checked for out-of-bounds writes
constexpr uint8_t kGuardByte = 0xA5;

std::vector<float> random_values(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = lo + float(rng.uniform()) * (hi - lo);
  return v;
}

// A tensor on one backend followed by a guard region.
struct Guarded {
  Buffer buf;
  Tensor t;
};

Guarded make_tensor(Backend& be, DType dtype, std::initializer_list<int64_t> shape) {
  Guarded g;
  const size_t bytes = Tensor(nullptr, dtype, shape).nbytes();
  g.buf = be.alloc(bytes + kGuard);
  g.t = Tensor(g.buf.data(), dtype, shape, be.device());
  const std::vector<uint8_t> guard(kGuard, kGuardByte);
  be.upload(static_cast<char*>(g.buf.data()) + bytes, guard.data(), kGuard);
  return g;
}

void fill(Backend& be, const Guarded& g, const std::vector<float>& values) {
  REQUIRE(int64_t(values.size()) == g.t.numel());
  std::vector<char> raw(g.t.nbytes());
  from_f32(g.t.dtype, values.data(), raw.data(), values.size());
  be.upload(g.t.data, raw.data(), raw.size());
}

void poison(Backend& be, const Guarded& g) { fill(be, g, std::vector<float>(size_t(g.t.numel()), NAN)); }

bool guard_intact(Backend& be, const Guarded& g) {
  std::vector<uint8_t> guard(kGuard);
  be.download(guard.data(), static_cast<const char*>(g.buf.data()) + g.t.nbytes(), kGuard);
  return std::all_of(guard.begin(), guard.end(), [](uint8_t b) { return b == kGuardByte; });
}

// The same tensor on the CPU and on the device; values null: poisoned (an output).
struct Twin {
  Guarded cpu, dev;
};

Twin make_twin(Backend& cpu, Backend& dev, DType dtype, std::initializer_list<int64_t> shape,
               const std::vector<float>* values) {
  Twin t{make_tensor(cpu, dtype, shape), make_tensor(dev, dtype, shape)};
  if (values) {
    fill(cpu, t.cpu, *values);
    fill(dev, t.dev, *values);
  } else {
    poison(cpu, t.cpu);
    poison(dev, t.dev);
  }
  return t;
}

// Device result vs the CPU's: all finite, guards intact, normalized squared error within tol.
void check_close(Backend& cpu, Backend& dev, const Twin& t, double tol, const std::string& what) {
  const std::vector<float> got = test::download_f32(dev, t.dev.t), ref = test::download_f32(cpu, t.cpu.t);
  REQUIRE(got.size() == ref.size());
  double num = 0, den = 0;
  int64_t bad = 0, bad_ref = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!std::isfinite(got[i])) bad++;
    if (!std::isfinite(ref[i])) bad_ref++;
    const double d = double(got[i]) - double(ref[i]);
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
  }
  const double nse = den > 0 ? num / den : num;
  INFO(what << ": NSE " << nse << " (tolerance " << tol << "), " << bad << " non-finite of " << got.size());
  CHECK(bad_ref == 0);  // the reference itself (a broken test, not a broken kernel)
  CHECK(bad == 0);
  CHECK(nse <= tol);
  CHECK(guard_intact(dev, t.dev));
  CHECK(guard_intact(cpu, t.cpu));
}

std::string describe(std::initializer_list<std::pair<const char*, int64_t>> parts) {
  std::ostringstream os;
  for (const auto& [k, v] : parts) os << k << "=" << v << " ";
  return os.str();
}

// --- layouts ---------------------------------------------------------------------------------------

struct SeqSpec {
  int cached = 0;          // keys already in the cache
  int added = 0;           // rows of this batch (positions cached .. cached + added - 1)
  int fork_of = -1;        // shares the whole blocks of this sequence's first `shared` tokens
  int shared = 0;
};

// Host side of a BatchLayout over a cache of n_blocks blocks taken in shuffled order.
struct HostLayout {
  std::vector<int32_t> tokens, positions, row_seq, slots, block_tables, kv_lens, logit_rows;
  int32_t n_seqs = 0, max_blocks = 0, max_kv_len = 0;
  int64_t n_blocks = 0;
};

HostLayout build_layout(const std::vector<SeqSpec>& seqs, int64_t bs, bool interleave, uint64_t seed, int64_t vocab = 1000) {
  HostLayout h;
  int64_t needed = 0;
  for (const SeqSpec& s : seqs) needed += (s.cached + s.added + bs - 1) / bs;
  h.n_blocks = needed + 5;  // unused blocks too
  std::vector<int32_t> free_blocks(size_t(h.n_blocks));
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  Rng rng(seed);
  for (size_t i = free_blocks.size(); i > 1; i--) std::swap(free_blocks[i - 1], free_blocks[rng.next() % i]);
  std::vector<std::vector<int32_t>> tables;
  for (const SeqSpec& s : seqs) {
    std::vector<int32_t> t;
    if (s.fork_of >= 0) {
      REQUIRE(s.shared % bs == 0);
      t.assign(tables[size_t(s.fork_of)].begin(), tables[size_t(s.fork_of)].begin() + s.shared / bs);
    }
    while (int64_t(t.size()) * bs < s.cached + s.added) {
      t.push_back(free_blocks.back());
      free_blocks.pop_back();
    }
    tables.push_back(t);
    h.max_blocks = std::max(h.max_blocks, int32_t(t.size()));
    h.max_kv_len = std::max(h.max_kv_len, int32_t(s.cached + s.added));
  }
  h.n_seqs = int32_t(seqs.size());
  h.block_tables.assign(size_t(h.n_seqs * h.max_blocks), -1);
  for (size_t s = 0; s < seqs.size(); s++) {
    std::copy(tables[s].begin(), tables[s].end(), h.block_tables.begin() + long(s * size_t(h.max_blocks)));
    h.kv_lens.push_back(seqs[s].cached + seqs[s].added);
  }
  std::vector<int> next(seqs.size(), 0);
  auto add_row = [&](size_t s) {
    const int pos = seqs[s].cached + next[s]++;
    h.tokens.push_back(int32_t(rng.next() % uint64_t(vocab)));
    h.positions.push_back(pos);
    h.row_seq.push_back(int32_t(s));
    h.slots.push_back(int32_t(tables[s][size_t(pos / bs)] * bs + pos % bs));
  };
  bool more = true;
  if (interleave) {
    while (more) {
      more = false;
      for (size_t s = 0; s < seqs.size(); s++) {
        if (next[s] < seqs[s].added) add_row(s), more = true;
      }
    }
  } else {
    for (size_t s = 0; s < seqs.size(); s++) {
      while (next[s] < seqs[s].added) add_row(s);
    }
  }
  for (size_t t = 0; t < h.tokens.size(); t++) h.logit_rows.push_back(int32_t(t));
  return h;
}

void assign(BatchLayout& b, const HostLayout& h) {
  b.tokens = h.tokens;
  b.positions = h.positions;
  b.row_seq = h.row_seq;
  b.slots = h.slots;
  b.block_tables = h.block_tables;
  b.kv_lens = h.kv_lens;
  b.logit_rows = h.logit_rows;
  b.n_seqs = h.n_seqs;
  b.max_blocks = h.max_blocks;
  b.max_kv_len = h.max_kv_len;
}

// The same layout uploaded to both backends.
struct TwinLayout {
  BatchLayout cpu, dev;
  TwinLayout(Backend& cpu_be, Backend& dev_be, const HostLayout& h) {
    assign(cpu, h);
    assign(dev, h);
    cpu_be.upload_layout(cpu);
    dev_be.upload_layout(dev);
  }
};

// A paged KV store of `layers` layers on both backends with the same random contents.
struct TwinStore {
  Guarded cpu_mem, dev_mem;
  KvStore cpu, dev;
};

TwinStore make_store(Backend& cpu, Backend& dev, int layers, int64_t n_blocks, int64_t Hkv, int64_t bs, int64_t d,
                     DType dtype, uint64_t seed) {
  TwinStore s;
  const int64_t per = n_blocks * Hkv * bs * d;
  s.cpu_mem = make_tensor(cpu, dtype, {2 * layers * per});
  s.dev_mem = make_tensor(dev, dtype, {2 * layers * per});
  const std::vector<float> values = random_values(2 * layers * per, seed);
  fill(cpu, s.cpu_mem, values);
  fill(dev, s.dev_mem, values);
  for (auto [mem, store] : {std::pair{&s.cpu_mem, &s.cpu}, std::pair{&s.dev_mem, &s.dev}}) {
    store->n_blocks = n_blocks;
    store->block_size = bs;
    store->n_kv_heads = Hkv;
    store->head_dim = d;
    store->dtype = dtype;
    auto* base = static_cast<char*>(mem->t.data);
    for (int l = 0; l < 2 * layers; l++) {
      Tensor view(base + size_t(l * per) * dtype_size(dtype), dtype, {n_blocks, Hkv, bs, d}, mem->t.device);
      (l % 2 == 0 ? store->k : store->v).push_back(view);
    }
  }
  return s;
}

Twin as_twin(TwinStore& s) { return Twin{std::move(s.cpu_mem), std::move(s.dev_mem)}; }

// Runs `body(cpu, dev, name)` once per device backend, or skips with the reason.
template <typename F>
void for_each_device(F&& body) {
  const auto devices = test::device_backends();
  TILLER_SKIP_UNLESS(!devices.empty(), test::no_device_reason() << ": the CUDA op table runs on a GPU machine");
  CpuBackend cpu(0);
  for (const test::BackendCase& c : devices) {
    CAPTURE(c.name);
    auto dev = c.make();
    body(cpu, *dev);
  }
}

const int kRows[] = {1, 19, 111, 500};

}  // namespace

TEST_CASE("backend ops: silu_mul and add (F32, NSE <= 1e-7, in place too)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t n : {int64_t(1), int64_t(19), int64_t(111 * 64), int64_t(500 * 333)}) {
      const auto g = random_values(n, 1, -8, 8), u = random_values(n, 2);
      Twin gate = make_twin(cpu, dev, DType::F32, {n}, &g), up = make_twin(cpu, dev, DType::F32, {n}, &u);
      Twin out = make_twin(cpu, dev, DType::F32, {n}, nullptr);
      cpu.silu_mul(gate.cpu.t, up.cpu.t, out.cpu.t);
      dev.silu_mul(gate.dev.t, up.dev.t, out.dev.t);
      check_close(cpu, dev, out, kTightNse, describe({{"silu_mul n", n}}));
      cpu.silu_mul(gate.cpu.t, up.cpu.t, gate.cpu.t);  // out aliases gate, as the model calls it
      dev.silu_mul(gate.dev.t, up.dev.t, gate.dev.t);
      check_close(cpu, dev, gate, kTightNse, describe({{"silu_mul in place n", n}}));
      cpu.add(up.cpu.t, out.cpu.t);
      dev.add(up.dev.t, out.dev.t);
      check_close(cpu, dev, up, kTightNse, describe({{"add n", n}}));
    }
  });
}

TEST_CASE("backend ops: rmsnorm and add_rmsnorm (F32, NSE <= 1e-7)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t T : kRows) {
      for (int64_t D : {64, 111, 2048, 4096}) {
        const std::string what = describe({{"T", T}, {"D", D}});
        const auto xv = random_values(T * D, uint64_t(T * D), -3, 3), wv = random_values(D, 3, 0.5f, 1.5f);
        const auto dv = random_values(T * D, 4);
        Twin x = make_twin(cpu, dev, DType::F32, {T, D}, &xv), w = make_twin(cpu, dev, DType::F32, {D}, &wv);
        Twin delta = make_twin(cpu, dev, DType::F32, {T, D}, &dv), out = make_twin(cpu, dev, DType::F32, {T, D}, nullptr);
        cpu.rmsnorm(x.cpu.t, w.cpu.t, 1e-5f, out.cpu.t);
        dev.rmsnorm(x.dev.t, w.dev.t, 1e-5f, out.dev.t);
        check_close(cpu, dev, out, kTightNse, "rmsnorm " + what);
        poison(cpu, out.cpu), poison(dev, out.dev);
        cpu.add_rmsnorm(x.cpu.t, delta.cpu.t, w.cpu.t, 1e-6f, out.cpu.t);
        dev.add_rmsnorm(x.dev.t, delta.dev.t, w.dev.t, 1e-6f, out.dev.t);
        check_close(cpu, dev, x, kTightNse, "add_rmsnorm residual " + what);
        check_close(cpu, dev, out, kTightNse, "add_rmsnorm out " + what);
        cpu.rmsnorm(out.cpu.t, w.cpu.t, 1e-5f, out.cpu.t);  // in place, as the final norm
        dev.rmsnorm(out.dev.t, w.dev.t, 1e-5f, out.dev.t);
        check_close(cpu, dev, out, kTightNse, "rmsnorm in place " + what);
      }
    }
  });
}

TEST_CASE("backend ops: embedding and gather_rows (exact, every table dtype)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (int64_t D : {64, 111, 2048}) {
        const int64_t V = 1000;
        const auto tv = random_values(V * D, 5);
        Twin table = make_twin(cpu, dev, dt, {V, D}, &tv);
        for (int T : kRows) {
          const std::string what = std::string(dtype_name(dt)) + " " + describe({{"D", D}, {"T", T}});
          HostLayout h = build_layout({{0, T}}, 16, false, uint64_t(T));
          h.tokens[0] = 0;
          h.tokens.back() = int32_t(V - 1);
          h.logit_rows.clear();  // gather every third row and the last
          for (int t = 0; t < T; t += 3) h.logit_rows.push_back(t);
          if (h.logit_rows.back() != T - 1) h.logit_rows.push_back(T - 1);
          TwinLayout lay(cpu, dev, h);
          Twin out = make_twin(cpu, dev, DType::F32, {T, D}, nullptr);
          cpu.embedding(table.cpu.t, lay.cpu, out.cpu.t);
          dev.embedding(table.dev.t, lay.dev, out.dev.t);
          check_close(cpu, dev, out, 0.0, "embedding " + what);
          const int64_t R = int64_t(h.logit_rows.size());
          Twin rows = make_twin(cpu, dev, DType::F32, {R, D}, nullptr);
          cpu.gather_rows(out.cpu.t, lay.cpu, rows.cpu.t);
          dev.gather_rows(out.dev.t, lay.dev, rows.dev.t);
          check_close(cpu, dev, rows, 0.0, "gather_rows " + what);
        }
      }
    }
  });
}

// Index tensors (I32) on one backend.
Guarded make_indices(Backend& be, const std::vector<int32_t>& ids) {
  Guarded g = make_tensor(be, DType::I32, {int64_t(ids.size())});
  be.upload(g.t.data, ids.data(), ids.size() * sizeof(int32_t));
  return g;
}

TEST_CASE("backend ops: index_select and index_add (rows of one profile, column blocks of its heads)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t T : {1, 7, 64}) {
      for (int64_t c : {16, 24}) {  // head_dim
        const int64_t H = 5, K = H * c, N = 37;
        const auto xv = random_values(T * K, uint64_t(T * c));
        Twin x = make_twin(cpu, dev, DType::F32, {T, K}, &xv);
        std::vector<int32_t> rows;  // every other row, from the last down: not sorted, not contiguous
        for (int64_t t = T - 1; t >= 0; t -= 2) rows.push_back(int32_t(t));
        const std::vector<int32_t> blocks = {4, 1, 2};
        const Guarded rows_cpu = make_indices(cpu, rows), rows_dev = make_indices(dev, rows);
        const Guarded blocks_cpu = make_indices(cpu, blocks), blocks_dev = make_indices(dev, blocks);
        const int64_t n = int64_t(rows.size()), k = int64_t(blocks.size());
        const std::string what = describe({{"T", T}, {"c", c}, {"n", n}});

        Twin sel = make_twin(cpu, dev, DType::F32, {n, k * c}, nullptr);
        cpu.index_select(x.cpu.t, rows_cpu.t, blocks_cpu.t, c, sel.cpu.t);
        dev.index_select(x.dev.t, rows_dev.t, blocks_dev.t, c, sel.dev.t);
        check_close(cpu, dev, sel, 0.0, "index_select rows+blocks " + what);
        Twin rows_only = make_twin(cpu, dev, DType::F32, {n, K}, nullptr);
        cpu.index_select(x.cpu.t, rows_cpu.t, Tensor(), 0, rows_only.cpu.t);
        dev.index_select(x.dev.t, rows_dev.t, Tensor(), 0, rows_only.dev.t);
        check_close(cpu, dev, rows_only, 0.0, "index_select rows " + what);
        Twin blocks_only = make_twin(cpu, dev, DType::F32, {T, k * c}, nullptr);
        cpu.index_select(x.cpu.t, Tensor(), blocks_cpu.t, c, blocks_only.cpu.t);
        dev.index_select(x.dev.t, Tensor(), blocks_dev.t, c, blocks_only.dev.t);
        check_close(cpu, dev, blocks_only, 0.0, "index_select blocks " + what);

        const auto yv = random_values(T * N, 7), sv = random_values(n * N, 8), bv = random_values(N, 9);
        Twin src = make_twin(cpu, dev, DType::F32, {n, N}, &sv);
        Twin bias = make_twin(cpu, dev, DType::F32, {N}, &bv);
        Twin y = make_twin(cpu, dev, DType::F32, {T, N}, &yv);
        cpu.index_add(y.cpu.t, rows_cpu.t, src.cpu.t, bias.cpu.t);
        dev.index_add(y.dev.t, rows_dev.t, src.dev.t, bias.dev.t);
        check_close(cpu, dev, y, kTightNse, "index_add rows+src+bias " + what);
        cpu.index_add(y.cpu.t, rows_cpu.t, Tensor(), bias.cpu.t);
        dev.index_add(y.dev.t, rows_dev.t, Tensor(), bias.dev.t);
        check_close(cpu, dev, y, kTightNse, "index_add rows+bias " + what);
        Twin src_all = make_twin(cpu, dev, DType::F32, {T, N}, &yv);
        cpu.index_add(y.cpu.t, Tensor(), src_all.cpu.t, Tensor());
        dev.index_add(y.dev.t, Tensor(), src_all.dev.t, Tensor());
        check_close(cpu, dev, y, kTightNse, "index_add all rows " + what);
      }
    }
  });
}

TEST_CASE("backend ops: linear over dtypes, rows (GEMV and GEMM paths), odd shapes and biases") {
  for_each_device([](Backend& cpu, Backend& dev) {
    struct Shape {
      int64_t N, K;
    };
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (Shape s : {Shape{64, 64}, Shape{96, 111}, Shape{19, 256}, Shape{333, 172}, Shape{4096, 4096},
                      Shape{1000, 2048}}) {
        const bool big = s.N * s.K > 1'000'000;
        for (int64_t T : {1, 2, 3, 4, 5, 8, 19, 111, 500}) {
          if (big && T != 1 && T != 4 && T != 8 && T != 19 && T != 500) continue;
          for (bool with_bias : {false, true}) {
            const std::string what = std::string(dtype_name(dt)) +
                                     describe({{" N", s.N}, {"K", s.K}, {"T", T}, {"bias", with_bias}});
            const auto xv = random_values(T * s.K, uint64_t(T + s.K)), wv = random_values(s.N * s.K, uint64_t(s.N));
            const auto bv = random_values(s.N, 9);
            Twin x = make_twin(cpu, dev, DType::F32, {T, s.K}, &xv), w = make_twin(cpu, dev, dt, {s.N, s.K}, &wv);
            Twin bias = make_twin(cpu, dev, DType::F32, {s.N}, &bv), y = make_twin(cpu, dev, DType::F32, {T, s.N}, nullptr);
            cpu.linear(x.cpu.t, w.cpu.t, with_bias ? &bias.cpu.t : nullptr, y.cpu.t);
            dev.linear(x.dev.t, w.dev.t, with_bias ? &bias.dev.t : nullptr, y.dev.t);
            check_close(cpu, dev, y, dt == DType::F32 ? kTightNse : kLowPrecisionNse, "linear " + what);
          }
        }
      }
    }
  });
}

TEST_CASE("backend ops: rope (default and llama3 frequencies, positions up to 2e5)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    struct Heads {
      int64_t H, Hkv, d;
    };
    for (bool llama3 : {false, true}) {
      ModelConfig c;
      c.rope.theta = llama3 ? 500000.0 : 10000.0;
      if (llama3) {
        c.rope.type = RopeConfig::Type::Llama3;
        c.rope.factor = 8;
        c.rope.original_max_position = 8192;
      }
      for (Heads hd : {Heads{8, 2, 64}, Heads{32, 8, 128}, Heads{4, 4, 16}}) {
        c.head_dim = hd.d;
        const std::vector<float> inv = rope_inv_freq(c);
        Twin inv_freq = make_twin(cpu, dev, DType::F32, {hd.d / 2}, &inv);
        for (int T : kRows) {
          const std::string what = describe({{"llama3", llama3}, {"H", hd.H}, {"Hkv", hd.Hkv}, {"d", hd.d}, {"T", T}});
          HostLayout h = build_layout({{0, T}}, 16, false, 7);
          Rng rng{uint64_t(T)};
          for (auto& p : h.positions) p = int32_t(rng.next() % 200000);
          h.positions[0] = 0;
          TwinLayout lay(cpu, dev, h);
          const auto qv = random_values(T * hd.H * hd.d, 11), kv = random_values(T * hd.Hkv * hd.d, 12);
          Twin q = make_twin(cpu, dev, DType::F32, {T, hd.H, hd.d}, &qv);
          Twin k = make_twin(cpu, dev, DType::F32, {T, hd.Hkv, hd.d}, &kv);
          cpu.rope(q.cpu.t, k.cpu.t, inv_freq.cpu.t, lay.cpu);
          dev.rope(q.dev.t, k.dev.t, inv_freq.dev.t, lay.dev);
          check_close(cpu, dev, q, kTightNse, "rope q " + what);
          check_close(cpu, dev, k, kTightNse, "rope k " + what);
        }
      }
    }
  });
}

TEST_CASE("backend ops: kv_append at shuffled slots and copy_kv_blocks (every cache dtype)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (int64_t Hkv : {1, 2, 8}) {
        for (int64_t d : {64, 128}) {
          for (int T : kRows) {
            const std::string what = std::string(dtype_name(dt)) + describe({{" Hkv", Hkv}, {"d", d}, {"T", T}});
            const int64_t bs = 16, n_blocks = (T + bs - 1) / bs + 3;
            TwinStore store = make_store(cpu, dev, 2, n_blocks, Hkv, bs, d, dt, uint64_t(T + d));
            HostLayout h = build_layout({{0, T}}, bs, false, 3);
            std::vector<int32_t> all(size_t(n_blocks * bs));  // distinct slots anywhere in the cache
            std::iota(all.begin(), all.end(), 0);
            Rng rng(uint64_t(T) * 31);
            for (size_t i = all.size(); i > 1; i--) std::swap(all[i - 1], all[rng.next() % i]);
            std::copy_n(all.begin(), T, h.slots.begin());
            TwinLayout lay(cpu, dev, h);
            const auto kv = random_values(T * Hkv * d, 21), vv = random_values(T * Hkv * d, 22);
            Twin k = make_twin(cpu, dev, DType::F32, {T, Hkv, d}, &kv), v = make_twin(cpu, dev, DType::F32, {T, Hkv, d}, &vv);
            cpu.kv_append(store.cpu, 1, k.cpu.t, v.cpu.t, lay.cpu);
            dev.kv_append(store.dev, 1, k.dev.t, v.dev.t, lay.dev);
            const std::pair<int32_t, int32_t> copies[] = {{0, int32_t(n_blocks - 1)}, {int32_t(n_blocks - 2), 1}};
            cpu.copy_kv_blocks(store.cpu, copies);
            dev.copy_kv_blocks(store.dev, copies);
            check_close(cpu, dev, as_twin(store), 0.0, "kv_append + copy_kv_blocks " + what);
          }
        }
      }
    }
  });
}

TEST_CASE("backend ops: paged attention over ragged batches, GQA, windows, shared blocks") {
  struct Heads {
    int64_t Hkv, G, d;
  };
  struct Case {
    const char* name;
    std::vector<SeqSpec> seqs;
    bool interleave;
  };
  const std::vector<Case> layouts = {
      {"decode, 1 row after 500 cached keys", {{500, 1}}, false},
      {"prefill 19 rows", {{0, 19}}, false},
      {"prefill 500 rows", {{0, 500}}, false},
      {"111 rows of 3 sequences, interleaved, different cached lengths", {{37, 50}, {0, 40}, {300, 21}}, true},
      {"decode batch of 8 lengths 1..481", {{0, 1}, {1, 1}, {15, 1}, {16, 1}, {17, 1}, {100, 1}, {255, 1}, {480, 1}}, false},
      {"forks sharing blocks", {{67, 3}, {64, 5, 0, 64}, {96, 2, 0, 64}}, true},
  };
  for_each_device([&](Backend& cpu, Backend& dev) {
    for (DType dt : {DType::F32, DType::BF16}) {
      // G = 1, 3, 4, 8 and 20 (two head chunks, the second partial); head_dim 8 to 256 (> 48 KB of shared memory).
      for (Heads hd : {Heads{2, 1, 64}, Heads{2, 4, 128}, Heads{1, 8, 64}, Heads{2, 8, 128}, Heads{3, 3, 64},
                       Heads{2, 4, 16}, Heads{4, 2, 8}, Heads{1, 20, 64}, Heads{2, 2, 256}}) {
        for (int64_t window : {0, 7, 40}) {
          for (int64_t bs : {16, 7}) {
            if (bs == 7 && hd.d != 64) continue;  // odd block sizes on a subset
            for (const Case& lc : layouts) {
              const int64_t H = hd.Hkv * hd.G;
              std::vector<SeqSpec> seqs = lc.seqs;
              if (bs != 16) {
                for (SeqSpec& s : seqs) s.shared = int(s.shared / bs * bs);
              }
              const HostLayout h = build_layout(seqs, bs, lc.interleave, 99);
              const int64_t T = int64_t(h.tokens.size());
              const std::string what = std::string(lc.name) + " " + std::string(dtype_name(dt)) +
                                       describe({{" Hkv", hd.Hkv}, {"G", hd.G}, {"d", hd.d}, {"window", window},
                                                 {"block_size", bs}});
              TwinStore store = make_store(cpu, dev, 1, h.n_blocks, hd.Hkv, bs, hd.d, dt, uint64_t(hd.d + T));
              TwinLayout lay(cpu, dev, h);
              const auto qv = random_values(T * H * hd.d, uint64_t(T * H), -2, 2);
              Twin q = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, &qv);
              Twin out = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, nullptr);
              const float scale = float(1.0 / std::sqrt(double(hd.d)));
              cpu.attention(q.cpu.t, store.cpu, 0, window, scale, lay.cpu, out.cpu.t);
              dev.attention(q.dev.t, store.dev, 0, window, scale, lay.dev, out.dev.t);
              check_close(cpu, dev, out, dt == DType::F32 ? kTightNse : kLowPrecisionNse, "attention " + what);
            }
          }
        }
      }
    }
  });
}

TEST_CASE("backend ops: sampling picks the CPU's token (greedy, temperature, top-k/p, min-p, penalties, bias)") {
  auto params = [](float t, int k, float p, float min_p, float penalty) {
    SamplingParams s;
    s.temperature = t;
    s.top_k = k;
    s.top_p = p;
    s.min_p = min_p;
    s.repetition_penalty = penalty;
    return s;
  };
  auto adjusted = [](SamplingParams s) {  // logit_bias (one id out of range) and OpenAI penalties
    s.logit_bias = {{3, 4.0f}, {5, -100.0f}, {999, 2.5f}, {int32_t(1) << 30, 1.0f}};
    s.frequency_penalty = 0.4f;
    s.presence_penalty = 0.3f;
    return s;
  };
  const std::vector<SamplingParams> settings = {
      params(0, 0, 1, 0, 1),      params(0, 0, 1, 0, 1.3f),  params(1, 1, 1, 0, 1),       params(0.7f, 0, 1, 0, 1),
      params(1, 50, 1, 0, 1),     params(1, 0, 0.9f, 0, 1),  params(1, 0, 1, 0.05f, 1),  params(2, 0, 0.5f, 0, 1),
      params(0.8f, 40, 0.95f, 0.02f, 1.3f), params(1.2f, 5000, 0.8f, 0, 0.7f),
      adjusted(params(0, 0, 1, 0, 1.3f)),   adjusted(params(0.9f, 0, 0.95f, 0, 1.3f)),
  };
  for_each_device([&](Backend& cpu, Backend& dev) {
    for (int64_t V : {1000, 32000, 128256}) {
      const int64_t R = int64_t(settings.size());
      const std::vector<float> logits = random_values(R * V, uint64_t(V), -6, 6);
      std::vector<int32_t> history = {0, 5, 5, 17, 999, int32_t(V - 1), 42, 42, 42};
      for (int64_t r = 0; r < R; r++) {  // make each row's argmax a penalised token too
        const auto* row = logits.data() + r * V;
        history.push_back(int32_t(std::max_element(row, row + V) - row));
      }
      Rng rng(uint64_t(V) + 1);
      for (int draw = 0; draw < 8; draw++) {
        // Uniforms away from the CPU's decision boundaries: the same token for u ± 1e-7.
        std::vector<SampleRequest> requests;
        std::vector<int32_t> expected;
        for (int64_t r = 0; r < R; r++) {
          const SamplingParams& p = settings[size_t(r)];
          auto cpu_pick = [&](double u) {
            std::vector<float> row(logits.begin() + r * V, logits.begin() + (r + 1) * V);
            return sample_logits(row, SampleRequest{p, u, history});
          };
          double u = rng.uniform();
          for (int tries = 0; tries < 50 && (cpu_pick(std::max(0.0, u - 1e-7)) != cpu_pick(std::min(u + 1e-7, 1 - 1e-12)));
               tries++)
            u = rng.uniform();
          requests.push_back(SampleRequest{p, u, history});
          expected.push_back(cpu_pick(u));
        }
        Twin lg = make_twin(cpu, dev, DType::F32, {R, V}, &logits);
        std::vector<int32_t> cpu_ids(static_cast<size_t>(R)), dev_ids(static_cast<size_t>(R), -1);
        cpu.sample(lg.cpu.t, requests, cpu_ids);
        dev.sample(lg.dev.t, requests, dev_ids);
        CAPTURE(V);
        CAPTURE(draw);
        CHECK(cpu_ids == expected);
        CHECK(dev_ids == expected);
        check_close(cpu, dev, lg, 0.0, "logits after the repetition penalty");
      }
      // Greedy-only batches take the argmax path without sorting.
      std::vector<SampleRequest> greedy(size_t(R), SampleRequest{params(0, 0, 1, 0, 1), 0.5, {}});
      Twin lg = make_twin(cpu, dev, DType::F32, {R, V}, &logits);
      std::vector<int32_t> cpu_ids(static_cast<size_t>(R)), dev_ids(static_cast<size_t>(R), -1);
      cpu.sample(lg.cpu.t, greedy, cpu_ids);
      dev.sample(lg.dev.t, greedy, dev_ids);
      CHECK(cpu_ids == dev_ids);
    }
    // Ties: greedy takes the first maximum; top-k keeps every token tied with the k-th.
    std::vector<float> tied(1000, -1.0f);
    tied[700] = tied[300] = tied[512] = 4.0f;
    tied[10] = tied[20] = tied[30] = 3.0f;
    for (const SamplingParams& p : {params(0, 0, 1, 0, 1), params(1, 4, 1, 0, 1), params(0.5f, 2, 1, 0, 1)}) {
      for (double u : {0.01, 0.3, 0.6, 0.95}) {
        std::vector<float> row = tied;
        const SampleRequest req{p, u, {}};
        const int32_t want = sample_logits(row, req);
        Twin lg = make_twin(cpu, dev, DType::F32, {1, 1000}, &tied);
        int32_t got = -1;
        dev.sample(lg.dev.t, std::span(&req, 1), std::span(&got, 1));
        CAPTURE(u);
        CHECK(got == want);
      }
    }
  });
}

TEST_CASE("backend ops: run_graph replays the recorded ops on new contents") {
  for_each_device([](Backend& cpu, Backend& dev) {
    const int64_t T = 3, D = 256;
    const auto wv = random_values(D, 1, 0.5f, 1.5f);
    Twin w = make_twin(cpu, dev, DType::F32, {D}, &wv);
    Twin x = make_twin(cpu, dev, DType::F32, {T, D}, nullptr), y = make_twin(cpu, dev, DType::F32, {T, D}, nullptr);
    Twin out = make_twin(cpu, dev, DType::F32, {T, D}, nullptr);
    const int64_t key[] = {42, T, D};
    for (int step = 0; step < 5; step++) {  // eager, capture, then replays
      const auto xv = random_values(T * D, uint64_t(10 + step)), yv = random_values(T * D, uint64_t(20 + step));
      fill(cpu, x.cpu, xv), fill(dev, x.dev, xv), fill(cpu, y.cpu, yv), fill(dev, y.dev, yv);
      for (auto [be, side] : {std::pair<Backend*, int>{&cpu, 0}, std::pair<Backend*, int>{&dev, 1}}) {
        Tensor& xt = side ? x.dev.t : x.cpu.t;
        Tensor& yt = side ? y.dev.t : y.cpu.t;
        Tensor& ot = side ? out.dev.t : out.cpu.t;
        Tensor& wt = side ? w.dev.t : w.cpu.t;
        be->run_graph(key, [&] {
          be->add_rmsnorm(xt, yt, wt, 1e-5f, ot);
          be->silu_mul(ot, xt, ot);
        });
      }
      CAPTURE(step);
      check_close(cpu, dev, out, kTightNse, "graph replay out");
      check_close(cpu, dev, x, kTightNse, "graph replay residual");
    }
  });
}

TEST_CASE("attention (CPU): a row's output is bit for bit the same in any batch, windows included") {
  // The same rows and cache twice: grouped (16-row work items per sequence) and interleaved (every
  // item one row). Attribution compares patched rows computed alone with rows of a full prefill.
  CpuBackend cpu(2);
  const std::vector<SeqSpec> seqs = {{37, 50}, {0, 40}, {300, 21}};
  for (DType dt : {DType::F32, DType::BF16}) {
    for (int64_t window : {0, 7, 40}) {
      const int64_t Hkv = 2, G = 3, d = 64, H = Hkv * G, bs = 16;
      const HostLayout grouped = build_layout(seqs, bs, false, 5), interleaved = build_layout(seqs, bs, true, 5);
      REQUIRE(grouped.block_tables == interleaved.block_tables);  // the same cache, rows in another order
      const int64_t T = int64_t(grouped.positions.size());
      TwinStore store = make_store(cpu, cpu, 1, grouped.n_blocks, Hkv, bs, d, dt, 3);
      TwinLayout a(cpu, cpu, grouped), b(cpu, cpu, interleaved);
      // q of a row depends on (sequence, position) only, so both batches ask the same questions.
      auto q_for = [&](const HostLayout& h) {
        std::vector<float> q(size_t(T * H * d));
        for (int64_t t = 0; t < T; t++) {
          const std::vector<float> row =
              random_values(H * d, uint64_t(h.row_seq[size_t(t)] * 1000 + h.positions[size_t(t)]), -2, 2);
          std::copy(row.begin(), row.end(), q.begin() + t * H * d);
        }
        return q;
      };
      const std::vector<float> qa = q_for(grouped), qb = q_for(interleaved);
      Twin q = make_twin(cpu, cpu, DType::F32, {T, H, d}, &qa);
      Twin q2 = make_twin(cpu, cpu, DType::F32, {T, H, d}, &qb);
      Twin out = make_twin(cpu, cpu, DType::F32, {T, H, d}, nullptr);
      const float scale = 0.125f;
      cpu.attention(q.cpu.t, store.cpu, 0, window, scale, a.cpu, out.cpu.t);
      cpu.attention(q2.cpu.t, store.cpu, 0, window, scale, b.cpu, out.dev.t);
      int64_t mismatched = 0;
      for (int64_t t = 0; t < T; t++) {
        int64_t u = 0;  // the same (sequence, position) in the interleaved batch
        while (interleaved.row_seq[size_t(u)] != grouped.row_seq[size_t(t)] ||
               interleaved.positions[size_t(u)] != grouped.positions[size_t(t)])
          u++;
        mismatched += std::memcmp(out.cpu.t.ptr<float>() + t * H * d, out.dev.t.ptr<float>() + u * H * d,
                                  size_t(H * d) * sizeof(float)) != 0;
      }
      CAPTURE(dtype_name(dt));
      CAPTURE(window);
      CHECK(mismatched == 0);
    }
  }
}

TEST_CASE("backend ops: place_weight of block-quantized weights keeps them or gives the BF16 of their values") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (DType dt : {DType::Q8_0, DType::Q4_1, DType::Q4_K, DType::Q5_K}) {
      CAPTURE(dtype_name(dt));
      const int64_t N = 37, K = 512;
      std::vector<uint8_t> raw(dtype_bytes(dt, N * K));
      uint64_t s = 7;
      for (auto& b : raw) b = uint8_t((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 56);
      const size_t bb = dtype_block_bytes(dt);
      const size_t scale_at = 0;  // d (and m / dmin after it) lead the block in these formats
      for (size_t b = 0; b < raw.size() / bb; b++) {  // finite F16 scales (d, and m / dmin)
        const uint16_t h = f32_to_f16(0.01f + 0.001f * float(b % 5));
        std::memcpy(raw.data() + b * bb + scale_at, &h, 2);
        if (dt != DType::Q8_0) std::memcpy(raw.data() + b * bb + scale_at + 2, &h, 2);
      }
      std::vector<float> want(size_t(N * K));
      to_f32(dt, raw.data(), want.data(), want.size());
      std::vector<Buffer> owned;
      const Tensor placed = dev.place_weight(Tensor(raw.data(), dt, {N, K}), owned);
      REQUIRE((placed.dtype == dt || placed.dtype == DType::BF16));
      CHECK(placed.shape[0] == N);
      std::vector<uint8_t> back(placed.nbytes());
      dev.download(back.data(), placed.data, back.size());
      std::vector<float> got(want.size());
      to_f32(placed.dtype, back.data(), got.data(), got.size());
      if (placed.dtype == DType::BF16)
        for (float& w : want) w = bf16_to_f32(f32_to_bf16(w));
      CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
    }
    (void)cpu;
  });
}

// --- training ops (train/): the backward of each forward op, the loss and AdamW --------------------

TEST_CASE("backend ops: training elementwise ops (fill, copy, add_scaled, mul, silu_mul_backward, adamw)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t n : {int64_t(1), int64_t(19), int64_t(111 * 64), int64_t(500 * 333)}) {
      const std::string what = describe({{"n", n}});
      const auto av = random_values(n, 1, -8, 8), bv = random_values(n, 2), cv = random_values(n, 3);
      Twin a = make_twin(cpu, dev, DType::F32, {n}, &av), b = make_twin(cpu, dev, DType::F32, {n}, &bv);
      Twin c = make_twin(cpu, dev, DType::F32, {n}, &cv), out = make_twin(cpu, dev, DType::F32, {n}, nullptr);
      Twin out2 = make_twin(cpu, dev, DType::F32, {n}, nullptr);
      cpu.mul(a.cpu.t, b.cpu.t, out.cpu.t);
      dev.mul(a.dev.t, b.dev.t, out.dev.t);
      check_close(cpu, dev, out, kTightNse, "mul " + what);
      cpu.add_scaled(out.cpu.t, c.cpu.t, -0.75f);
      dev.add_scaled(out.dev.t, c.dev.t, -0.75f);
      check_close(cpu, dev, out, kTightNse, "add_scaled " + what);
      cpu.silu_mul_backward(a.cpu.t, b.cpu.t, c.cpu.t, out.cpu.t, out2.cpu.t);
      dev.silu_mul_backward(a.dev.t, b.dev.t, c.dev.t, out.dev.t, out2.dev.t);
      check_close(cpu, dev, out, kTightNse, "silu_mul_backward dgate " + what);
      check_close(cpu, dev, out2, kTightNse, "silu_mul_backward dup " + what);
      cpu.copy(a.cpu.t, out.cpu.t);
      dev.copy(a.dev.t, out.dev.t);
      check_close(cpu, dev, out, 0.0, "copy " + what);
      cpu.fill(out2.cpu.t, 0.5f);
      dev.fill(out2.dev.t, 0.5f);
      check_close(cpu, dev, out2, 0.0, "fill " + what);
      CHECK(dev.sum_squares(a.dev.t) == doctest::Approx(cpu.sum_squares(a.cpu.t)).epsilon(1e-6));
      Backend::AdamWStep s;
      s.lr = 1e-3f, s.beta2 = 0.95f, s.weight_decay = 0.1f, s.step_size = 1e-2f, s.bias_correction2_sqrt = 0.2f;
      s.grad_scale = 0.5f;
      for (int step = 0; step < 3; step++) {  // param a, grad c, moments out (zero) and out2 (0.5)
        cpu.fill(out.cpu.t, 0.0f), dev.fill(out.dev.t, 0.0f);
        cpu.adamw(a.cpu.t, c.cpu.t, out.cpu.t, out2.cpu.t, s);
        dev.adamw(a.dev.t, c.dev.t, out.dev.t, out2.dev.t, s);
      }
      check_close(cpu, dev, a, kTightNse, "adamw param " + what);
      check_close(cpu, dev, out2, kTightNse, "adamw second moment " + what);
    }
  });
}

TEST_CASE("backend ops: linear_backward_input and linear_backward_weight (dtypes, odd shapes, accumulate)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    struct Shape {
      int64_t N, K;
    };
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (Shape s : {Shape{19, 256}, Shape{333, 172}, Shape{96, 111}, Shape{1000, 576}}) {
        for (int64_t T : {1, 5, 19, 111, 500}) {
          for (bool acc : {false, true}) {
            const std::string what =
                std::string(dtype_name(dt)) + describe({{" N", s.N}, {"K", s.K}, {"T", T}, {"accumulate", acc}});
            const auto dyv = random_values(T * s.N, uint64_t(T + s.N)), wv = random_values(s.N * s.K, uint64_t(s.K));
            const auto xv = random_values(T * s.K, 7), init = random_values(std::max(T * s.K, s.N * s.K), 8);
            Twin dy = make_twin(cpu, dev, DType::F32, {T, s.N}, &dyv), w = make_twin(cpu, dev, dt, {s.N, s.K}, &wv);
            Twin x = make_twin(cpu, dev, DType::F32, {T, s.K}, &xv);
            const std::vector<float> dx0(init.begin(), init.begin() + T * s.K), dw0(init.begin(), init.begin() + s.N * s.K);
            const std::vector<float> db0(init.begin(), init.begin() + s.N);
            Twin dx = make_twin(cpu, dev, DType::F32, {T, s.K}, acc ? &dx0 : nullptr);
            cpu.linear_backward_input(dy.cpu.t, w.cpu.t, dx.cpu.t, acc);
            dev.linear_backward_input(dy.dev.t, w.dev.t, dx.dev.t, acc);
            check_close(cpu, dev, dx, dt == DType::F32 ? kTightNse : kLowPrecisionNse, "linear_backward_input " + what);
            if (dt != DType::F32) continue;  // weight gradients are F32 whatever the weight's dtype
            Twin dw = make_twin(cpu, dev, DType::F32, {s.N, s.K}, acc ? &dw0 : nullptr);
            Twin db = make_twin(cpu, dev, DType::F32, {s.N}, acc ? &db0 : nullptr);
            cpu.linear_backward_weight(dy.cpu.t, x.cpu.t, dw.cpu.t, &db.cpu.t, acc);
            dev.linear_backward_weight(dy.dev.t, x.dev.t, dw.dev.t, &db.dev.t, acc);
            check_close(cpu, dev, dw, kTightNse, "linear_backward_weight " + what);
            check_close(cpu, dev, db, kTightNse, "linear_backward_weight bias " + what);
          }
        }
      }
    }
  });
}

TEST_CASE("backend ops: rmsnorm_backward (dx, accumulate, dw)") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t T : kRows) {
      for (int64_t D : {64, 111, 2048}) {
        const std::string what = describe({{"T", T}, {"D", D}});
        const auto xv = random_values(T * D, uint64_t(T * D), -3, 3), wv = random_values(D, 3, 0.5f, 1.5f);
        const auto dyv = random_values(T * D, 4), dwv = random_values(D, 5);
        Twin x = make_twin(cpu, dev, DType::F32, {T, D}, &xv), w = make_twin(cpu, dev, DType::F32, {D}, &wv);
        Twin dy = make_twin(cpu, dev, DType::F32, {T, D}, &dyv), dx = make_twin(cpu, dev, DType::F32, {T, D}, nullptr);
        Twin dw = make_twin(cpu, dev, DType::F32, {D}, &dwv);
        cpu.rmsnorm_backward(x.cpu.t, w.cpu.t, 1e-5f, dy.cpu.t, dx.cpu.t, &dw.cpu.t, false);
        dev.rmsnorm_backward(x.dev.t, w.dev.t, 1e-5f, dy.dev.t, dx.dev.t, &dw.dev.t, false);
        check_close(cpu, dev, dx, kTightNse, "rmsnorm_backward dx " + what);
        check_close(cpu, dev, dw, kTightNse, "rmsnorm_backward dw " + what);
        cpu.rmsnorm_backward(x.cpu.t, w.cpu.t, 1e-6f, dy.cpu.t, dx.cpu.t, nullptr, true);
        dev.rmsnorm_backward(x.dev.t, w.dev.t, 1e-6f, dy.dev.t, dx.dev.t, nullptr, true);
        check_close(cpu, dev, dx, kTightNse, "rmsnorm_backward accumulated dx " + what);
      }
    }
  });
}

TEST_CASE("backend ops: attention_backward over whole ragged sequences, GQA, windows, F32 and BF16 caches") {
  const std::vector<std::vector<SeqSpec>> layouts = {
      {{0, 1}}, {{0, 19}}, {{0, 300}}, {{0, 50}, {0, 1}, {0, 37}, {0, 130}}};
  struct Heads {
    int64_t Hkv, G, d;
  };
  for_each_device([&](Backend& cpu, Backend& dev) {
    for (DType dt : {DType::F32, DType::BF16}) {
      for (Heads hd : {Heads{2, 1, 64}, Heads{2, 4, 128}, Heads{1, 8, 64}, Heads{3, 3, 16}, Heads{2, 2, 256}}) {
        for (int64_t window : {0, 7}) {
          for (int64_t bs : {16, 7}) {
            for (const auto& seqs : layouts) {
              const HostLayout h = build_layout(seqs, bs, false, 11);
              const int64_t T = int64_t(h.tokens.size()), H = hd.Hkv * hd.G;
              const std::string what = std::string(dtype_name(dt)) +
                                       describe({{" T", T}, {"Hkv", hd.Hkv}, {"G", hd.G}, {"d", hd.d},
                                                 {"window", window}, {"block_size", bs}});
              TwinStore store = make_store(cpu, dev, 1, h.n_blocks, hd.Hkv, bs, hd.d, dt, uint64_t(T + hd.d));
              TwinLayout lay(cpu, dev, h);
              const auto qv = random_values(T * H * hd.d, 1, -2, 2), ov = random_values(T * H * hd.d, 2);
              const auto gv = random_values(T * H * hd.d, 3);
              Twin q = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, &qv);
              Twin out = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, &ov);
              Twin dout = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, &gv);
              Twin dq = make_twin(cpu, dev, DType::F32, {T, H, hd.d}, nullptr);
              Twin dk = make_twin(cpu, dev, DType::F32, {T, hd.Hkv, hd.d}, nullptr);
              Twin dv = make_twin(cpu, dev, DType::F32, {T, hd.Hkv, hd.d}, nullptr);
              const float scale = float(1.0 / std::sqrt(double(hd.d)));
              cpu.attention_backward(q.cpu.t, store.cpu, 0, window, scale, lay.cpu, out.cpu.t, dout.cpu.t, dq.cpu.t,
                                     dk.cpu.t, dv.cpu.t);
              dev.attention_backward(q.dev.t, store.dev, 0, window, scale, lay.dev, out.dev.t, dout.dev.t, dq.dev.t,
                                     dk.dev.t, dv.dev.t);
              check_close(cpu, dev, dq, kTightNse, "attention_backward dq " + what);
              check_close(cpu, dev, dk, kTightNse, "attention_backward dk " + what);
              check_close(cpu, dev, dv, kTightNse, "attention_backward dv " + what);
            }
          }
        }
      }
    }
  });
}

TEST_CASE("backend ops: embedding_backward, gather_rows_backward and cross_entropy") {
  for_each_device([](Backend& cpu, Backend& dev) {
    for (int64_t V : {1000, 32000}) {
      for (int T : {1, 19, 500}) {
        const int64_t D = 111;
        const std::string what = describe({{"V", V}, {"T", T}});
        HostLayout h = build_layout({{0, T}}, 16, false, uint64_t(T), V / 50);  // tokens repeat
        h.logit_rows.clear();
        for (int t = 0; t < T; t += 3) h.logit_rows.push_back(t);
        TwinLayout lay(cpu, dev, h);
        const int64_t R = int64_t(h.logit_rows.size());
        const auto dxv = random_values(T * D, 1), tabv = random_values(V * D, 2), rv = random_values(R * D, 3);
        Twin dx = make_twin(cpu, dev, DType::F32, {T, D}, &dxv), table = make_twin(cpu, dev, DType::F32, {V, D}, &tabv);
        Twin rows = make_twin(cpu, dev, DType::F32, {R, D}, &rv);
        cpu.embedding_backward(dx.cpu.t, lay.cpu, table.cpu.t);
        dev.embedding_backward(dx.dev.t, lay.dev, table.dev.t);
        check_close(cpu, dev, table, kTightNse, "embedding_backward " + what);
        cpu.gather_rows_backward(rows.cpu.t, lay.cpu, dx.cpu.t);
        dev.gather_rows_backward(rows.dev.t, lay.dev, dx.dev.t);
        check_close(cpu, dev, dx, kTightNse, "gather_rows_backward " + what);

        const auto lv = random_values(T * V, 4, -12, 12), wv = random_values(T, 5, 0, 2);
        std::vector<float> targets_f(static_cast<size_t>(T));
        for (int t = 0; t < T; t++) targets_f[size_t(t)] = float((t * 7919) % V);
        Twin logits = make_twin(cpu, dev, DType::F32, {T, V}, &lv), weights = make_twin(cpu, dev, DType::F32, {T}, &wv);
        Twin loss = make_twin(cpu, dev, DType::F32, {T}, nullptr);
        Guarded tc = make_tensor(cpu, DType::I32, {T}), td = make_tensor(dev, DType::I32, {T});
        std::vector<int32_t> targets(targets_f.begin(), targets_f.end());
        cpu.upload(tc.t.data, targets.data(), targets.size() * 4);
        dev.upload(td.t.data, targets.data(), targets.size() * 4);
        cpu.cross_entropy(logits.cpu.t, tc.t, weights.cpu.t, loss.cpu.t);
        dev.cross_entropy(logits.dev.t, td.t, weights.dev.t, loss.dev.t);
        check_close(cpu, dev, loss, kTightNse, "cross_entropy loss " + what);
        check_close(cpu, dev, logits, kTightNse, "cross_entropy gradient " + what);
      }
    }
  });
}
