// tiller-bench-attribution: head attribution throughput, fast (staggered batch over forks of the
// cached prompt) against naive (one full forward per patched head), and the wall time of
// Soteria's whole protocol projected from it.
//
// Prints patched passes per second for both paths, the speed-up, FLOPs per patched pass beside
// the achieved GFLOP/s (and the machine's memory bandwidth on the CPU), the fast path's agreement
// with the naive one on the same trial, and the projection for 12 languages x 5 tasks x 25
// trials x L·H heads (and for the 53 task files that exist). Appends one JSON line to --out.
//
//   tiller-bench-attribution (--model DIR | --random-config config.json [--dtype bf16] [--seed S])
//                            [--device cpu|cuda] [--threads N] [--prompt 96] [--trials 3] [--naive-trials 1]
//                            [--mean-prompts 4] [--batch-rows 1024] [--shape NAME] [--out FILE.jsonl]
//                            [--commit SHA]
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_model.h"
#include "bench/roofline.h"
#include "bench/flags.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/sampler.h"
#include "kernels/backends.h"
#include "models/model.h"
#include "steering/attribution.h"

namespace {

constexpr const char* kUsage = R"(Usage: tiller-bench-attribution (--model DIR | --random-config config.json [--dtype bf16] [--seed S])
                                [--device cpu|cuda] [--threads N] [--prompt 96] [--trials 3]
                                [--naive-trials 1] [--mean-prompts 4] [--batch-rows 1024] [--shape NAME]
                                [--out FILE.jsonl] [--commit SHA]
Patched passes per second, fast against naive, and the projected time of Soteria's protocol.
)";

using namespace tiller;
using namespace tiller::bench;

struct Options {
  std::string model, random_config, dtype = "bf16", shape, out, commit = "unknown", device = "cpu";
  uint64_t seed = 0;
  int threads = 0;
  int64_t prompt = 96, trials = 3, naive_trials = 1, mean_prompts = 4, batch_rows = 1024;
};

Options parse(int argc, char** argv) {
  Options o;
  for_each_flag(argc, argv, kUsage, [&](const std::string& a, auto& next) {
    if (a == "--model") o.model = next();
    else if (a == "--random-config") o.random_config = next();
    else if (a == "--dtype") o.dtype = next();
    else if (a == "--seed") o.seed = std::stoull(next());
    else if (a == "--device") o.device = next();
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--prompt") o.prompt = std::stoll(next());
    else if (a == "--trials") o.trials = std::stoll(next());
    else if (a == "--naive-trials") o.naive_trials = std::stoll(next());
    else if (a == "--mean-prompts") o.mean_prompts = std::stoll(next());
    else if (a == "--batch-rows") o.batch_rows = std::stoll(next());
    else if (a == "--shape") o.shape = next();
    else if (a == "--out") o.out = next();
    else if (a == "--commit") o.commit = next();
    else return false;
    return true;
  });
  if (o.model.empty() == o.random_config.empty()) fail("give one of --model DIR or --random-config config.json");
  if (o.prompt < 2 || o.trials < 1 || o.naive_trials < 0 || o.mean_prompts < 1) fail("bad sizes");
  if (o.shape.empty()) o.shape = default_shape_name(o.model, o.random_config);
  return o;
}

// A prompt of n random tokens (BOS-free: a random-init model has no tokenizer) and a target.
AttributionPrompt random_prompt(int64_t n, int64_t vocab, uint64_t seed, AttributionPrompt::Kind kind) {
  Rng rng(seed);
  AttributionPrompt p;
  p.kind = kind;
  for (int64_t i = 0; i < n; i++) p.tokens.push_back(int32_t(rng.next() % uint64_t(vocab)));
  p.target = int32_t(rng.next() % uint64_t(vocab));
  return p;
}

// Multiply-adds of one layer's projections for one row, times two.
double layer_flops(const ModelConfig& c) {
  return 2.0 * double(c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
                      3 * c.hidden_size * c.intermediate_size);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  std::unique_ptr<Backend> backend = make_backend(o.device, o.threads);
  ThreadPool host_pool(o.threads);  // random weights on the host
  const auto model = load_bench_model(o.model, o.random_config, o.dtype, o.seed, *backend, host_pool);
  const ModelConfig& c = model->config();
  const int64_t L = c.n_layers, H = c.n_heads, LH = L * H, n = o.prompt;
  std::printf("model %s: %s, %lld layers x %lld heads, %.1fM parameters, %s weights; backend %s\n",
              (o.model.empty() ? o.random_config : o.model).c_str(), c.architecture_name.c_str(), (long long)L,
              (long long)H, double(c.n_parameters()) / 1e6, std::string(dtype_name(model->weight_dtype())).c_str(),
              backend->name().c_str());
  double bw_gbs = 0;
  if (auto* cpu = dynamic_cast<CpuBackend*>(backend.get())) {
    bw_gbs = measure_bandwidth(cpu->pool()).copy_gbs;
    std::printf("memory bandwidth: STREAM copy %.1f GB/s\n", bw_gbs);
  }

  std::vector<AttributionPrompt> clean, corrupted;
  for (int64_t i = 0; i < o.mean_prompts; i++)
    clean.push_back(random_prompt(n, c.vocab_size, 100 + uint64_t(i), AttributionPrompt::Kind::Clean));
  for (int64_t i = 0; i < std::max(o.trials, o.naive_trials); i++)
    corrupted.push_back(random_prompt(n, c.vocab_size, 200 + uint64_t(i), AttributionPrompt::Kind::Corrupted));

  mean_head_activations(*model, std::span(clean).first(1), PatchPositions::Last, o.batch_rows);  // warm-up: fault weights in
  auto t0 = Clock::now();
  const MeanHeadActivations mean = mean_head_activations(*model, clean, PatchPositions::Last, o.batch_rows);
  const double mean_s_per_prompt = seconds_since(t0) / double(o.mean_prompts);

  AttributionOptions opt;
  opt.max_rows = o.batch_rows;
  t0 = Clock::now();
  const AttributionResult fast = attribute_heads(*model, mean, std::span(corrupted).first(size_t(o.trials)), opt);
  const double fast_s_per_trial = seconds_since(t0) / double(o.trials);
  double naive_s_per_trial = 0, agreement = -1, max_ie = 0;
  if (o.naive_trials > 0) {
    opt.naive = true;
    t0 = Clock::now();
    const AttributionResult naive = attribute_heads(*model, mean, std::span(corrupted).first(size_t(o.naive_trials)), opt);
    naive_s_per_trial = seconds_since(t0) / double(o.naive_trials);
    double diff = 0;
    for (int64_t i = 0; i < LH; i++) {
      diff = std::max(diff, double(std::abs(naive.indirect_effect[size_t(i)] - fast.indirect_effect[size_t(i)])));
      max_ie = std::max(max_ie, double(std::abs(naive.indirect_effect[size_t(i)])));
    }
    agreement = max_ie > 0 ? diff / max_ie : diff;
  }

  // FLOPs per patched pass. Fast: row (l, h) runs layers l..L-1 plus lm_head, and each trial's
  // prefill is shared by its L·H patches. Naive: a full forward of the prompt.
  const double lm_head = 2.0 * double(c.vocab_size * c.hidden_size);
  const double prefill = layer_flops(c) * double(L * n) + lm_head;
  const double fast_flops = layer_flops(c) * double(L + 1) / 2.0 + lm_head + prefill / double(LH);
  const double naive_flops = prefill;
  const double fast_rate = double(LH) / fast_s_per_trial;
  std::printf("fast : %8.1f patched passes/s  %6.2f s/trial  %6.1f MFLOP/pass  %7.1f GFLOP/s\n", fast_rate,
              fast_s_per_trial, fast_flops / 1e6, fast_flops * fast_rate / 1e9);
  double speedup = 0;
  if (o.naive_trials > 0) {
    const double naive_rate = double(LH) / naive_s_per_trial;
    speedup = naive_s_per_trial / fast_s_per_trial;
    std::printf("naive: %8.1f patched passes/s  %6.2f s/trial  %6.1f MFLOP/pass  %7.1f GFLOP/s\n", naive_rate,
                naive_s_per_trial, naive_flops / 1e6, naive_flops * naive_rate / 1e9);
    std::printf("speed-up %.1fx; fast vs naive on the same trial: max|dIE| / max|IE| = %.2e, max|IE| %.2e\n"
                "(%s weights; the two paths run different row counts per matmul, whose kernels sum in another\n"
                "order; a random model's effects are tiny, so this ratio is mostly that rounding)\n",
                speedup, agreement, max_ie, std::string(dtype_name(model->weight_dtype())).c_str());
  }
  // Soteria: 25 clean prompts and 25 trials per (task, language) file.
  const double per_file = 25 * mean_s_per_prompt + 25 * fast_s_per_trial;
  const double per_file_naive = 25 * mean_s_per_prompt + 25 * naive_s_per_trial;
  std::printf("projected protocol (25 mean prompts + 25 trials x %lld heads per file, %lld-token prompts):\n"
              "  12 languages x 5 tasks = 60 files: fast %.1f min", (long long)LH, (long long)n, 60 * per_file / 60);
  if (o.naive_trials > 0) std::printf(", naive %.1f h", 60 * per_file_naive / 3600);
  std::printf("\n  the 53 files that exist (7 ag_news missing): fast %.1f min\n", 53 * per_file / 60);

  if (!o.out.empty()) {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    json j = {{"date", date}, {"commit", o.commit}, {"device", backend->name()}, {"engine", "tiller"},
              {"bench", "attribution"}, {"shape", o.shape}, {"dtype", std::string(dtype_name(model->weight_dtype()))},
              {"prompt_tokens", n}, {"trials", o.trials}, {"batch_rows", o.batch_rows},
              {"fast_passes_per_s", fast_rate}, {"fast_gflops", fast_flops * fast_rate / 1e9},
              {"protocol_60_files_fast_s", 60 * per_file}, {"measured_bw_gbs", bw_gbs}};
    if (o.naive_trials > 0) {
      j["naive_passes_per_s"] = double(LH) / naive_s_per_trial;
      j["speedup"] = speedup;
      j["fast_vs_naive_rel"] = agreement;
      j["protocol_60_files_naive_s"] = 60 * per_file_naive;
    }
    std::ofstream(o.out, std::ios::app) << j.dump() << "\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tiller-bench-attribution: %s\n", e.what());
  return 1;
}
