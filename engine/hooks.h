// Named points in the forward where observers attach, and the one call site every projection
// goes through. Both cost one branch when nothing is attached.
//
// Activation hooks read (capture) or overwrite rows of intermediate tensors; projection deltas
// add a per-row correction to a projection's output (steering profiles, adapters). The model
// code never mentions steering: it only calls these.
#pragma once

#include <cstdint>

#include "engine/backend.h"
#include "engine/batch.h"

namespace tiller {

enum class HookPoint : uint8_t {
  ResidPre,   // residual stream entering layer l               [T, D]
  AttnHeads,  // per-head attention output = o_proj input        [T, H, d]
  ResidPost,  // residual stream leaving layer l                 [T, D]
  FinalNorm,  // final norm output of the logit rows (layer -1)  [R, D]
  Logits,     // logits of the logit rows (layer -1)             [R, V]
};

enum class Projection : uint8_t { Q, K, V, O, Gate, Up, Down, LmHead };

const char* hook_point_name(HookPoint p);
const char* projection_name(Projection p);

// What a hook needs to address rows: row t belongs to batch.seqs[t] at batch.positions[t].
struct ForwardContext {
  const Batch& batch;
  const BatchLayout& layout;
  Backend& backend;
};

class ActivationHook {
 public:
  virtual ~ActivationHook() = default;
  // `t` lives on the backend's device; copy rows out with backend.download, or overwrite them.
  virtual void on_activation(HookPoint point, int layer, Tensor& t, const ForwardContext& ctx) = 0;
};

class ProjectionDelta {
 public:
  virtual ~ProjectionDelta() = default;
  // Called once per forward, before any apply(): the batch's rows (and their adapters) are known.
  virtual void begin_forward(const ForwardContext& ctx) {}
  // Called right after y = x · Wᵀ (+ b) of `projection` in `layer` (-1 for lm_head).
  //   x [T, in], y [T, out]
  virtual void apply(int layer, Projection projection, const Tensor& x, Tensor& y, const ForwardContext& ctx) = 0;
};

}  // namespace tiller
