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
#include "train/param.h"
#include "train/train_spec.h"

namespace tiller {

// A trained result as steering-profile tensors (docs/profile-format.md), on the host.
struct ProfileTensor {
  std::string name;             // "….o_proj.weight.delta_columns", "….q_proj.lora_A.weight", "….delta"
  std::vector<int64_t> shape;
  std::vector<float> values;    // F32 tensors
  std::vector<int32_t> blocks;  // I32 tensors (delta_column_blocks); values empty then
};

struct ProfileContent {
  std::vector<ProfileTensor> tensors;
  json lora = json::object();                       // module -> {rank, alpha, scaling}
  std::vector<std::pair<int32_t, int32_t>> heads;   // columns: the trained heads
};

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

  // The trained result as profile tensors (full: trained minus base, in F32).
  virtual ProfileContent profile() = 0;

 protected:
  Trainable(Model& base, TrainSpec spec) : base_(base), spec_(std::move(spec)) {}
  Model& base_;
  TrainSpec spec_;
  std::vector<Param> params_;
};

// Creates the parameters: LoRA A from PEFT's init (kaiming-uniform, a = √5: U(±1/√in)) drawn
// from `seed`, B zero; column deltas zero; full: the base weights widened to F32.
std::unique_ptr<Trainable> make_trainable(Model& base, const TrainSpec& spec, uint64_t seed);

// HF module names, as PEFT spells them: "model.layers.3.self_attn.q_proj", "lm_head".
std::string module_name(int layer, Projection p);
// The forward weight of projection p of `layer` in `weights` (layer -1: lm_head).
const Tensor& projection_weight(const ModelWeights& weights, int layer, Projection p);
const Tensor& projection_bias(const ModelWeights& weights, int layer, Projection p);

}  // namespace tiller
