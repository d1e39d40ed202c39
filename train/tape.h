// Records what the backward needs from a training forward. The forward is Model::forward itself:
// the tape attaches as its activation hook and wraps the trained delta at the projection call
// site, copying tensors as they pass. Per layer it keeps the residual stream entering the layer,
// q before rope, the attention output z (o_proj's input), o_proj's output and gate / up before
// silu·mul; the backward recomputes the norms' outputs and silu·mul from those. It also keeps the
// stream leaving the last layer, the final norm's rows (lm_head's input) and the batch layout.
//
// With recomputation, the full forward keeps only each layer's input stream; the backward reruns
// one layer at a time (a partial forward from that stream) to refill the layer's slot.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/hooks.h"
#include "models/model.h"

namespace tiller {

struct LayerActivations {
  Buffer x_in;   // [T, D] residual stream entering the layer
  Buffer q;      // [T, H·d] q_proj output (with its delta), before rope
  Buffer z;      // [T, H·d] attention output = o_proj input
  Buffer o_out;  // [T, D] o_proj output (with its delta)
  Buffer gate;   // [T, F] gate_proj output, before silu
  Buffer up;     // [T, F] up_proj output
};

class ActivationTape final : public ActivationHook, public ProjectionDelta {
 public:
  // `inner`: the trained delta the forward applies (may be null).
  ActivationTape(const Model& model, ProjectionDelta* inner);

  // Starts a full forward: keep_layers records every layer's activations, otherwise only each
  // layer's input stream (recomputation).
  void begin_forward(bool keep_layers);
  // Starts the partial forward that recomputes `layer`.
  void begin_recompute(int layer);

  void on_activation(HookPoint point, int layer, Tensor& t, const ForwardContext& ctx) override;
  void begin_forward(const ForwardContext& ctx) override {
    if (inner_) inner_->begin_forward(ctx);
  }
  void apply(int layer, Projection p, const Tensor& x, Tensor& y, const ForwardContext& ctx) override;

  // Activations of `layer` (the recomputed one when recomputing); x_in always from the full forward.
  const LayerActivations& layer(int l) const { return layers_[size_t(keep_ ? l : 0)]; }
  const Buffer& x_in(int l) const { return x_in_[size_t(l)]; }
  const Buffer& x_final() const { return x_final_; }   // [T, D]
  const Buffer& final_h() const { return final_h_; }   // [R, D]
  // The layout of the last forward that recorded (the full one, or the recomputation).
  const BatchLayout& layout() const { return layout_; }
  int64_t rows() const { return rows_; }

 private:
  void save(const Tensor& t, Buffer& dst);
  void copy_layout(const BatchLayout& src);

  const Model& model_;
  ProjectionDelta* inner_;
  bool keep_ = true;
  int recording_layer_ = -1;  // recomputation: the one layer recorded; -1: every layer
  bool recomputing_ = false;
  int64_t rows_ = 0;
  std::vector<LayerActivations> layers_;  // [L] when keeping, else [1]
  std::vector<Buffer> x_in_;              // [L]
  Buffer x_final_, final_h_;
  BatchLayout layout_;
};

}  // namespace tiller
