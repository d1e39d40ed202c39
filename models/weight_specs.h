// Every tensor a model reads, by HF name and shape: the single table the loader, random-init and
// steering profiles use. Llama, Mistral and Qwen2 share the naming scheme; the config decides
// which biases exist and whether lm_head is stored.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "models/model.h"

namespace tiller {

struct WeightSpec {
  std::string name;            // "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // HF layout: [out, in] for matrices
  bool is_vector = false;      // norms and biases: loaded as F32
  int layer = -1;              // -1: model-level tensor
  Tensor LayerWeights::*layer_field = nullptr;
  Tensor ModelWeights::*model_field = nullptr;
  bool is_norm() const { return is_vector && name.find("norm") != std::string::npos; }
};

// In checkpoint order: embedding, layers, final norm, lm_head (absent when tied).
std::vector<WeightSpec> weight_specs(const ModelConfig& config);

// A projection of one layer (layer -1: lm_head): the unit steering deltas and adapters act on.
struct ModuleRef {
  int layer = -1;
  Projection projection = Projection::LmHead;
  bool operator==(const ModuleRef&) const = default;
};
// PEFT's module name: "model.layers.3.self_attn.o_proj", "model.layers.0.mlp.down_proj", "lm_head".
std::string module_name(ModuleRef module);
// The inverse; nullopt for a name that is not a projection of this decoder.
std::optional<ModuleRef> parse_module_name(std::string_view name);
// The projection's weight shape {out, in} in HF layout.
std::pair<int64_t, int64_t> projection_shape(const ModelConfig& config, Projection projection);
// The projection's weight and bias fields (lm_head has no bias; its weight is ModelWeights::lm_head).
Tensor LayerWeights::*projection_weight_field(Projection projection);
Tensor LayerWeights::*projection_bias_field(Projection projection);

}  // namespace tiller
