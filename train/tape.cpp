// ActivationTape: copies of the training forward's activations, taken at its hooks.
#include "train/tape.h"

#include "engine/error.h"

namespace tiller {

ActivationTape::ActivationTape(const Model& model, ProjectionDelta* inner)
    : model_(model), inner_(inner), x_in_(size_t(model.config().n_layers)) {}

void ActivationTape::begin_forward(bool keep_layers) {
  keep_ = keep_layers;
  recomputing_ = false;
  recording_layer_ = -1;
  layers_.resize(keep_ ? size_t(model_.config().n_layers) : 1);
}

void ActivationTape::begin_recompute(int layer) {
  TILLER_CHECK(!keep_, "begin_recompute on a tape that keeps every layer");
  recomputing_ = true;
  recording_layer_ = layer;
}

void ActivationTape::save(const Tensor& t, Buffer& dst) {
  if (dst.size() < t.nbytes()) dst = model_.backend().alloc(t.nbytes());
  Tensor d = dst.as(DType::F32, {t.numel()});
  model_.backend().copy(t.reshaped({t.numel()}), d);
}

void ActivationTape::copy_layout(const BatchLayout& src) {
  layout_.tokens = src.tokens;
  layout_.positions = src.positions;
  layout_.row_seq = src.row_seq;
  layout_.slots = src.slots;
  layout_.block_tables = src.block_tables;
  layout_.kv_lens = src.kv_lens;
  layout_.logit_rows = src.logit_rows;
  layout_.n_seqs = src.n_seqs;
  layout_.max_blocks = src.max_blocks;
  layout_.max_kv_len = src.max_kv_len;
  model_.backend().upload_layout(layout_);
}

void ActivationTape::on_activation(HookPoint point, int layer, Tensor& t, const ForwardContext& ctx) {
  const int last = int(model_.config().n_layers) - 1;
  if (point == HookPoint::ResidPre) {
    if (recomputing_) {
      if (layer == recording_layer_) copy_layout(ctx.layout);
      return;
    }
    if (layer == 0) {
      copy_layout(ctx.layout);
      rows_ = ctx.layout.n_rows();
    }
    save(t, x_in_[size_t(layer)]);
  } else if (point == HookPoint::ResidPost && layer == last && !recomputing_) {
    save(t, x_final_);
  }
}

void ActivationTape::apply(int layer, Projection p, const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  if (inner_) inner_->apply(layer, p, x, y, ctx);
  if (p == Projection::LmHead) {
    if (!recomputing_) save(x, final_h_);
    return;
  }
  const bool record = recomputing_ ? layer == recording_layer_ : keep_;
  if (!record) return;
  LayerActivations& a = layers_[size_t(keep_ ? layer : 0)];
  switch (p) {
    case Projection::Q: save(y, a.q); break;
    case Projection::O:
      save(x, a.z);
      save(y, a.o_out);
      break;
    case Projection::Gate: save(y, a.gate); break;
    case Projection::Up: save(y, a.up); break;
    default: break;
  }
}

}  // namespace tiller
