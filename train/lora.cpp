// LoRA (PEFT's LoRA, "lora" in --train): y += scaling · B · A · dropout(x) on the target projections,
// as a delta at the projection call site. A [r, in], B [out, r]; scaling = alpha / r.
#include <cmath>

#include "engine/error.h"
#include "engine/sampler.h"
#include "models/weight_specs.h"
#include "train/trainable_kinds.h"

namespace tiller {
namespace {

class LoraTrainable final : public Trainable, public ProjectionDelta {
 public:
  LoraTrainable(Model& base, const TrainSpec& spec, uint64_t seed) : Trainable(base, spec) {
    const ModelConfig& c = base.config();
    const LoraSpec& ls = spec.lora;
    if (ls.rank < 1) fail("--lora-rank must be at least 1, found ", ls.rank);
    if (!(ls.dropout >= 0 && ls.dropout < 1)) fail("--lora-dropout must be in [0, 1), found ", ls.dropout);
    scaling_ = float(ls.scaling());
    slot_.assign(size_t(c.n_layers) * kProjections, -1);
    Rng rng(seed);
    for (int l = 0; l < int(c.n_layers); l++) {
      for (Projection p : ls.targets) {
        const Tensor& w = base.projection_weight(l, p);
        const int64_t out = w.shape[0], in = w.shape[1];
        // PEFT: A ~ kaiming_uniform(a=√5) = U(-1/√in, 1/√in); B = 0, so training starts at the base model.
        const double bound = 1.0 / std::sqrt(double(in));
        std::vector<float> a(size_t(ls.rank * in));
        for (float& v : a) v = float((2 * rng.uniform() - 1) * bound);
        slot_[size_t(l * kProjections + int(p))] = int(modules_.size());
        modules_.push_back({l, p, in, out, params_.size()});
        const std::string m = module_name({l, p});
        params_.push_back(make_param(base.backend(), m + ".lora_A.weight", {ls.rank, in}, a));
        params_.push_back(make_param(base.backend(), m + ".lora_B.weight", {out, ls.rank},
                                     std::vector<float>(size_t(out * ls.rank), 0.0f)));
      }
    }
  }

  ProjectionDelta* delta() override { return this; }
  void set_dropout_seed(std::optional<uint64_t> seed) override { dropout_seed_ = seed; }
  int lowest_trained_layer() const override { return modules_.empty() ? int(1 << 30) : modules_.front().layer; }

  void apply(int layer, Projection p, const Tensor& x, Tensor& y, const ForwardContext&) override {
    const Module* m = find(layer, p);
    if (!m) return;
    Backend& be = base_.backend();
    const int64_t T = x.shape[0];
    const Tensor xin = dropped(*m, x);
    Tensor u = scratch_rows(be, u_, T, spec_.lora.rank);
    Tensor tmp = scratch_rows(be, out_, T, m->out);
    be.linear(xin, A(*m), nullptr, u);
    be.linear(u, B(*m), nullptr, tmp);
    Tensor y2 = y.reshaped({T, m->out});
    be.add_scaled(y2, tmp, scaling_);
  }

  void backward_projection(int layer, Projection p, const Tensor& x, const Tensor& dy, Tensor& dx) override {
    const Module* m = find(layer, p);
    if (!m) return;
    Backend& be = base_.backend();
    const int64_t T = x.shape[0], r = spec_.lora.rank;
    const Tensor xin = dropped(*m, x);
    Tensor u = scratch_rows(be, u_, T, r), us = scratch_rows(be, us_, T, r);
    be.linear(xin, A(*m), nullptr, u);
    scaled_copy(be, u, us, scaling_);
    Tensor gB = params_[m->param + 1].grad_t(), gA = params_[m->param].grad_t();
    be.linear_backward_weight(dy, us, gB, nullptr, true);   // dB += dyᵀ · s·u
    be.linear_backward_input(dy, B(*m), u, false);          // du = dy · B
    scaled_copy(be, u, us, scaling_);                       // s · du
    be.linear_backward_weight(us, xin, gA, nullptr, true);  // dA += (s·du)ᵀ · dropout(x)
    if (spec_.lora.dropout == 0 || !dropout_seed_) {
      be.linear_backward_input(us, A(*m), dx, true);        // dx += s·du · A
    } else {
      Tensor tmp = scratch_rows(be, in_, T, m->in);
      be.linear_backward_input(us, A(*m), tmp, false);
      be.mul(tmp, mask(*m, T), tmp);
      be.add_scaled(dx, tmp, 1.0f);
    }
  }

  std::vector<WeightDelta> deltas() override {
    std::vector<WeightDelta> out;
    Backend& be = base_.backend();
    for (const Module& m : modules_) {
      WeightDelta d;
      d.kind = DeltaKind::LowRank;
      d.module = {m.layer, m.projection};
      const Param& A = params_[m.param];
      const Param& B = params_[m.param + 1];
      d.a = HostTensor::from_f32(download_f32(be, A.value_t()), A.shape, DType::F32);
      d.b = HostTensor::from_f32(download_f32(be, B.value_t()), B.shape, DType::F32);
      d.scaling = scaling_;
      out.push_back(std::move(d));
    }
    return out;
  }

 private:
  static constexpr int kProjections = 8;
  struct Module {
    int layer;
    Projection projection;
    int64_t in, out;
    size_t param;  // index of A in params_; B follows
  };

  const Module* find(int layer, Projection p) const {
    if (layer < 0) return nullptr;
    const int i = slot_[size_t(layer * kProjections + int(p))];
    return i < 0 ? nullptr : &modules_[size_t(i)];
  }
  Tensor A(const Module& m) const { return params_[m.param].value_t(); }
  Tensor B(const Module& m) const { return params_[m.param + 1].value_t(); }

  // x, or x ∘ mask when dropout is on.
  Tensor dropped(const Module& m, const Tensor& x) {
    const int64_t T = x.shape[0];
    const Tensor x2 = x.reshaped({T, m.in});
    if (spec_.lora.dropout == 0 || !dropout_seed_) return x2;
    Tensor out = scratch_rows(base_.backend(), in_drop_, T, m.in);
    base_.backend().mul(x2, mask(m, T), out);
    return out;
  }

  // Inverted dropout as torch.nn.Dropout: kept entries scaled by 1 / (1 - p).
  Tensor mask(const Module& m, int64_t T) {
    Rng rng(*dropout_seed_ ^ (uint64_t(m.layer) << 32) ^ (uint64_t(m.projection) << 24) ^ uint64_t(T));
    const double p = spec_.lora.dropout;
    std::vector<float> host(size_t(T * m.in));
    for (float& v : host) v = rng.uniform() < p ? 0.0f : float(1.0 / (1.0 - p));
    Tensor t = scratch_rows(base_.backend(), mask_, T, m.in);
    base_.backend().upload(t.data, host.data(), host.size() * sizeof(float));
    return t;
  }

  float scaling_ = 1;
  std::vector<int> slot_;  // [L * kProjections] index into modules_, or -1
  std::vector<Module> modules_;
  std::optional<uint64_t> dropout_seed_;
  Buffer u_, us_, out_, in_, in_drop_, mask_;
};

}  // namespace

std::unique_ptr<Trainable> make_lora(Model& base, const TrainSpec& spec, uint64_t seed) {
  return std::make_unique<LoraTrainable>(base, spec, seed);
}

}  // namespace tiller
