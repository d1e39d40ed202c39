// Param storage and the small device helpers the trainer shares.
#include "train/param.h"

#include "engine/error.h"

namespace tiller {

int64_t Param::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Param::view(const Buffer& b) const {
  Tensor t(b.data(), DType::F32, {}, b.device());
  t.rank = int(shape.size());
  TILLER_CHECK(t.rank <= Tensor::kMaxRank);
  for (size_t i = 0; i < shape.size(); i++) t.shape[i] = shape[i];
  return t;
}

Param make_param(Backend& backend, std::string name, std::vector<int64_t> shape, const std::vector<float>& init,
                 bool decay) {
  Param p;
  p.name = std::move(name);
  p.shape = std::move(shape);
  p.decay = decay;
  const int64_t n = p.numel();
  TILLER_CHECK(int64_t(init.size()) == n, p.name, ": ", init.size(), " initial values for ", n, " elements");
  const size_t bytes = size_t(n) * sizeof(float);
  for (Buffer* b : {&p.value, &p.grad, &p.m, &p.v}) *b = backend.alloc(bytes);
  backend.upload(p.value.data(), init.data(), bytes);
  for (Buffer* b : {&p.grad, &p.m, &p.v}) {
    Tensor t = p.view(*b);
    backend.fill(t, 0.0f);
  }
  return p;
}

std::vector<float> download_f32(Backend& backend, const Tensor& t) {
  TILLER_CHECK(t.dtype == DType::F32, "download_f32: ", dtype_name(t.dtype));
  std::vector<float> out(static_cast<size_t>(t.numel()));
  backend.download(out.data(), t.data, t.nbytes());
  return out;
}

Tensor scratch_rows(Backend& backend, Buffer& buffer, int64_t rows, int64_t width) {
  const size_t need = size_t(std::max<int64_t>(rows * width, 1)) * sizeof(float);
  if (buffer.size() < need) buffer = backend.alloc(need);
  return buffer.as(DType::F32, {rows, width});
}

void scaled_copy(Backend& backend, const Tensor& src, Tensor& dst, float s) {
  backend.fill(dst, 0.0f);
  backend.add_scaled(dst, src, s);
}

}  // namespace tiller
