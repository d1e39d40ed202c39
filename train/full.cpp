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
                                     std::vector<std::shared_ptr<SafetensorsFile>>{});
  }

  Model& model() override { return *model_; }
  int lowest_trained_layer() const override { return 0; }

  void backward_projection(int layer, Projection p, const Tensor& x, const Tensor& dy, Tensor& dx) override {
    Backend& be = base_.backend();
    const bool tied = p == Projection::LmHead && base_.config().tie_word_embeddings;
    const std::string w = tied ? "model.embed_tokens.weight" : module_name(layer, p) + ".weight";
    Tensor gw = params_[index_.at(w)].grad_t();
    Tensor gb;
    const auto bias = index_.find(module_name(layer, p) + ".bias");
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

  ProfileContent profile() override {
    ProfileContent out;
    Backend& be = base_.backend();
    const ModelConfig& c = base_.config();
    for (const WeightSpec& s : weight_specs(c)) {
      const Tensor& src = s.layer >= 0 ? base_.weights().layers[size_t(s.layer)].*(s.layer_field)
                                       : base_.weights().*(s.model_field);
      std::vector<char> raw(src.nbytes());
      be.download(raw.data(), src.data, raw.size());
      std::vector<float> base_f32(static_cast<size_t>(src.numel()));
      to_f32(src.dtype, raw.data(), base_f32.data(), base_f32.size());
      std::vector<float> delta = download_f32(be, params_[index_.at(s.name)].value_t());
      for (size_t i = 0; i < delta.size(); i++) delta[i] -= base_f32[i];
      // "<W>.delta" for a weight, "<M>.bias.delta" for a bias: both are the tensor's name + ".delta".
      out.tensors.push_back({s.name + ".delta", s.shape, std::move(delta), {}});
    }
    return out;
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
