// The generic pre-norm decoder that covers Llama, Mistral and Qwen2, and its weights.
//
// Architectures differ only in config flags (GQA, biases, rope scaling, tied embeddings,
// sliding window), so there is one forward, written once over the Backend interface:
//
//   x = embed(tokens)
//   for each layer:  h = norm(x);  z = attention(rope(q(h)), rope(k(h)), v(h));  x += o(z)
//                    h = norm(x);  x += down(silu(gate(h)) * up(h))
//   logits = lm_head(norm(x))
#pragma once

#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/backend.h"
#include "engine/batch.h"
#include "engine/hooks.h"
#include "engine/kv_cache.h"
#include "engine/safetensors.h"
#include "models/model_config.h"

namespace tiller {

struct LayerWeights {
  Tensor attn_norm;                       // [D] F32
  Tensor q, k, v, o;                      // [H·d, D], [Hkv·d, D], [Hkv·d, D], [D, H·d]
  Tensor q_bias, k_bias, v_bias, o_bias;  // [H·d], [Hkv·d], [Hkv·d], [D] F32; empty when absent
  Tensor mlp_norm;                        // [D] F32
  Tensor gate, up, down;                  // [F, D], [F, D], [D, F]
  Tensor gate_bias, up_bias, down_bias;   // [F], [F], [D] F32; empty when absent
};

struct ModelWeights {
  Tensor embed;       // [V, D]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [D] F32
  Tensor lm_head;     // [V, D]; the embedding itself when tied
};

struct ForwardOptions {
  // Run layers [first_layer, end_layer); end_layer < 0 means all. A forward that starts past
  // layer 0 takes its residual stream from input_residual and writes no K/V for earlier layers.
  int first_layer = 0;
  int end_layer = -1;
  const Tensor* input_residual = nullptr;  // [T, D] F32 in host memory
  Tensor* output_residual = nullptr;       // [T, D] F32 in host memory: the stream after end_layer - 1
  ActivationHook* hook = nullptr;
  ProjectionDelta* delta = nullptr;
  // Per-row start layer [T], nondecreasing (optional; replaces first_layer). Row t joins at layer
  // row_first_layer[t] with row t of input_residual as its stream; until then it is neither
  // computed nor given K/V, and hooks see only the rows that have joined (the first
  // ctx.layout.n_rows() rows of the batch). One batch can so resume rows at different depths:
  // attribution's patched last tokens, each recomputed from the layer of its patch upward.
  std::span<const int32_t> row_first_layer;
};

struct LoadOptions {
  // Convert every weight matrix to this type at load (F32 for reference comparisons, BF16 to
  // trade a quantized file's size for speed); empty keeps each stored type the backend computes with.
  std::optional<DType> weight_dtype;
  bool quiet = false;  // no notes on stderr (what was converted at load)
};

class Model {
 public:
  // Loads a model onto `backend`: an HF folder (config.json and its safetensors) or a GGUF file.
  static std::unique_ptr<Model> load(const std::filesystem::path& path, Backend& backend,
                                     const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  const ModelWeights& weights() const { return weights_; }
  // The dtype linear weights are stored in.
  DType weight_dtype() const { return weights_.layers.empty() ? DType::F32 : weights_.layers[0].q.dtype; }
  // Throws Error when a weight file was modified on disk since it was mapped (engine/mapped_file.h);
  // `while_doing` names the moment ("loading", "serving", ...). Cheap: one stat per file.
  void check_files_unchanged(const std::string& while_doing) const;
  // The KV cache's dtype by default: the weights' float type (BF16 for quantized weights, as
  // llama.cpp keeps a 16-bit cache).
  DType kv_dtype() const { return is_float(weight_dtype()) ? weight_dtype() : DType::BF16; }
  // A cache shaped for this model with room for `n_sequences` sequences of `tokens` tokens each.
  KvCacheOptions kv_cache_options(int64_t tokens, int64_t n_sequences = 1, int64_t block_size = 16) const;

  // Runs the rows of `batch` (appending their K/V to `kv`) and returns the logits of rows with
  // the logits flag, in row order: [R, V] F32 on the backend's device, valid until the next call.
  // Returns an empty tensor when no row asks for logits or end_layer stops early.
  Tensor forward(const Batch& batch, KvCache& kv, const ForwardOptions& options = {});

  // The weight of a projection ([out, in] on the backend's device) and its bias (empty when absent).
  const Tensor& projection_weight(int layer, Projection projection) const;
  const Tensor& projection_bias(int layer, Projection projection) const;
  // Replaces a projection's weight or bias with `host` (a CPU tensor of the same shape; a bias
  // may be added where the config has none), copied into memory the model owns: a steering
  // profile merged at load. Call before the first forward (a replayed graph keeps old addresses).
  void replace_projection_weight(int layer, Projection projection, const Tensor& host);
  void replace_projection_bias(int layer, Projection projection, const Tensor& host);

  // `storage` keeps memory the weights point into alive (mapped files, reordered copies); `files`
  // are the mapped files check_files_unchanged() checks.
  Model(const ModelConfig& config, Backend& backend, ModelWeights weights, std::vector<Buffer> owned,
        std::vector<std::shared_ptr<const void>> storage, std::vector<std::shared_ptr<const MappedFile>> files = {});
  ~Model();

 private:
  struct Workspace;
  void build_layout(const Batch& batch, KvCache& kv);
  void ensure_workspace(int64_t rows, int64_t logit_rows);
  int check_options(const Batch& batch, const ForwardOptions& options) const;  // returns the end layer
  void run_layer(int l, KvCache& kv, const ForwardContext& ctx, const ForwardOptions& options);
  void run_head(Tensor& x, const ForwardContext& ctx, const ForwardOptions& options);  // x -> logits
  void run_decode_step(Tensor& x, KvCache& kv, const ForwardContext& ctx, const ForwardOptions& options);
  void run_staggered(Tensor& x, KvCache& kv, int end, const ForwardContext& ctx, const ForwardOptions& options);
  Tensor logits_view() const;  // [R, V] over the workspace
  // The one call site of every projection: y = x · wᵀ + b, then the delta hook, if any.
  struct ProjectionOut {
    Projection projection;
    const Tensor& w;
    const Tensor& bias;  // empty when absent
    Tensor& y;
  };
  void project(int layer, const Tensor& x, std::initializer_list<ProjectionOut> outs, const ForwardContext& ctx,
               const ForwardOptions& options);

  ModelConfig config_;
  Backend& backend_;
  ModelWeights weights_;
  std::vector<Buffer> owned_;                            // device copies / converted small tensors
  std::vector<std::shared_ptr<const void>> storage_;     // keeps mapped weights alive
  std::vector<std::shared_ptr<const MappedFile>> files_;  // the mapped weight files, to check
  Buffer inv_freq_buffer_;
  Tensor inv_freq_;  // [d/2] F32, rope frequencies after scaling
  float attn_scale_;
  BatchLayout layout_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace tiller
