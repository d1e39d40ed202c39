// tiller-bench-train: training throughput (tokens/s) of LoRA or full fine-tuning, beside the CPU's
// GEMM throughput measured in the same run (the roofline of a compute-bound step), and peak memory.
//
// A step is what `tiller finetune` runs: --batch sequences of --seq random tokens (loss on every
// token), forward with the training tape, the cross-entropy, the decoder's backward and AdamW.
// Model FLOPs per token count the projections (lm_head included): forward 2·P, input gradients
// 2·P, and for full training weight gradients 2·P more; attention and the elementwise ops are left
// out, so the fraction is a lower bound of the work done. Appends a JSON line per run to --out.
//
//   tiller-bench-train --model DIR [--train lora|full] [--lora-targets q_proj,v_proj] [--lora-rank 8]
//                      [--batch 4] [--seq 256] [--steps 5] [--threads N] [--recompute]
//                      [--shape NAME] [--out FILE.jsonl] [--commit SHA] [--device TEXT]
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/flags.h"
#include "bench/roofline.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/sampler.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul.h"
#include "models/model.h"
#include "train/finetune.h"
#include "train/trainer.h"

namespace {

constexpr const char* kUsage = R"(Usage: tiller-bench-train --model DIR [--train lora|full] [--lora-targets q_proj,v_proj]
                          [--lora-rank 8] [--batch 4] [--seq 256] [--steps 5] [--threads N] [--recompute]
                          [--shape NAME] [--out FILE.jsonl] [--commit SHA] [--device TEXT]
Training tokens/s (LoRA or full) on the CPU beside the GEMM GFLOP/s measured in the same run, and peak memory.
)";

using namespace tiller;
using namespace tiller::bench;

struct Options {
  std::string model, train = "lora", targets = "q_proj,v_proj", shape, out, commit = "unknown", device;
  int64_t rank = 8, batch = 4, seq = 256, steps = 5;
  int threads = 0;
  bool recompute = false;
};

// The machine's F32 GEMM rate on a projection-shaped product (best of 3), all threads.
double measure_gemm_gflops(ThreadPool& pool) {
  const int64_t T = 1024, K = 576, N = 1536;
  std::vector<float> x(size_t(T * K), 0.5f), w(size_t(N * K), 0.25f), y(size_t(T * N));
  double best = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    const auto t0 = Clock::now();
    cpu::matmul(x.data(), T, K, w.data(), DType::F32, N, nullptr, y.data(), pool);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * double(T * K * N) / best / 1e9;
}

double projection_params(const ModelConfig& c) {
  return double(c.n_layers) * double(c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
                                     3 * c.hidden_size * c.intermediate_size) +
         double(c.vocab_size * c.hidden_size);
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  for_each_flag(argc, argv, kUsage, [&](const std::string& a, auto& next) {
    if (a == "--model") o.model = next();
    else if (a == "--train") o.train = next();
    else if (a == "--lora-targets") o.targets = next();
    else if (a == "--lora-rank") o.rank = std::stoll(next());
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--seq") o.seq = std::stoll(next());
    else if (a == "--steps") o.steps = std::stoll(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--recompute") o.recompute = true;
    else if (a == "--shape") o.shape = next();
    else if (a == "--out") o.out = next();
    else if (a == "--commit") o.commit = next();
    else if (a == "--device") o.device = next();
    else return false;
    return true;
  });
  if (o.model.empty()) usage_exit(kUsage, "--model is required");
  if (o.shape.empty()) o.shape = std::filesystem::path(o.model).filename().string();
  CpuBackend backend(o.threads);
  auto model = Model::load(o.model, backend);
  const ModelConfig& c = model->config();
  TrainSpec spec;
  if (o.train == "full") spec.kind = TrainKind::Full;
  else if (o.train != "lora") fail("--train expects lora or full");
  spec.lora.rank = o.rank;
  spec.lora.alpha = double(o.rank);
  spec.lora.targets = parse_lora_targets(o.targets);
  auto trainable = make_trainable(*model, spec, 1);

  std::vector<SftExample> examples;
  Rng rng(7);
  for (int64_t b = 0; b < o.batch; b++) {
    SftExample e;
    for (int64_t t = 0; t < o.seq; t++) e.tokens.push_back(int32_t(rng.next() % uint64_t(c.vocab_size)));
    e.target.assign(e.tokens.size(), 1);
    e.target[0] = 0;
    examples.push_back(e);
  }
  std::vector<size_t> all(examples.size());
  for (size_t i = 0; i < all.size(); i++) all[i] = i;

  const double gemm = measure_gemm_gflops(backend.pool());
  TrainerOptions to;
  to.steps = o.steps + 1;  // the first is a warm-up (faults the weights in, sizes the buffers)
  to.recompute = o.recompute;
  to.progress = false;
  Trainer trainer(*trainable, to);
  std::vector<double> step_s;
  size_t scratch = 0;
  trainer.run([&](int64_t step, TrainingPass& pass) {
    const auto t0 = Clock::now();
    StepResult r = finetune_step(*trainable, pass, examples, all, o.batch * o.seq, uint64_t(step));
    if (step > 0) step_s.push_back(seconds_since(t0));
    scratch = std::max(scratch, pass.scratch_bytes());
    return r;
  });
  std::sort(step_s.begin(), step_s.end());
  const double median = step_s[step_s.size() / 2];
  const double tokens = double(o.batch * o.seq), tok_s = tokens / median;
  const double flops_per_token = (spec.kind == TrainKind::Full ? 6.0 : 4.0) * projection_params(c);
  const double gflops = flops_per_token * tok_s / 1e9;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double peak_mb = double(ru.ru_maxrss) / 1024.0;
  const std::string what = spec.kind == TrainKind::Full ? "full" : "lora (" + o.targets + ", rank " + std::to_string(o.rank) + ")";
  std::printf("%s %s: batch %lld x %lld tokens, %s, %d threads: %.1f tok/s (median of %zu steps), "
              "%.1f model GFLOP/s = %.1f%% of the %.1f GFLOP/s GEMM; peak RSS %.0f MB (activations and scratch %.0f MB)\n",
              o.shape.c_str(), what.c_str(), (long long)o.batch,
              (long long)o.seq, std::string(dtype_name(model->weight_dtype())).c_str(), backend.pool().size(), tok_s, step_s.size(), gflops,
              100 * gflops / gemm, gemm, peak_mb, double(scratch) / 1e6);
  if (!o.out.empty()) {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    const json j = {{"date", date}, {"commit", o.commit}, {"device", o.device.empty() ? backend.name() : o.device},
                    {"engine", "tiller"}, {"shape", o.shape}, {"dtype", dtype_name(model->weight_dtype())},
                    {"train", o.train}, {"lora_targets", o.train == "lora" ? o.targets : ""},
                    {"lora_rank", o.rank}, {"threads", backend.pool().size()}, {"batch", o.batch}, {"seq", o.seq},
                    {"recompute", o.recompute}, {"tok_s", tok_s}, {"step_seconds_median", median},
                    {"model_gflops", gflops}, {"gemm_gflops", gemm}, {"gemm_fraction", gflops / gemm},
                    {"peak_rss_mb", peak_mb}};
    std::ofstream(o.out, std::ios::app) << j.dump() << "\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tiller-bench-train: %s\n", e.what());
  return 1;
}
