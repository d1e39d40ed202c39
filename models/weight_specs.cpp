// The HF tensor-name table of the decoder.
#include "models/weight_specs.h"

#include <charconv>

#include "engine/error.h"

namespace tiller {

std::vector<WeightSpec> weight_specs(const ModelConfig& c) {
  const int64_t D = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  std::vector<WeightSpec> specs;
  auto model = [&](std::string name, std::vector<int64_t> shape, Tensor ModelWeights::*field) {
    specs.push_back({std::move(name), shape, shape.size() == 1, -1, nullptr, field});
  };
  auto layer = [&](int l, const std::string& suffix, std::vector<int64_t> shape, Tensor LayerWeights::*field) {
    specs.push_back({"model.layers." + std::to_string(l) + "." + suffix, shape, shape.size() == 1, l, field, nullptr});
  };

  model("model.embed_tokens.weight", {V, D}, &ModelWeights::embed);
  for (int l = 0; l < int(c.n_layers); l++) {
    layer(l, "input_layernorm.weight", {D}, &LayerWeights::attn_norm);
    layer(l, "self_attn.q_proj.weight", {Q, D}, &LayerWeights::q);
    layer(l, "self_attn.k_proj.weight", {KV, D}, &LayerWeights::k);
    layer(l, "self_attn.v_proj.weight", {KV, D}, &LayerWeights::v);
    layer(l, "self_attn.o_proj.weight", {D, Q}, &LayerWeights::o);
    if (c.qkv_bias) {
      layer(l, "self_attn.q_proj.bias", {Q}, &LayerWeights::q_bias);
      layer(l, "self_attn.k_proj.bias", {KV}, &LayerWeights::k_bias);
      layer(l, "self_attn.v_proj.bias", {KV}, &LayerWeights::v_bias);
    }
    if (c.o_bias) layer(l, "self_attn.o_proj.bias", {D}, &LayerWeights::o_bias);
    layer(l, "post_attention_layernorm.weight", {D}, &LayerWeights::mlp_norm);
    layer(l, "mlp.gate_proj.weight", {F, D}, &LayerWeights::gate);
    layer(l, "mlp.up_proj.weight", {F, D}, &LayerWeights::up);
    layer(l, "mlp.down_proj.weight", {D, F}, &LayerWeights::down);
    if (c.mlp_bias) {
      layer(l, "mlp.gate_proj.bias", {F}, &LayerWeights::gate_bias);
      layer(l, "mlp.up_proj.bias", {F}, &LayerWeights::up_bias);
      layer(l, "mlp.down_proj.bias", {D}, &LayerWeights::down_bias);
    }
  }
  model("model.norm.weight", {D}, &ModelWeights::final_norm);
  if (!c.tie_word_embeddings) model("lm_head.weight", {V, D}, &ModelWeights::lm_head);
  return specs;
}

namespace {

constexpr Projection kLayerProjections[] = {Projection::Q,    Projection::K,  Projection::V,   Projection::O,
                                            Projection::Gate, Projection::Up, Projection::Down};

const char* module_prefix(Projection p) {
  return p == Projection::Gate || p == Projection::Up || p == Projection::Down ? "mlp." : "self_attn.";
}

}  // namespace

std::string module_name(ModuleRef m) {
  if (m.projection == Projection::LmHead) return "lm_head";
  return "model.layers." + std::to_string(m.layer) + "." + module_prefix(m.projection) + projection_name(m.projection);
}

std::optional<ModuleRef> parse_module_name(std::string_view name) {
  if (name == "lm_head") return ModuleRef{};
  constexpr std::string_view head = "model.layers.";
  if (!name.starts_with(head)) return std::nullopt;
  name.remove_prefix(head.size());
  int layer = -1;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
  if (ec != std::errc() || layer < 0 || end == name.data() + name.size() || *end != '.') return std::nullopt;
  name.remove_prefix(size_t(end - name.data()) + 1);
  for (Projection p : kLayerProjections) {
    if (name == std::string(module_prefix(p)) + projection_name(p)) return ModuleRef{layer, p};
  }
  return std::nullopt;
}

std::pair<int64_t, int64_t> projection_shape(const ModelConfig& c, Projection p) {
  switch (p) {
    case Projection::Q: return {c.q_dim(), c.hidden_size};
    case Projection::K:
    case Projection::V: return {c.kv_dim(), c.hidden_size};
    case Projection::O: return {c.hidden_size, c.q_dim()};
    case Projection::Gate:
    case Projection::Up: return {c.intermediate_size, c.hidden_size};
    case Projection::Down: return {c.hidden_size, c.intermediate_size};
    case Projection::LmHead: return {c.vocab_size, c.hidden_size};
  }
  return {0, 0};
}

Tensor LayerWeights::*projection_weight_field(Projection p) {
  switch (p) {
    case Projection::Q: return &LayerWeights::q;
    case Projection::K: return &LayerWeights::k;
    case Projection::V: return &LayerWeights::v;
    case Projection::O: return &LayerWeights::o;
    case Projection::Gate: return &LayerWeights::gate;
    case Projection::Up: return &LayerWeights::up;
    case Projection::Down: return &LayerWeights::down;
    case Projection::LmHead: break;
  }
  fail("lm_head is not a layer projection");
}

Tensor LayerWeights::*projection_bias_field(Projection p) {
  switch (p) {
    case Projection::Q: return &LayerWeights::q_bias;
    case Projection::K: return &LayerWeights::k_bias;
    case Projection::V: return &LayerWeights::v_bias;
    case Projection::O: return &LayerWeights::o_bias;
    case Projection::Gate: return &LayerWeights::gate_bias;
    case Projection::Up: return &LayerWeights::up_bias;
    case Projection::Down: return &LayerWeights::down_bias;
    case Projection::LmHead: break;
  }
  fail("lm_head has no bias");
}

}  // namespace tiller
