// Full training ("full" in --train): every weight is a trained F32 tensor, and the forward runs on a
// second Model whose weights are those tensors (the loaded model stays as it is: the frozen
// teacher, and the base the saved delta is taken against). Small models only: weights, gradients
// and both AdamW moments are F32, 16 bytes per parameter.
#include <map>

#include "engine/error.h"
#include "models/weight_specs.h"
#include "train/trainable_kinds.h"

namespace tiller {
namespace {

class FullTrainable final : public Trainable {
 public:
  FullTrainable(Model& base, const TrainSpec& spec) : Trainable(base, spec) {
    Backend& be = base.backend();
    const ModelConfig& c = base.config();
    ModelWeights trained;
    trained.layers.resize(size_t(c.n_layers));
    for (const WeightSpec& s : weight_specs(c)) {
      const Tensor& src = s.layer >= 0 ? base.weights().layers[size_t(s.layer)].*(s.layer_field)
                                       : base.weights().*(s.model_field);
      std::vector<char> raw(src.nbytes());
      be.download(raw.data(), src.data, raw.size());
      std::vector<float> init(static_cast<size_t>(src.numel()));
      to_f32(src.dtype, raw.data(), init.data(), init.size());
      index_[s.name] = params_.size();
      // HF's Trainer applies weight decay to neither biases nor norm weights.
      params_.push_back(make_param(be, s.name, s.shape, init, !s.is_vector));
      Tensor t = params_.back().value_t();
      if (s.layer >= 0) trained.layers[size_t(s.layer)].*(s.layer_field) = t;
      else trained.*(s.model_field) = t;
    }
    if (c.tie_word_embeddings) trained.lm_head = trained.embed;
    model_ = std::make_unique<Model>(c, be, std::move(trained), std::vector<Buffer>{},
                                     std::vector<std::shared_ptr<const void>>{});
  }

  Model& model() override { return *model_; }
  int lowest_trained_layer() const override { return 0; }

  void backward_projection(int layer, Projection p, const Tensor& x, const Tensor& dy, Tensor& dx) override {
    Backend& be = base_.backend();
    const bool tied = p == Projection::LmHead && base_.config().tie_word_embeddings;
    const std::string w = tied ? "model.embed_tokens.weight" : module_name({layer, p}) + ".weight";
    Tensor gw = params_[index_.at(w)].grad_t();
    Tensor gb;
    const auto bias = index_.find(module_name({layer, p}) + ".bias");
    if (bias != index_.end()) gb = params_[bias->second].grad_t();
    be.linear_backward_weight(dy, x, gw, gb.empty() ? nullptr : &gb, true);
  }

  Tensor* norm_grad(int layer, bool mlp) override {
    const std::string name = layer < 0 ? "model.norm.weight"
                                       : "model.layers." + std::to_string(layer) +
                                             (mlp ? ".post_attention_layernorm.weight" : ".input_layernorm.weight");
    return grad_view(name);
  }
  Tensor* embedding_grad() override { return grad_view("model.embed_tokens.weight"); }

  std::vector<WeightDelta> deltas() override {
    std::vector<WeightDelta> out;
    Backend& be = base_.backend();
    const ModelConfig& c = base_.config();
    auto delta_of = [&](const Tensor& base_t, const std::string& name) {
      std::vector<char> raw(base_t.nbytes());
      be.download(raw.data(), base_t.data, raw.size());
      std::vector<float> base_f32(static_cast<size_t>(base_t.numel()));
      to_f32(base_t.dtype, raw.data(), base_f32.data(), base_f32.size());
      std::vector<float> delta = download_f32(be, params_[index_.at(name)].value_t());
      for (size_t i = 0; i < delta.size(); i++) delta[i] -= base_f32[i];
      return delta;
    };
    auto add = [&](DeltaKind kind, ModuleRef m, const Tensor& base_t, const std::string& name) {
      WeightDelta d;
      d.kind = kind;
      d.module = m;
      std::vector<int64_t> shape(base_t.shape.begin(), base_t.shape.begin() + base_t.rank);
      d.a = HostTensor::from_f32(delta_of(base_t, name), shape, DType::F32);
      out.push_back(std::move(d));
    };
    for (int l = 0; l < int(c.n_layers); l++) {
      for (Projection p : {Projection::Q, Projection::K, Projection::V, Projection::O, Projection::Gate, Projection::Up,
                           Projection::Down}) {
        add(DeltaKind::Dense, {l, p}, base_.projection_weight(l, p), module_name({l, p}) + ".weight");
        if (!base_.projection_bias(l, p).empty())
          add(DeltaKind::Bias, {l, p}, base_.projection_bias(l, p), module_name({l, p}) + ".bias");
      }
    }
    // A tied head's delta is the embedding's: as an lm_head delta it changes the logits as trained
    // (applying it unties the head; the input embedding's change is only in save_trained_weights).
    add(DeltaKind::Dense, {-1, Projection::LmHead}, base_.projection_weight(-1, Projection::LmHead),
        c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    return out;
  }

  const Param* find_param(const std::string& name) const override {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &params_[it->second];
  }

 private:
  Tensor* grad_view(const std::string& name) {
    views_[name] = params_[index_.at(name)].grad_t();
    return &views_[name];
  }

  std::map<std::string, size_t> index_;  // HF name -> params_
  std::map<std::string, Tensor> views_;
  std::unique_ptr<Model> model_;
};

}  // namespace

std::unique_ptr<Trainable> make_full(Model& base, const TrainSpec& spec) {
  return std::make_unique<FullTrainable>(base, spec);
}

}  // namespace tiller
