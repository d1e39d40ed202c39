// TrainingPass: the training forward through the tape, and the decoder's backward.
#include "train/backward.h"

#include <cmath>

#include "engine/error.h"
#include "models/rope.h"

namespace tiller {

struct TrainingPass::Scratch {
  Buffer inv_freq, neg_inv_freq;  // [d/2]
  Buffer dx, h, xmid, dh, a, da, dgate, dup, dz, qr, dq, dk, dv, drows, xrows;
};

TrainingPass::TrainingPass(Trainable& trainable, bool recompute)
    : trainable_(trainable), recompute_(recompute), tape_(trainable.model(), trainable.delta()),
      s_(std::make_unique<Scratch>()) {
  Backend& be = trainable.model().backend();
  std::vector<float> f = rope_inv_freq(trainable.model().config());
  const size_t bytes = f.size() * sizeof(float);
  s_->inv_freq = be.alloc(bytes);
  be.upload(s_->inv_freq.data(), f.data(), bytes);
  for (float& v : f) v = -v;  // rotating by -angle is the transpose of rotating by angle
  s_->neg_inv_freq = be.alloc(bytes);
  be.upload(s_->neg_inv_freq.data(), f.data(), bytes);
}

TrainingPass::~TrainingPass() = default;

Tensor TrainingPass::forward(const Batch& batch, KvCache& kv) {
  ForwardOptions opt;
  opt.hook = &tape_;
  opt.delta = &tape_;
  tape_.begin_forward(!recompute_);
  return trainable_.model().forward(batch, kv, opt);
}

size_t TrainingPass::scratch_bytes() const {
  size_t n = 0;
  const ModelConfig& c = trainable_.model().config();
  for (int l = 0; l < int(c.n_layers); l++) {
    n += tape_.x_in(l).size();
    if (!recompute_ || l == 0) {
      const LayerActivations& a = tape_.layer(l);
      for (const Buffer* b : {&a.q, &a.z, &a.o_out, &a.gate, &a.up}) n += b->size();
    }
  }
  n += tape_.x_final().size() + tape_.final_h().size();
  const Scratch& s = *s_;
  for (const Buffer* b : {&s.dx, &s.h, &s.xmid, &s.dh, &s.a, &s.da, &s.dgate, &s.dup, &s.dz, &s.qr, &s.dq, &s.dk,
                          &s.dv, &s.drows, &s.xrows})
    n += b->size();
  return n;
}

void TrainingPass::backward(const Tensor& dlogits, const Batch& batch, KvCache& kv) {
  Model& model = trainable_.model();
  Backend& be = model.backend();
  const ModelConfig& c = model.config();
  const ModelWeights& W = model.weights();
  const int64_t T = tape_.rows(), D = c.hidden_size, R = dlogits.shape[0];
  const float eps = float(c.rms_norm_eps);
  TILLER_CHECK(T == batch.size() && R == int64_t(tape_.layout().logit_rows.size()),
               "backward: dlogits ", dlogits.shape_string(), " does not match the last forward (", T, " rows, ",
               tape_.layout().logit_rows.size(), " logit rows)");
  Scratch& s = *s_;
  Tensor dx = scratch_rows(be, s.dx, T, D);
  be.fill(dx, 0.0f);

  // lm_head and the final norm, on the logit rows only.
  const Tensor final_h = tape_.final_h().as(DType::F32, {R, D});
  Tensor dfinal = scratch_rows(be, s.dh, R, D);
  be.linear_backward_input(dlogits, W.lm_head, dfinal, false);
  trainable_.backward_projection(-1, Projection::LmHead, final_h, dlogits, dfinal);
  Tensor xrows = scratch_rows(be, s.xrows, R, D), drows = scratch_rows(be, s.drows, R, D);
  be.gather_rows(tape_.x_final().as(DType::F32, {T, D}), tape_.layout(), xrows);
  be.rmsnorm_backward(xrows, W.final_norm, eps, dfinal, drows, trainable_.norm_grad(-1, false), false);
  be.gather_rows_backward(drows, tape_.layout(), dx);

  const int lowest = std::max(0, trainable_.lowest_trained_layer());
  for (int l = int(c.n_layers) - 1; l >= lowest; l--) backward_layer(l, dx, batch, kv);
  if (Tensor* ge = trainable_.embedding_grad(); ge && lowest == 0) be.embedding_backward(dx, tape_.layout(), *ge);
}

void TrainingPass::backward_layer(int l, Tensor& dx, const Batch& batch, KvCache& kv) {
  Model& model = trainable_.model();
  Backend& be = model.backend();
  const ModelConfig& c = model.config();
  const LayerWeights& W = model.weights().layers[size_t(l)];
  const int64_t T = tape_.rows(), D = c.hidden_size, F = c.intermediate_size, H = c.n_heads, Hkv = c.n_kv_heads,
                d = c.head_dim;
  const float eps = float(c.rms_norm_eps);
  Scratch& s = *s_;

  const Tensor x_in = tape_.x_in(l).as(DType::F32, {T, D});
  if (recompute_) {
    // Rerun this layer alone from its input stream, into a cache emptied for it (the keys of the
    // layers above were used already; the ones below are recomputed in turn).
    Batch b = batch;
    std::fill(b.logits.begin(), b.logits.end(), uint8_t(0));
    for (size_t i = 0; i < b.seqs.size(); i++) {
      if (b.positions[i] == 0) kv.truncate(b.seqs[i], 0);
    }
    ForwardOptions opt;
    opt.first_layer = l;
    opt.end_layer = l + 1;
    opt.input_residual = &x_in;
    opt.hook = &tape_;
    opt.delta = &tape_;
    tape_.begin_recompute(l);
    model.forward(b, kv, opt);
  }
  const LayerActivations& act = tape_.layer(l);
  const BatchLayout& layout = tape_.layout();

  // --- MLP block: x_out = x_mid + down(silu(gate(h2)) · up(h2)), h2 = norm(x_mid) ---------------
  Tensor xmid = scratch_rows(be, s.xmid, T, D);
  be.copy(x_in, xmid);
  be.add(xmid, act.o_out.as(DType::F32, {T, D}));
  const Tensor gate = act.gate.as(DType::F32, {T, F}), up = act.up.as(DType::F32, {T, F});
  Tensor a = scratch_rows(be, s.a, T, F), da = scratch_rows(be, s.da, T, F);
  be.silu_mul(gate, up, a);
  be.linear_backward_input(dx, W.down, da, false);
  trainable_.backward_projection(l, Projection::Down, a, dx, da);
  Tensor dgate = scratch_rows(be, s.dgate, T, F), dup = scratch_rows(be, s.dup, T, F);
  be.silu_mul_backward(gate, up, da, dgate, dup);
  Tensor h = scratch_rows(be, s.h, T, D), dh = scratch_rows(be, s.dh, T, D);
  be.rmsnorm(xmid, W.mlp_norm, eps, h);
  be.linear_backward_input(dgate, W.gate, dh, false);
  trainable_.backward_projection(l, Projection::Gate, h, dgate, dh);
  be.linear_backward_input(dup, W.up, dh, true);
  trainable_.backward_projection(l, Projection::Up, h, dup, dh);
  be.rmsnorm_backward(xmid, W.mlp_norm, eps, dh, dx, trainable_.norm_grad(l, true), true);  // dx: ∂/∂x_mid

  // --- attention block: x_mid = x_in + o(attention(rope(q(h1)), rope(k(h1)), v(h1))) -------------
  const Tensor z = act.z.as(DType::F32, {T, H * d});
  Tensor dz = scratch_rows(be, s.dz, T, H * d);
  be.linear_backward_input(dx, W.o, dz, false);
  trainable_.backward_projection(l, Projection::O, z, dx, dz);
  Tensor qr = scratch_rows(be, s.qr, T, H * d).reshaped({T, H, d});
  Tensor dq = scratch_rows(be, s.dq, T, H * d).reshaped({T, H, d});
  Tensor dk = scratch_rows(be, s.dk, T, Hkv * d).reshaped({T, Hkv, d});
  Tensor dv = scratch_rows(be, s.dv, T, Hkv * d).reshaped({T, Hkv, d});
  be.copy(act.q.as(DType::F32, {T, H * d}), qr);
  be.rope(qr, dk, s.inv_freq.as(DType::F32, {d / 2}), layout);  // dk: scratch for the keys' half of the call
  const float scale = float(1.0 / std::sqrt(double(d)));
  be.attention_backward(qr, kv.store(), l, c.sliding_window[size_t(l)], scale, layout, z.reshaped({T, H, d}),
                        dz.reshaped({T, H, d}), dq, dk, dv);
  be.rope(dq, dk, s.neg_inv_freq.as(DType::F32, {d / 2}), layout);
  be.rmsnorm(x_in, W.attn_norm, eps, h);
  const Tensor dq2 = dq.reshaped({T, H * d}), dk2 = dk.reshaped({T, Hkv * d}), dv2 = dv.reshaped({T, Hkv * d});
  be.linear_backward_input(dq2, W.q, dh, false);
  trainable_.backward_projection(l, Projection::Q, h, dq2, dh);
  be.linear_backward_input(dk2, W.k, dh, true);
  trainable_.backward_projection(l, Projection::K, h, dk2, dh);
  be.linear_backward_input(dv2, W.v, dh, true);
  trainable_.backward_projection(l, Projection::V, h, dv2, dh);
  be.rmsnorm_backward(x_in, W.attn_norm, eps, dh, dx, trainable_.norm_grad(l, false), true);  // dx: ∂/∂x_in
}

}  // namespace tiller
