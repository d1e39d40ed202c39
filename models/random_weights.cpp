// Random weight values (shared by `tiller random-init` and benchmarks) and random models on a backend.
#include "models/random_weights.h"

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/sampler.h"

namespace tiller {

void random_weight_values(const WeightSpec& spec, int index, const RandomWeightOptions& options, int64_t begin,
                          int64_t end, DType dtype, void* dst, ThreadPool& pool) {
  TILLER_CHECK(begin % kRandomWeightChunk == 0 && begin <= end, "random weights: range [", begin, ", ", end, ")");
  const uint64_t tensor_seed = options.seed * 1000003ull + uint64_t(index);
  const bool norm = spec.is_norm(), bias = spec.is_vector && !norm;
  const float a = float(options.std_dev * std::sqrt(3.0));
  // Chunks of kRandomWeightChunk elements, each from its own stream: any split gives the same values.
  pool.parallel_for(end - begin, kRandomWeightChunk, [&](int64_t b, int64_t e) {
    std::vector<float> tmp(static_cast<size_t>(kRandomWeightChunk));
    for (int64_t c = b; c < e; c += kRandomWeightChunk) {
      const int64_t m = std::min(kRandomWeightChunk, e - c);
      Rng rng(tensor_seed ^ (uint64_t((begin + c) / kRandomWeightChunk) * 0x9e3779b97f4a7c15ull));
      for (int64_t i = 0; i < m; i++) tmp[size_t(i)] = norm ? 1.0f : bias ? 0.0f : float(rng.uniform() * 2 - 1) * a;
      from_f32(dtype, tmp.data(), static_cast<char*>(dst) + size_t(c) * dtype_size(dtype), size_t(m));
    }
  });
}

std::unique_ptr<Model> random_model(const ModelConfig& config, Backend& backend, DType dtype,
                                    const RandomWeightOptions& options, ThreadPool& pool) {
  if (!is_float(dtype)) fail("random model: weight dtype must be F32, F16 or BF16, found ", dtype_name(dtype));
  constexpr int64_t kSlice = 256 * kRandomWeightChunk;  // elements generated per upload (32 MiB in BF16)
  std::vector<Buffer> owned;
  ModelWeights w;
  w.layers.resize(size_t(config.n_layers));
  std::vector<char> host;
  int index = 0;
  for (const WeightSpec& spec : weight_specs(config)) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    const DType t = spec.is_vector ? DType::F32 : dtype;
    owned.push_back(backend.alloc(size_t(n) * dtype_size(t)));
    auto* dst = static_cast<char*>(owned.back().data());
    for (int64_t begin = 0; begin < n; begin += kSlice) {
      const int64_t end = std::min(n, begin + kSlice);
      host.resize(size_t(end - begin) * dtype_size(t));
      random_weight_values(spec, index, options, begin, end, t, host.data(), pool);
      backend.upload(dst + size_t(begin) * dtype_size(t), host.data(), host.size());
    }
    Tensor placed = spec.shape.size() == 1 ? owned.back().as(t, {spec.shape[0]})
                                           : owned.back().as(t, {spec.shape[0], spec.shape[1]});
    if (spec.layer >= 0) w.layers[size_t(spec.layer)].*spec.layer_field = placed;
    else w.*spec.model_field = placed;
    index++;
  }
  if (config.tie_word_embeddings) w.lm_head = w.embed;
  return std::make_unique<Model>(config, backend, std::move(w), std::move(owned),
                                 std::vector<std::shared_ptr<const void>>{});
}

}  // namespace tiller
