// The o_proj columns of chosen heads ("columns:HEADS.json" in --train): the Soteria-shaped delta.
// Each layer with a chosen head trains ΔW_O [D, H·d] whose gradient is masked to the chosen heads'
// columns (h·d … (h+1)·d - 1), so every other column stays exactly zero; the forward adds z · ΔW_Oᵀ
// at o_proj's call site. Saved as delta_columns / delta_column_blocks.
#include <algorithm>
#include <map>

#include "engine/error.h"
#include "models/weight_specs.h"
#include "train/trainable_kinds.h"

namespace tiller {
namespace {

class ColumnTrainable final : public Trainable, public ProjectionDelta {
 public:
  ColumnTrainable(Model& base, const TrainSpec& spec) : Trainable(base, spec) {
    const ModelConfig& c = base.config();
    const int64_t D = c.hidden_size, Hd = c.q_dim(), d = c.head_dim;
    std::map<int, std::vector<int32_t>> by_layer;
    for (const auto& [l, h] : spec.heads) {
      auto& hs = by_layer[l];
      if (std::find(hs.begin(), hs.end(), h) == hs.end()) hs.push_back(h);
    }
    slot_.assign(size_t(c.n_layers), -1);
    for (auto& [l, hs] : by_layer) {
      std::sort(hs.begin(), hs.end());
      slot_[size_t(l)] = int(layers_.size());
      std::vector<float> mask(size_t(D * Hd), 0.0f);
      for (int64_t r = 0; r < D; r++)
        for (int32_t h : hs) std::fill_n(mask.begin() + r * Hd + h * d, d, 1.0f);
      Buffer mb = base.backend().alloc(mask.size() * sizeof(float));
      base.backend().upload(mb.data(), mask.data(), mask.size() * sizeof(float));
      layers_.push_back({l, hs, params_.size(), std::move(mb)});
      params_.push_back(make_param(base.backend(), module_name({l, Projection::O}) + ".weight.delta", {D, Hd},
                                   std::vector<float>(size_t(D * Hd), 0.0f)));
    }
  }

  ProjectionDelta* delta() override { return this; }
  int lowest_trained_layer() const override { return layers_.empty() ? int(1 << 30) : layers_.front().layer; }

  void apply(int layer, Projection p, const Tensor& x, Tensor& y, const ForwardContext&) override {
    const Layer* L = find(layer, p);
    if (!L) return;
    Backend& be = base_.backend();
    Tensor tmp = scratch_rows(be, out_, x.shape[0], y.row_size());
    be.linear(x, params_[L->param].value_t(), nullptr, tmp);
    be.add_scaled(y, tmp, 1.0f);
  }

  void backward_projection(int layer, Projection p, const Tensor& x, const Tensor& dy, Tensor& dx) override {
    const Layer* L = find(layer, p);
    if (!L) return;
    Backend& be = base_.backend();
    const Param& P = params_[L->param];
    Tensor g = scratch_rows(be, grad_, P.shape[0], P.shape[1]);
    be.linear_backward_weight(dy, x, g, nullptr, false);
    const Tensor mask = L->mask.as(DType::F32, {P.shape[0], P.shape[1]});
    be.mul(g, mask, g);
    Tensor pg = P.grad_t();
    be.add_scaled(pg, g, 1.0f);
    be.linear_backward_input(dy, P.value_t(), dx, true);
  }

  std::vector<WeightDelta> deltas() override {
    std::vector<WeightDelta> out;
    const ModelConfig& c = base_.config();
    const int64_t D = c.hidden_size, Hd = c.q_dim(), d = c.head_dim;
    for (const Layer& L : layers_) {
      const std::vector<float> full = download_f32(base_.backend(), params_[L.param].value_t());
      const int64_t k = int64_t(L.heads.size());
      std::vector<float> cols(size_t(D * k * d));
      for (int64_t r = 0; r < D; r++)
        for (int64_t j = 0; j < k; j++)
          std::copy_n(full.begin() + r * Hd + L.heads[size_t(j)] * d, d, cols.begin() + (r * k + j) * d);
      WeightDelta wd;
      wd.kind = DeltaKind::ColumnBlocks;
      wd.module = {L.layer, Projection::O};
      wd.a = HostTensor::from_f32(cols, {D, k * d}, DType::F32);
      wd.blocks = L.heads;
      out.push_back(std::move(wd));
    }
    return out;
  }

 private:
  struct Layer {
    int layer;
    std::vector<int32_t> heads;  // ascending
    size_t param;
    Buffer mask;                 // [D, H·d] 1 on the heads' columns
  };
  const Layer* find(int layer, Projection p) const {
    if (p != Projection::O || layer < 0) return nullptr;
    const int i = slot_[size_t(layer)];
    return i < 0 ? nullptr : &layers_[size_t(i)];
  }

  std::vector<int> slot_;  // [L] index into layers_, or -1
  std::vector<Layer> layers_;
  Buffer out_, grad_;
};

}  // namespace

std::unique_ptr<Trainable> make_columns(Model& base, const TrainSpec& spec) {
  return std::make_unique<ColumnTrainable>(base, spec);
}

}  // namespace tiller
