// tiller-bench-inference: prefill and decode throughput of a model beside the roofline.
//
// Prints tokens/s, bytes moved per decoded token (every weight read once per step, lm_head
// included, plus the KV cache read), the machine's bandwidth measured in the same run (CPU: STREAM
// copy; GPU: a 2 GiB device-to-device copy; read + write bytes) and the fraction achieved, and
// prefill's GFLOP/s (on the GPU also against a cuBLAS BF16 GEMM measured in the same run). Each
// decode step ends with a greedy backend.sample, so only token ids reach the host, as in
// generation. Appends one JSON line per measurement to --out.
//
//   tiller-bench-inference (--model DIR | --random-config config.json [--dtype bf16] [--seed S])
//                          [--backend cpu|cuda] [--threads N] [--prompt 512] [--steps 64]
//                          [--context 64] [--batch 1,4,16] [--shape NAME] [--out FILE.jsonl]
//                          [--commit SHA] [--device TEXT]
// --random-config builds random weights directly in the backend's memory (models/random_weights.h:
// the values `tiller random-init` would write), so an 8B shape needs no file. --device is the
// label written to the JSON lines (default: the backend's name).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_model.h"
#include "bench/gpu_roofline.h"
#include "bench/roofline.h"
#include "bench/flags.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/sampler.h"
#include "kernels/backends.h"
#include "models/model.h"

namespace {

constexpr const char* kUsage = R"(Usage: tiller-bench-inference (--model DIR | --random-config config.json [--dtype bf16] [--seed S])
                              [--backend cpu|cuda] [--threads N] [--prompt 512] [--steps 64]
                              [--context 64] [--batch 1,4,16] [--shape NAME] [--out FILE.jsonl]
                              [--commit SHA] [--device TEXT]
Prefill and decode tokens/s beside the measured memory bandwidth; appends JSON lines to --out.
)";

using namespace tiller;
using namespace tiller::bench;

struct Options {
  std::string model, random_config, dtype = "bf16", backend, shape, out, commit = "unknown", device;
  uint64_t seed = 0;
  int threads = 0;
  int64_t prompt = 512, steps = 64, decode_context = 64;
  std::vector<int64_t> batches = {1, 4, 16};
};

Options parse(int argc, char** argv) {
  Options o;
  for_each_flag(argc, argv, kUsage, [&](const std::string& a, auto& next) {
    if (a == "--model") o.model = next();
    else if (a == "--random-config") o.random_config = next();
    else if (a == "--dtype") o.dtype = next();
    else if (a == "--seed") o.seed = std::stoull(next());
    else if (a == "--backend") o.backend = next();
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--prompt") o.prompt = std::stoll(next());
    else if (a == "--steps") o.steps = std::stoll(next());
    else if (a == "--context") o.decode_context = std::stoll(next());
    else if (a == "--shape") o.shape = next();
    else if (a == "--out") o.out = next();
    else if (a == "--commit") o.commit = next();
    else if (a == "--device") o.device = next();
    else if (a == "--batch") o.batches = int_list(next());
    else return false;
    return true;
  });
  if (o.shape.empty()) o.shape = default_shape_name(o.model, o.random_config);
  if (o.backend.empty()) o.backend = default_device();
  return o;
}

// Bytes of every weight a decode step reads once: all matrices and vectors, lm_head included
// (the embedding table only when it doubles as lm_head; its per-token rows are negligible).
double weight_bytes(const Model& m) {
  double total = double(m.weights().lm_head.nbytes()) + double(m.weights().final_norm.nbytes());
  for (const LayerWeights& L : m.weights().layers) {
    for (const Tensor* t : {&L.attn_norm, &L.q, &L.k, &L.v, &L.o, &L.q_bias, &L.k_bias, &L.v_bias, &L.o_bias,
                            &L.mlp_norm, &L.gate, &L.up, &L.down, &L.gate_bias, &L.up_bias, &L.down_bias})
      total += double(t->nbytes());
  }
  return total;
}

// Multiply-adds of the projections per token, times two.
double linear_flops_per_token(const ModelConfig& c) {
  return 2.0 * double(c.n_layers) * double(c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
                                           3 * c.hidden_size * c.intermediate_size);
}

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng.next() % uint64_t(vocab));
  return t;
}

struct Recorder {
  const Options& o;
  const ModelConfig& c;
  std::string dtype;
  int threads;
  std::string backend;
  Bandwidth bw;
  double peak_gemm_tflops = 0;  // GPU: cuBLAS BF16 GEMM measured in this run

  // median_tok_s (decode): from the median step, a figure that a noisy neighbour moves less.
  void record(int64_t batch, const char* phase, double tok_s, double bytes_per_token, double bw_fraction,
              double gflops, double median_tok_s = 0) const {
    std::printf("%-8s batch %3lld  %10.1f tok/s  %9.2f MB/token  %5.1f%% of %.1f GB/s", phase, (long long)batch, tok_s,
                bytes_per_token / 1e6, 100 * bw_fraction, bw.copy_gbs);
    // A decode step mostly reads: where reads stream faster than a copy, also show that share.
    if (gflops == 0 && bw.read_gbs != bw.copy_gbs)
      std::printf(" (%.1f%% of read-only)", 100 * bw_fraction * bw.copy_gbs / bw.read_gbs);
    if (median_tok_s > 0) std::printf("  median step %.1f tok/s", median_tok_s);
    if (gflops > 0) std::printf("  %7.1f GFLOP/s", gflops);
    if (gflops > 0 && peak_gemm_tflops > 0)
      std::printf(" (%.1f%% of cuBLAS BF16 %.0f TFLOP/s)", 100 * gflops / 1e3 / peak_gemm_tflops, peak_gemm_tflops);
    std::printf("\n");
    if (o.out.empty()) return;
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    json j = {{"date", date}, {"commit", o.commit}, {"device", o.device.empty() ? backend : o.device},
              {"backend", backend}, {"engine", "tiller"}, {"shape", o.shape},
              {"dtype", dtype}, {"threads", threads}, {"batch", batch}, {"phase", phase}, {"tok_s", tok_s},
              {"bytes_per_token", bytes_per_token}, {"measured_bw_gbs", bw.copy_gbs},
              {"measured_read_bw_gbs", bw.read_gbs}, {"bw_fraction", bw_fraction}};
    if (gflops > 0) j["gflops"] = gflops;
    if (median_tok_s > 0) j["tok_s_median_step"] = median_tok_s;
    if (gflops > 0 && peak_gemm_tflops > 0) {
      j["tflops"] = gflops / 1e3;
      j["peak_gemm_tflops"] = peak_gemm_tflops;
      j["tflops_fraction"] = gflops / 1e3 / peak_gemm_tflops;
    }
    if (std::string(phase) == "prefill") j["prompt_tokens"] = o.prompt;
    else j["context_tokens"] = o.decode_context;
    std::ofstream(o.out, std::ios::app) << j.dump() << "\n";
  }
};

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  const std::unique_ptr<Backend> backend_ptr = make_backend(o.backend, o.threads);
  Backend& backend = *backend_ptr;
  ThreadPool host_pool(o.threads);  // random weights on the host, CPU bandwidth
  const std::unique_ptr<Model> model = load_bench_model(o.model, o.random_config, o.dtype, o.seed, backend, host_pool);
  const ModelConfig& c = model->config();
  auto* cpu = dynamic_cast<CpuBackend*>(&backend);
  Recorder rec{o, c, std::string(dtype_name(model->weight_dtype())), cpu ? cpu->pool().size() : 0, backend.name(), {}};
  std::printf("model %s: %s, %.1fM parameters, %s weights; backend %s\n",
              o.model.empty() ? o.random_config.c_str() : o.model.c_str(), c.architecture_name.c_str(),
              double(c.n_parameters()) / 1e6, rec.dtype.c_str(), backend.name().c_str());
#if TILLER_HAVE_CUDA
  if (auto* gpu = dynamic_cast<CudaBackend*>(&backend)) {
    rec.bw.copy_gbs = rec.bw.read_gbs = measure_device_copy_gbs(gpu->stream_handle());
    rec.peak_gemm_tflops = measure_bf16_gemm_tflops(gpu->stream_handle());
    std::printf("device bandwidth: %.1f GB/s (2 GiB device-to-device copy, read + write); cuBLAS BF16 GEMM %.1f TFLOP/s\n",
                rec.bw.copy_gbs, rec.peak_gemm_tflops);
  }
#endif
  if (cpu) {
    rec.bw = measure_bandwidth(cpu->pool());
    std::printf("memory bandwidth: STREAM copy %.1f GB/s (read + write), read-only %.1f GB/s\n", rec.bw.copy_gbs,
                rec.bw.read_gbs);
  }
  const double wbytes = weight_bytes(*model);
  const double kv_token_bytes = 2.0 * double(c.n_layers * c.kv_dim()) * double(dtype_size(model->kv_dtype()));
  // Logits reach the host (prefill) or only the chosen ids do (decode): either way the step has finished.
  std::vector<float> last_logits(size_t(c.vocab_size));
  auto finish = [&](const Tensor& logits) {
    backend.download(last_logits.data(), logits.rows(logits.shape[0] - 1, 1).data, last_logits.size() * sizeof(float));
  };

  // Prefill: one sequence of o.prompt tokens in one forward; best of 3 after a warm-up that also
  // faults the mapped weights in.
  {
    const auto prompt = random_tokens(o.prompt, c.vocab_size, 1);
    double best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
      KvCache kv(backend, model->kv_cache_options(o.prompt));
      Batch b;
      b.add_sequence(prompt, kv.create(), 0, true);
      const auto t0 = Clock::now();
      finish(model->forward(b, kv));
      if (rep > 0) best = std::min(best, seconds_since(t0));
    }
    double attn_flops = 0;  // q·k and p·v over the causal (windowed) keys
    for (int64_t l = 0; l < c.n_layers; l++) {
      const int64_t w = c.sliding_window[size_t(l)];
      for (int64_t t = 0; t < o.prompt; t++) attn_flops += 4.0 * double(c.q_dim()) * double(w > 0 ? std::min(t + 1, w) : t + 1);
    }
    const double flops = linear_flops_per_token(c) * double(o.prompt) + attn_flops + 2.0 * double(c.vocab_size * c.hidden_size);
    const double bytes_per_token = (wbytes + kv_token_bytes * double(o.prompt)) / double(o.prompt);
    rec.record(1, "prefill", double(o.prompt) / best, bytes_per_token, wbytes / best / 1e9 / rec.bw.copy_gbs,
               flops / best / 1e9);
  }

  // Decode: `batch` sequences holding o.decode_context tokens each, one new row per sequence per step.
  for (int64_t batch : o.batches) {
    KvCache kv(backend, model->kv_cache_options(o.decode_context + o.steps + 8, batch));
    std::vector<SeqId> seqs;
    Batch b;
    for (int64_t s = 0; s < batch; s++) {
      seqs.push_back(kv.create());
      b.add_sequence(random_tokens(o.decode_context, c.vocab_size, uint64_t(s) + 2), seqs.back(), 0, true);
    }
    Tensor logits = model->forward(b, kv);
    // Greedy decoding as generation does it: the backend picks each sequence's next token.
    const std::vector<SampleRequest> greedy(static_cast<size_t>(batch));
    std::vector<int32_t> next(static_cast<size_t>(batch));
    auto step = [&] {
      backend.sample(logits, greedy, next);
      b.clear();
      for (int64_t s = 0; s < batch; s++) b.add(next[size_t(s)], seqs[size_t(s)], int32_t(kv.length(seqs[size_t(s)])), true);
      logits = model->forward(b, kv);
    };
    constexpr int64_t kWarmup = 3;  // CUDA: eager, graph capture, first replay
    for (int64_t i = 0; i < kWarmup; i++) step();
    std::vector<double> step_seconds;  // each step first waits for the previous one's ids on the host
    const auto t0 = Clock::now();
    for (int64_t i = 1; i <= o.steps; i++) {
      const auto s0 = Clock::now();
      step();
      step_seconds.push_back(seconds_since(s0));
    }
    backend.sample(logits, greedy, next);
    const double t = seconds_since(t0);
    std::nth_element(step_seconds.begin(), step_seconds.begin() + long(step_seconds.size() / 2), step_seconds.end());
    const double median_step = step_seconds.empty() ? 0 : step_seconds[step_seconds.size() / 2];
    const double mean_context = double(o.decode_context) + kWarmup + double(o.steps + 1) / 2;
    const double step_bytes = wbytes + kv_token_bytes * mean_context * double(batch);
    rec.record(batch, "decode", double(batch * o.steps) / t, step_bytes / double(batch),
               step_bytes * double(o.steps) / t / 1e9 / rec.bw.copy_gbs, 0,
               median_step > 0 ? double(batch) / median_step : 0);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "tiller-bench-inference: %s\n", e.what());
  return 1;
}
