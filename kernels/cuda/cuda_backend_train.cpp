// CudaBackend's training ops: shape checks, cuBLAS for the two GEMMs of a projection's backward,
// and the kernels of backward.cu / attention_backward.cu. Scratch is allocated per call: training
// steps are long, and these ops never run inside a captured graph.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/error.h"
#include "engine/whole_sequences.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/train_ops.h"

namespace tiller {
namespace {

void check_f32(const Tensor& t, const char* op, const char* what) {
  if (t.dtype != DType::F32 || t.device != Device::Cuda || !t.data)
    fail(op, ": ", what, " must be an F32 CUDA tensor, found ", dtype_name(t.dtype),
         t.device == Device::Cuda ? " on CUDA" : " on the CPU");
}

void check_same_size(const Tensor& a, const Tensor& b, const char* op) {
  TILLER_CHECK(a.numel() == b.numel(), op, ": sizes differ, ", a.shape_string(), " and ", b.shape_string());
}

cudaDataType cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: fail("linear_backward_input: weight dtype ", dtype_name(t), " is not F32, BF16 or F16");
  }
}

}  // namespace

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  TILLER_CHECK(src.dtype == dst.dtype && src.numel() == dst.numel(), "copy: ", src.shape_string(), " to ",
               dst.shape_string());
  TILLER_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDefault,
                                    static_cast<cudaStream_t>(stream_handle())));
}

void CudaBackend::fill(Tensor& x, float value) {
  check_f32(x, "fill", "x");
  cuda::fill(x.ptr<float>(), value, x.numel(), static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::add_scaled(Tensor& x, const Tensor& y, float alpha) {
  check_f32(x, "add_scaled", "x");
  check_f32(y, "add_scaled", "y");
  check_same_size(x, y, "add_scaled");
  cuda::add_scaled(x.ptr<float>(), y.ptr<float>(), alpha, x.numel(), static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_f32(a, "mul", "a");
  check_f32(b, "mul", "b");
  check_f32(out, "mul", "out");
  check_same_size(a, b, "mul");
  check_same_size(a, out, "mul");
  cuda::mul(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), a.numel(), static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  check_f32(dy, "linear_backward_input", "dy");
  check_f32(dx, "linear_backward_input", "dx");
  TILLER_CHECK(w.rank == 2 && w.device == Device::Cuda, "linear_backward_input: weight ", w.shape_string());
  const int64_t T = dy.shape[0], N = w.shape[0], K = w.shape[1];
  TILLER_CHECK(dy.row_size() == N && dx.shape[0] == T && dx.row_size() == K && T < INT32_MAX && N < INT32_MAX &&
                   K < INT32_MAX,
               "dy ", dy.shape_string(), " w ", w.shape_string(), " dx ", dx.shape_string());
  if (T == 0) return;
  auto stream = static_cast<cudaStream_t>(stream_handle());
  // Column-major: dxᵀ [K, T] = W [K, N] · dyᵀ [N, T]. BF16/F16 weights: dy rounded to their dtype.
  Buffer converted;
  const void* dyb = dy.data;
  if (w.dtype != DType::F32) {
    converted = alloc(size_t(T * N) * dtype_size(w.dtype));
    cuda::convert_f32(dy.ptr<float>(), w.dtype, converted.data(), T * N, stream);
    dyb = converted.data();
  }
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cudaDataType wt = cuda_type(w.dtype);
  TILLER_CUDA_CHECK(cublasGemmEx(static_cast<cublasHandle_t>(cublas_handle()), CUBLAS_OP_N, CUBLAS_OP_N, int(K),
                                 int(T), int(N), &one, w.data, wt, int(K), dyb, wt, int(N), &beta, dx.data, CUDA_R_32F,
                                 int(K), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* dbias,
                                         bool accumulate) {
  check_f32(dy, "linear_backward_weight", "dy");
  check_f32(x, "linear_backward_weight", "x");
  check_f32(dw, "linear_backward_weight", "dw");
  const int64_t T = dy.shape[0], N = dy.row_size(), K = x.row_size();
  TILLER_CHECK(x.shape[0] == T && dw.numel() == N * K && T < INT32_MAX && N < INT32_MAX && K < INT32_MAX, "dy ",
               dy.shape_string(), " x ", x.shape_string(), " dw ", dw.shape_string());
  auto stream = static_cast<cudaStream_t>(stream_handle());
  if (dbias) {
    check_f32(*dbias, "linear_backward_weight", "dbias");
    TILLER_CHECK(dbias->numel() == N);
    cuda::column_sums(dy.ptr<float>(), T, N, dbias->ptr<float>(), accumulate, stream);
  }
  // Column-major: dwᵀ [K, N] = xᵀ [K, T] · dy [T, N].
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  TILLER_CUDA_CHECK(cublasGemmEx(static_cast<cublasHandle_t>(cublas_handle()), CUBLAS_OP_N, CUBLAS_OP_T, int(K),
                                 int(N), int(T), &one, x.data, CUDA_R_32F, int(K), dy.data, CUDA_R_32F, int(N), &beta,
                                 dw.data, CUDA_R_32F, int(K), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::rmsnorm_backward(const Tensor& x, const Tensor& w, float eps, const Tensor& dy, Tensor& dx,
                                   Tensor* dw, bool accumulate) {
  check_f32(x, "rmsnorm_backward", "x");
  check_f32(w, "rmsnorm_backward", "w");
  check_f32(dy, "rmsnorm_backward", "dy");
  check_f32(dx, "rmsnorm_backward", "dx");
  const int64_t D = w.numel(), T = x.numel() / D;
  TILLER_CHECK(x.shape[x.rank - 1] == D && dy.numel() == x.numel() && dx.numel() == x.numel());
  if (dw) {
    check_f32(*dw, "rmsnorm_backward", "dw");
    TILLER_CHECK(dw->numel() == D);
  }
  Buffer rstd = alloc(size_t(std::max<int64_t>(T, 1)) * sizeof(float));
  cuda::rmsnorm_backward(x.ptr<float>(), w.ptr<float>(), eps, dy.ptr<float>(), T, D, dx.ptr<float>(),
                         dw ? dw->ptr<float>() : nullptr, accumulate, static_cast<float*>(rstd.data()),
                         static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::silu_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                                    Tensor& dup) {
  for (const Tensor* t : {&gate, &up, &dout, static_cast<const Tensor*>(&dgate), static_cast<const Tensor*>(&dup)}) {
    check_f32(*t, "silu_mul_backward", "every tensor");
    check_same_size(*t, gate, "silu_mul_backward");
  }
  cuda::silu_mul_backward(gate.ptr<float>(), up.ptr<float>(), dout.ptr<float>(), dgate.ptr<float>(),
                          dup.ptr<float>(), gate.numel(), static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::attention_backward(const Tensor& q, const KvStore& kv, int layer, int64_t window, float scale,
                                     const BatchLayout& b, const Tensor& out, const Tensor& dout, Tensor& dq,
                                     Tensor& dk, Tensor& dv) {
  for (const Tensor* t : {&q, &out, &dout, static_cast<const Tensor*>(&dq)}) {
    check_f32(*t, "attention_backward", "q, out, dout and dq");
    check_same_size(*t, q, "attention_backward");
  }
  check_f32(dk, "attention_backward", "dk");
  check_f32(dv, "attention_backward", "dv");
  TILLER_CHECK(q.rank == 3 && q.shape[0] == b.n_rows() && q.shape[2] == kv.head_dim && q.shape[1] % kv.n_kv_heads == 0,
               "q ", q.shape_string());
  TILLER_CHECK(layer >= 0 && size_t(layer) < kv.k.size(), "layer ", layer);
  const int64_t T = b.n_rows(), H = q.shape[1];
  TILLER_CHECK(dk.numel() == T * kv.n_kv_heads * kv.head_dim && dv.numel() == dk.numel());
  TILLER_CHECK(b.device.positions.device == Device::Cuda,
               "attention_backward: the batch layout was not uploaded by this backend (call upload_layout)");
  check_whole_sequences(b, "attention_backward");
  Buffer scratch = alloc(size_t(2 * std::max<int64_t>(T * H, 1)) * sizeof(float));
  cuda::AttentionBackwardArgs a;
  a.q = q.ptr<float>();
  a.k_cache = kv.k[size_t(layer)].data;
  a.v_cache = kv.v[size_t(layer)].data;
  a.kv_dtype = kv.dtype;
  a.out = out.ptr<float>();
  a.dout = dout.ptr<float>();
  a.dq = dq.ptr<float>();
  a.dk = dk.ptr<float>();
  a.dv = dv.ptr<float>();
  a.lse = static_cast<float*>(scratch.data());
  a.delta = a.lse + T * H;
  a.positions = b.device.positions.ptr<int32_t>();
  a.row_seq = b.device.row_seq.ptr<int32_t>();
  a.block_tables = b.device.block_tables.ptr<int32_t>();
  a.kv_lens = b.device.kv_lens.ptr<int32_t>();
  a.T = T;
  a.H = H;
  a.Hkv = kv.n_kv_heads;
  a.d = kv.head_dim;
  a.block_size = kv.block_size;
  a.max_blocks = b.max_blocks;
  a.window = window;
  a.scale = scale;
  cuda::attention_backward(a, static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::embedding_backward(const Tensor& dx, const BatchLayout& b, Tensor& dtable) {
  check_f32(dx, "embedding_backward", "dx");
  check_f32(dtable, "embedding_backward", "dtable");
  TILLER_CHECK(dtable.rank == 2 && dx.shape[0] == b.n_rows() && dx.row_size() == dtable.shape[1]);
  cuda::embedding_backward(dx.ptr<float>(), b.device.tokens.ptr<int32_t>(), b.n_rows(), dtable.shape[1],
                           dtable.ptr<float>(), static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::gather_rows_backward(const Tensor& dout, const BatchLayout& b, Tensor& dx) {
  check_f32(dout, "gather_rows_backward", "dout");
  check_f32(dx, "gather_rows_backward", "dx");
  const int64_t D = dx.row_size(), R = int64_t(b.logit_rows.size());
  TILLER_CHECK(dout.shape[0] == R && dout.row_size() == D);
  cuda::gather_rows_backward(dout.ptr<float>(), b.device.logit_rows.ptr<int32_t>(), R, D, dx.ptr<float>(),
                             static_cast<cudaStream_t>(stream_handle()));
}

void CudaBackend::cross_entropy(Tensor& logits, const Tensor& targets, const Tensor& weights, Tensor& loss) {
  check_f32(logits, "cross_entropy", "logits");
  check_f32(weights, "cross_entropy", "weights");
  check_f32(loss, "cross_entropy", "loss");
  const int64_t R = logits.shape[0], V = logits.row_size();
  TILLER_CHECK(targets.dtype == DType::I32 && targets.device == Device::Cuda && targets.numel() == R &&
               weights.numel() == R && loss.numel() == R);
  cuda::cross_entropy(logits.ptr<float>(), targets.ptr<int32_t>(), weights.ptr<float>(), R, V, loss.ptr<float>(),
                      static_cast<cudaStream_t>(stream_handle()));
}

double CudaBackend::sum_squares(const Tensor& x) {
  check_f32(x, "sum_squares", "x");
  Buffer out = alloc(sizeof(double));
  cuda::sum_squares(x.ptr<float>(), x.numel(), static_cast<double*>(out.data()),
                    static_cast<cudaStream_t>(stream_handle()));
  double s = 0;
  download(&s, out.data(), sizeof(double));
  return s;
}

void CudaBackend::adamw(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& step) {
  for (const Tensor* t : {static_cast<const Tensor*>(&param), &grad, static_cast<const Tensor*>(&m),
                          static_cast<const Tensor*>(&v)}) {
    check_f32(*t, "adamw", "param, grad and moments");
    check_same_size(*t, param, "adamw");
  }
  const cuda::AdamWArgs args{step.lr,        step.beta1,     step.beta2,      step.eps,
                             step.weight_decay, step.step_size, step.bias_correction2_sqrt, step.grad_scale};
  cuda::adamw(param.ptr<float>(), grad.ptr<float>(), m.ptr<float>(), v.ptr<float>(), param.numel(), args,
              static_cast<cudaStream_t>(stream_handle()));
}

}  // namespace tiller
