// tiller-bench-profiles: decode throughput with steering profiles, beside the base model in the
// same run.
//
// For each batch size: the base model; one Soteria-shaped profile merged into the weights; the
// same profile applied per row; 4 and 12 distinct profiles mixed in the batch (rows round-robin).
// Configurations alternate within each round and the median over rounds is reported, so a noisy
// neighbour moves them alike. Beside each figure: the bytes a step must read (weights, KV, and the
// deltas of the profiles present) and the fraction of the measured bandwidth achieved; the cost
// of a mixed batch is set against the extra delta bytes it reads. Profiles are random,
// Soteria-shaped (half of each layer's heads, o_proj columns, the model's dtype).
//
//   tiller-bench-profiles --random-config config.json [--dtype bf16] [--threads N] [--batch 16,64]
//                         [--steps 32] [--context 64] [--rounds 3] [--out FILE.jsonl] [--commit SHA]
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <numeric>

#include "bench/flags.h"
#include "bench/roofline.h"
#include "engine/json_file.h"
#include "engine/sampler.h"
#include "kernels/backends.h"
#include "models/random_weights.h"
#include "steering/model_fingerprint.h"
#include "steering/profile_delta.h"

namespace {

constexpr const char* kUsage = R"(Usage: tiller-bench-profiles --random-config config.json [--dtype bf16] [--threads N]
                             [--batch 16,64] [--steps 32] [--context 64] [--rounds 3] [--out FILE.jsonl]
                             [--commit SHA]
Decode tok/s with 0, 1 merged, 1 per-row, 4 and 12 mixed steering profiles, beside the roofline.
)";

using namespace tiller;
using namespace tiller::bench;

struct Options {
  std::string config, dtype = "bf16", out, commit = "unknown";
  int threads = 0;
  int64_t steps = 32, context = 64, rounds = 3;
  std::vector<int64_t> batches = {16, 64};
};

Options parse(int argc, char** argv) {
  Options o;
  for_each_flag(argc, argv, kUsage, [&](const std::string& a, auto& next) {
    if (a == "--random-config") o.config = next();
    else if (a == "--dtype") o.dtype = next();
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--steps") o.steps = std::stoll(next());
    else if (a == "--context") o.context = std::stoll(next());
    else if (a == "--rounds") o.rounds = std::stoll(next());
    else if (a == "--out") o.out = next();
    else if (a == "--commit") o.commit = next();
    else if (a == "--batch") o.batches = int_list(next());
    else return false;
    return true;
  });
  if (o.config.empty()) usage_exit(kUsage, "--random-config is required");
  return o;
}

// Half of every layer's heads, o_proj columns, random values of the size a Soteria delta has.
Profile random_soteria_profile(const Model& model, uint64_t seed, const std::string& fingerprint) {
  const ModelConfig& c = model.config();
  Rng rng(seed);
  Profile p;
  p.manifest.method = "soteria";
  p.manifest.base_fingerprint = fingerprint;
  for (int l = 0; l < c.n_layers; l++) {
    std::vector<int32_t> heads(size_t(c.n_heads));
    std::iota(heads.begin(), heads.end(), 0);
    for (size_t i = heads.size() - 1; i > 0; i--) std::swap(heads[i], heads[size_t(rng.next() % (i + 1))]);
    heads.resize(size_t(std::max<int64_t>(1, c.n_heads / 2)));
    std::sort(heads.begin(), heads.end());
    const int64_t width = int64_t(heads.size()) * c.head_dim;
    std::vector<float> v(size_t(c.hidden_size * width));
    for (float& x : v) x = float(rng.uniform() - 0.5) * 0.002f;
    WeightDelta d;
    d.kind = DeltaKind::ColumnBlocks;
    d.module = {l, Projection::O};
    d.a = HostTensor::from_f32(v, {c.hidden_size, width}, model.weight_dtype());
    d.blocks = heads;
    p.deltas.push_back(std::move(d));
  }
  return p;
}

double weight_bytes(const Model& m) {
  double total = double(m.weights().lm_head.nbytes());
  for (const LayerWeights& L : m.weights().layers)
    for (const Tensor* t : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) total += double(t->nbytes());
  return total;
}

// Seconds per decode step of `batch` sequences whose row i uses adapter adapters(i).
double decode_step_seconds(Model& model, ProjectionDelta* delta, int64_t batch, const Options& o,
                           const std::function<int32_t(int64_t)>& adapter) {
  Backend& be = model.backend();
  const ModelConfig& c = model.config();
  KvCache kv(be, model.kv_cache_options(o.context + o.steps + 8, batch));
  Batch b;
  std::vector<SeqId> seqs;
  Rng rng(7);
  for (int64_t s = 0; s < batch; s++) {
    seqs.push_back(kv.create());
    for (int64_t t = 0; t < o.context; t++)
      b.add(int32_t(rng.next() % uint64_t(c.vocab_size)), seqs.back(), int32_t(t), t + 1 == o.context, adapter(s));
  }
  ForwardOptions fo;
  fo.delta = delta;
  Tensor logits = model.forward(b, kv, fo);
  const std::vector<SampleRequest> greedy(static_cast<size_t>(batch));
  std::vector<int32_t> next(static_cast<size_t>(batch));
  std::vector<double> times;
  for (int64_t i = 0; i < o.steps + 2; i++) {
    const auto t0 = Clock::now();
    be.sample(logits, greedy, next);
    b.clear();
    for (int64_t s = 0; s < batch; s++) b.add(next[size_t(s)], seqs[size_t(s)], int32_t(kv.length(seqs[size_t(s)])), true, adapter(s));
    logits = model.forward(b, kv, fo);
    if (i >= 2) times.push_back(seconds_since(t0));  // two warm-up steps
  }
  std::nth_element(times.begin(), times.begin() + long(times.size() / 2), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  CpuBackend backend(o.threads);
  const json cfg_json = read_json_file(o.config);
  const ModelConfig cfg = parse_model_config(cfg_json, o.config);
  const DType dtype = o.dtype == "f32" ? DType::F32 : o.dtype == "f16" ? DType::F16 : DType::BF16;
  const RandomWeightOptions rw{0, cfg_json.value("initializer_range", 0.02)};
  auto base = random_model(cfg, backend, dtype, rw, backend.pool());
  auto merged = random_model(cfg, backend, dtype, rw, backend.pool());
  const std::string fp = model_fingerprint(*base);
  std::vector<std::shared_ptr<Profile>> profiles;
  for (int i = 0; i < 12; i++) profiles.push_back(std::make_shared<Profile>(random_soteria_profile(*base, 100 + uint64_t(i), fp)));
  merge_profile(*merged, *profiles[0]);
  ProfileSet set(backend, cfg);
  for (int i = 0; i < 12; i++) set.add("p" + std::to_string(i), profiles[size_t(i)]);
  const double profile_bytes = double(profiles[0]->nbytes()), wbytes = weight_bytes(*base);
  const Bandwidth bw = measure_bandwidth(backend.pool());
  const double kv_token = 2.0 * double(cfg.n_layers * cfg.kv_dim()) * double(dtype_size(dtype));
  std::printf("%s %s, %s; memory bandwidth: STREAM copy %.1f GB/s, read-only %.1f GB/s\n", cfg.architecture_name.c_str(),
              o.config.c_str(), backend.name().c_str(), bw.copy_gbs, bw.read_gbs);
  std::printf("one profile: %.2f MiB of deltas (%.1f%% of the model's %.1f MiB of weights)\n", profile_bytes / 1048576.0,
              100.0 * profile_bytes / wbytes, wbytes / 1048576.0);

  struct Config {
    const char* name;
    Model* model;
    ProjectionDelta* delta;
    int profiles;  // distinct profiles in the batch (their deltas are read each step)
  };
  const std::vector<Config> configs = {{"base", base.get(), nullptr, 0},
                                       {"1 merged", merged.get(), nullptr, 0},
                                       {"1 per-row", base.get(), &set, 1},
                                       {"4 mixed", base.get(), &set, 4},
                                       {"12 mixed", base.get(), &set, 12}};
  for (int64_t batch : o.batches) {
    std::map<std::string, std::vector<double>> seconds;
    for (int64_t r = 0; r < o.rounds; r++) {
      for (const Config& cf : configs) {
        const int n = std::max(cf.profiles, 1);
        seconds[cf.name].push_back(decode_step_seconds(*cf.model, cf.delta, batch, o, [&](int64_t s) {
          return cf.profiles == 0 ? 0 : int32_t(1 + s % n);
        }));
      }
    }
    double base_s = 0;
    for (const Config& cf : configs) {
      auto& v = seconds[cf.name];
      std::sort(v.begin(), v.end());
      const double s = v[v.size() / 2];
      if (cf.profiles == 0 && std::string(cf.name) == "base") base_s = s;
      const int present = std::min<int64_t>(cf.profiles, batch);
      const double extra = profile_bytes * present;
      const double step_bytes = wbytes + extra + kv_token * double(o.context + o.steps / 2) * double(batch);
      const double frac = step_bytes / s / 1e9 / bw.copy_gbs;
      const double roofline_cost = extra / (wbytes + kv_token * double(o.context + o.steps / 2) * double(batch));
      std::printf("batch %3lld  %-10s %8.1f tok/s  step %7.2f ms (%+5.1f%% vs base; delta bytes %+5.1f%%)  "
                  "%6.1f MB/step  %5.1f%% of STREAM copy\n",
                  (long long)batch, cf.name, double(batch) / s, s * 1e3, 100 * (s / base_s - 1), 100 * roofline_cost,
                  step_bytes / 1e6, 100 * frac);
      if (o.out.empty()) continue;
      char date[32];
      const std::time_t now = std::time(nullptr);
      std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
      const json j = {{"date", date}, {"commit", o.commit}, {"device", backend.name()}, {"engine", "tiller"},
                      {"shape", std::filesystem::path(o.config).stem().string()}, {"dtype", dtype_name(dtype)},
                      {"batch", batch}, {"phase", "decode"}, {"profiles", cf.name}, {"tok_s", double(batch) / s},
                      {"step_ms", s * 1e3}, {"vs_base", s / base_s}, {"extra_delta_bytes", extra},
                      {"bytes_per_step", step_bytes}, {"measured_bw_gbs", bw.copy_gbs}, {"bw_fraction", frac},
                      {"rounds", o.rounds}, {"profile_bytes", profile_bytes}, {"model_weight_bytes", wbytes}};
      std::ofstream(o.out, std::ios::app) << j.dump() << "\n";
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tiller-bench-profiles: %s\n", e.what());
  return 1;
}
