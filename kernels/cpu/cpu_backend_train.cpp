// CpuBackend's training ops: shape checks and dispatch to kernels/cpu/backward.h.
#include <cstring>

#include "engine/error.h"
#include "kernels/cpu/backward.h"
#include "kernels/cpu/cpu_backend.h"

namespace tiller {
namespace {

void check_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::F32 || t.device != Device::Cpu)
    fail(op, ": ", what, " must be an F32 CPU tensor, found ", dtype_name(t.dtype));
}

void check_same_size(const Tensor& a, const Tensor& b, const char* op) {
  TILLER_CHECK(a.numel() == b.numel(), op, ": sizes differ, ", a.shape_string(), " and ", b.shape_string());
}

}  // namespace

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  TILLER_CHECK(src.dtype == dst.dtype && src.numel() == dst.numel(), "copy: ", dtype_name(src.dtype), " ",
               src.shape_string(), " to ", dtype_name(dst.dtype), " ", dst.shape_string());
  std::memmove(dst.data, src.data, src.nbytes());
}

void CpuBackend::fill(Tensor& x, float value) {
  check_f32(x, "fill", "x");
  float* p = x.ptr<float>();
  pool_.parallel_for(x.numel(), 1 << 16, [&](int64_t i0, int64_t i1) { std::fill(p + i0, p + i1, value); });
}

void CpuBackend::add_scaled(Tensor& x, const Tensor& y, float alpha) {
  check_f32(x, "add_scaled", "x");
  check_f32(y, "add_scaled", "y");
  check_same_size(x, y, "add_scaled");
  cpu::add_scaled(x.ptr<float>(), y.ptr<float>(), alpha, x.numel(), pool_);
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_f32(a, "mul", "a");
  check_f32(b, "mul", "b");
  check_f32(out, "mul", "out");
  check_same_size(a, b, "mul");
  check_same_size(a, out, "mul");
  cpu::mul(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), a.numel(), pool_);
}

void CpuBackend::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  check_f32(dy, "linear_backward_input", "dy");
  check_f32(dx, "linear_backward_input", "dx");
  TILLER_CHECK(w.rank == 2 && is_float(w.dtype), "weight must be a float matrix, found ", w.shape_string());
  const int64_t T = dy.shape[0], N = w.shape[0], K = w.shape[1];
  TILLER_CHECK(dy.row_size() == N && dx.shape[0] == T && dx.row_size() == K, "dy ", dy.shape_string(), " w ",
               w.shape_string(), " dx ", dx.shape_string());
  cpu::linear_backward_input(dy.ptr<float>(), T, N, w.data, w.dtype, K, dx.ptr<float>(), accumulate, pool_);
}

void CpuBackend::linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* dbias,
                                        bool accumulate) {
  check_f32(dy, "linear_backward_weight", "dy");
  check_f32(x, "linear_backward_weight", "x");
  check_f32(dw, "linear_backward_weight", "dw");
  const int64_t T = dy.shape[0], N = dy.row_size(), K = x.row_size();
  TILLER_CHECK(x.shape[0] == T && dw.numel() == N * K && (dw.rank != 2 || (dw.shape[0] == N && dw.shape[1] == K)),
               "dy ", dy.shape_string(), " x ", x.shape_string(), " dw ", dw.shape_string());
  if (dbias) {
    check_f32(*dbias, "linear_backward_weight", "dbias");
    TILLER_CHECK(dbias->numel() == N);
  }
  cpu::linear_backward_weight(dy.ptr<float>(), x.ptr<float>(), T, N, K, dw.ptr<float>(),
                              dbias ? dbias->ptr<float>() : nullptr, accumulate, pool_);
}

void CpuBackend::rmsnorm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                                  Tensor* dw, bool accumulate) {
  check_f32(x, "rmsnorm_backward", "x");
  check_f32(w, "rmsnorm_backward", "w");
  check_f32(dy, "rmsnorm_backward", "dy");
  check_f32(dx, "rmsnorm_backward", "dx");
  const int64_t D = w.numel();
  TILLER_CHECK(x.shape[x.rank - 1] == D && dy.numel() == x.numel() && dx.numel() == x.numel());
  if (dw) {
    check_f32(*dw, "rmsnorm_backward", "dw");
    TILLER_CHECK(dw->numel() == D);
  }
  cpu::rmsnorm_backward(x.ptr<float>(), w.ptr<float>(), eps, dy.ptr<float>(), x.numel() / D, D, dx.ptr<float>(),
                        dw ? dw->ptr<float>() : nullptr, accumulate, pool_);
}

void CpuBackend::silu_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                                   Tensor& dup) {
  for (const Tensor* t : {&gate, &up, &dout, static_cast<const Tensor*>(&dgate), static_cast<const Tensor*>(&dup)}) {
    check_f32(*t, "silu_mul_backward", "every tensor");
    check_same_size(*t, gate, "silu_mul_backward");
  }
  cpu::silu_mul_backward(gate.ptr<float>(), up.ptr<float>(), dout.ptr<float>(), dgate.ptr<float>(), dup.ptr<float>(),
                         gate.numel(), pool_);
}

void CpuBackend::attention_backward(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                                    const BatchLayout& b, const Tensor& out, const Tensor& dout, Tensor& dq,
                                    Tensor& dk, Tensor& dv) {
  for (const Tensor* t : {&q, &out, &dout, static_cast<const Tensor*>(&dq)}) {
    check_f32(*t, "attention_backward", "q, out, dout and dq");
    check_same_size(*t, q, "attention_backward");
  }
  TILLER_CHECK(q.rank == 3 && q.shape[0] == b.n_rows() && q.shape[2] == kv.head_dim && q.shape[1] % kv.n_kv_heads == 0,
               "q ", q.shape_string());
  TILLER_CHECK(kv.dtype == DType::F32 || kv.dtype == DType::BF16, "KV cache dtype ", dtype_name(kv.dtype));
  const int64_t kv_elems = b.n_rows() * kv.n_kv_heads * kv.head_dim;
  check_f32(dk, "attention_backward", "dk");
  check_f32(dv, "attention_backward", "dv");
  TILLER_CHECK(dk.numel() == kv_elems && dv.numel() == kv_elems, "dk ", dk.shape_string(), " dv ", dv.shape_string());
  cpu::attention_backward(q.ptr<float>(), kv, layer, window, scale, b, q.shape[1], out.ptr<float>(),
                          dout.ptr<float>(), dq.ptr<float>(), dk.ptr<float>(), dv.ptr<float>(), pool_);
}

void CpuBackend::embedding_backward(const Tensor& dx, const BatchLayout& b, Tensor& dtable) {
  check_f32(dx, "embedding_backward", "dx");
  check_f32(dtable, "embedding_backward", "dtable");
  TILLER_CHECK(dtable.rank == 2 && dx.shape[0] == b.n_rows() && dx.row_size() == dtable.shape[1]);
  for (int32_t tok : b.tokens) TILLER_CHECK(tok >= 0 && tok < dtable.shape[0], "token ", tok);
  cpu::embedding_backward(dx.ptr<float>(), b.tokens.data(), b.n_rows(), dtable.shape[1], dtable.ptr<float>(), pool_);
}

void CpuBackend::gather_rows_backward(const Tensor& dout, const BatchLayout& b, Tensor& dx) {
  check_f32(dout, "gather_rows_backward", "dout");
  check_f32(dx, "gather_rows_backward", "dx");
  const int64_t D = dx.row_size();
  TILLER_CHECK(dout.shape[0] == int64_t(b.logit_rows.size()) && dout.row_size() == D);
  for (size_t i = 0; i < b.logit_rows.size(); i++) {
    float* dst = dx.ptr<float>() + int64_t(b.logit_rows[i]) * D;
    const float* src = dout.ptr<float>() + int64_t(i) * D;
    for (int64_t j = 0; j < D; j++) dst[j] += src[j];
  }
}

void CpuBackend::cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& loss) {
  check_f32(logits, "cross_entropy", "logits");
  check_f32(weights, "cross_entropy", "weights");
  check_f32(loss, "cross_entropy", "loss");
  const int64_t R = logits.shape[0], V = logits.row_size();
  TILLER_CHECK(targets.dtype == DType::I32 && targets.numel() == R && weights.numel() == R && loss.numel() == R);
  for (int64_t r = 0; r < R; r++) {
    const int32_t y = targets.ptr<int32_t>()[r];
    if (y < 0 || y >= V) fail("cross_entropy: target ", y, " of row ", r, " is outside the vocabulary [0, ", V, ")");
  }
  cpu::cross_entropy(logits.ptr<float>(), targets.ptr<int32_t>(), weights.ptr<float>(), R, V, loss.ptr<float>(), pool_);
}

double CpuBackend::sum_squares(const Tensor& x) {
  check_f32(x, "sum_squares", "x");
  return cpu::sum_squares(x.ptr<float>(), x.numel(), pool_);
}

void CpuBackend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& step) {
  for (const Tensor* t : {static_cast<const Tensor*>(&param), &grad, static_cast<const Tensor*>(&m),
                          static_cast<const Tensor*>(&v)}) {
    check_f32(*t, "adamw", "param, grad and moments");
    check_same_size(*t, param, "adamw");
  }
  cpu::adamw(param.ptr<float>(), grad.ptr<float>(), m.ptr<float>(), v.ptr<float>(), param.numel(), step, pool_);
}

}  // namespace tiller
