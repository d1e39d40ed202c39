// make_trainable and the module / weight naming the kinds share.
#include "train/trainable.h"

#include "engine/error.h"
#include "train/trainable_kinds.h"

namespace tiller {

std::string module_name(int layer, Projection p) {
  if (p == Projection::LmHead) return "lm_head";
  const bool attn = p == Projection::Q || p == Projection::K || p == Projection::V || p == Projection::O;
  return "model.layers." + std::to_string(layer) + (attn ? ".self_attn." : ".mlp.") + projection_name(p);
}

const Tensor& projection_weight(const ModelWeights& w, int layer, Projection p) {
  if (p == Projection::LmHead) return w.lm_head;
  const LayerWeights& l = w.layers[size_t(layer)];
  switch (p) {
    case Projection::Q: return l.q;
    case Projection::K: return l.k;
    case Projection::V: return l.v;
    case Projection::O: return l.o;
    case Projection::Gate: return l.gate;
    case Projection::Up: return l.up;
    case Projection::Down: return l.down;
    case Projection::LmHead: break;
  }
  fail("projection_weight: bad projection");
}

const Tensor& projection_bias(const ModelWeights& w, int layer, Projection p) {
  static const Tensor none;
  if (p == Projection::LmHead) return none;
  const LayerWeights& l = w.layers[size_t(layer)];
  switch (p) {
    case Projection::Q: return l.q_bias;
    case Projection::K: return l.k_bias;
    case Projection::V: return l.v_bias;
    case Projection::O: return l.o_bias;
    case Projection::Gate: return l.gate_bias;
    case Projection::Up: return l.up_bias;
    case Projection::Down: return l.down_bias;
    case Projection::LmHead: break;
  }
  return none;
}

std::unique_ptr<Trainable> make_trainable(Model& base, const TrainSpec& spec, uint64_t seed) {
  switch (spec.kind) {
    case TrainKind::Lora: return make_lora(base, spec, seed);
    case TrainKind::Columns: return make_columns(base, spec);
    case TrainKind::Full: return make_full(base, spec);
  }
  fail("make_trainable: unknown kind");
}

}  // namespace tiller
