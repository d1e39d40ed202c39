// The trained parameters of a fine-tune and how they enter the forward and the backward.
//
// LoRA and head columns are deltas on the loaded model, applied at the projection call site
// (a ProjectionDelta), so the base weights stay as loaded (BF16 stays BF16). Full training runs
// the forward on a second Model whose weights are the F32 trained tensors. Either way the decoder's
// backward (backward.h) computes each projection's input gradient through the forward model's
// weight and asks the Trainable for the rest: its parameters' gradients and its delta's share of
// the input gradient.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/hooks.h"
#include "engine/json_file.h"
#include "models/model.h"
#include "steering/profile.h"
#include "train/param.h"
#include "train/train_spec.h"

namespace tiller {

class Trainable {
 public:
  virtual ~Trainable() = default;

  const TrainSpec& spec() const { return spec_; }
  Model& base() const { return base_; }
  // The model the training forward runs: the base model, or for full training the trained one.
  virtual Model& model() { return base_; }
  // What the forward adds at the projection call site (null: nothing).
  virtual ProjectionDelta* delta() { return nullptr; }
  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }

  // Dropout (LoRA): a fresh mask per micro-batch, drawn from `seed`; nullopt turns it off
  // (sampling, scoring). Masks are a function of (seed, layer, projection, row count), so a
  // recomputed forward and the backward see the same ones.
  virtual void set_dropout_seed(std::optional<uint64_t> seed) {}

  // Backward of projection p of `layer` (-1: lm_head) beyond the forward weight's own term dy · W:
  // adds the trained parameters' gradients from the projection's input x [T, in] and its output
  // gradient dy [T, out], and the delta's term to dx [T, in].
  virtual void backward_projection(int layer, Projection p, const Tensor& x, const Tensor& dy, Tensor& dx) = 0;
  // Whether anything at or below `layer` is trained (the backward stops above the lowest such layer).
  virtual int lowest_trained_layer() const = 0;
  // Gradients of the norm weights and the embedding (full training only; null otherwise).
  // layer -1 with mlp false: the final norm.
  virtual Tensor* norm_grad(int layer, bool mlp) { return nullptr; }
  virtual Tensor* embedding_grad() { return nullptr; }

  // The trained result as steering-profile deltas (docs/profile-format.md), F32: LoRA's A and B,
  // the heads' column blocks, or (full) trained minus base for every projection weight and bias.
  // Full training's norm and embedding changes have no profile form (save_trained_weights has them).
  virtual std::vector<WeightDelta> deltas() = 0;
  // A trained tensor by its name (full training: the HF weight name); null when absent.
  virtual const Param* find_param(const std::string& name) const;

 protected:
  Trainable(Model& base, TrainSpec spec) : base_(base), spec_(std::move(spec)) {}
  Model& base_;
  TrainSpec spec_;
  std::vector<Param> params_;
};

// Creates the parameters: LoRA A from PEFT's init (kaiming-uniform, a = √5: U(±1/√in)) drawn
// from `seed`, B zero; column deltas zero; full: the base weights widened to F32.
std::unique_ptr<Trainable> make_trainable(Model& base, const TrainSpec& spec, uint64_t seed);

}  // namespace tiller
