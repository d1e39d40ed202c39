// One training pass over a batch of whole sequences: the forward (Model::forward with the
// activation tape and the trained delta) and the decoder's backward, written over the Backend's
// ops in reverse order of the forward:
//
//   lm_head, final norm, gather of the logit rows
//   for each layer, top down:
//     down, silu·mul, gate / up, mlp norm      (+ the residual's direct path)
//     o_proj, attention, rope, q / k / v, attention norm
//   embedding (full training)
//
// A projection's input gradient goes through the forward model's weight (dy · W) and then the
// Trainable adds its parameters' gradients and its delta's share. The backward stops below the
// lowest trained layer. Keys and values are read from the forward's KV cache; rope's transpose is
// rope with negated frequencies.
#pragma once

#include <memory>

#include "engine/batch.h"
#include "engine/kv_cache.h"
#include "train/tape.h"
#include "train/trainable.h"

namespace tiller {

class TrainingPass {
 public:
  // recompute: keep only each layer's input during the forward and recompute the layer in the
  // backward (activation memory of one layer instead of all; about one more forward of compute).
  TrainingPass(Trainable& trainable, bool recompute);
  ~TrainingPass();

  // The forward: the batch's sequences must be whole (fresh in `kv`, rows consecutive from position
  // 0). Returns the logits of the rows flagged in batch.logits: [R, V] F32 on the device, valid
  // until the next forward on the trainable's model.
  Tensor forward(const Batch& batch, KvCache& kv);
  // The backward of the last forward, from dlogits [R, V] (the loss gradient; may be the logits'
  // own buffer): accumulates every trained parameter's gradient. `kv` is the forward's cache.
  void backward(const Tensor& dlogits, const Batch& batch, KvCache& kv);

  // Peak device bytes the tape and the backward's scratch hold (for the benchmark's memory figure).
  size_t scratch_bytes() const;

 private:
  struct Scratch;
  void backward_layer(int l, Tensor& dx, const Batch& batch, KvCache& kv);

  Trainable& trainable_;
  bool recompute_;
  ActivationTape tape_;
  std::unique_ptr<Scratch> s_;
};

}  // namespace tiller
