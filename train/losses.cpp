// The supervised loss: the backend's softmax cross-entropy, with the per-row inputs uploaded.
#include "train/losses.h"

#include <vector>

#include "engine/error.h"

namespace tiller {

double cross_entropy_loss(Backend& backend, Tensor& logits, std::span<const int32_t> targets,
                          std::span<const float> weights, std::span<float> row_loss) {
  const int64_t R = logits.shape[0];
  TILLER_CHECK(int64_t(targets.size()) == R && int64_t(weights.size()) == R, "cross_entropy_loss: ", R, " rows, ",
               targets.size(), " targets, ", weights.size(), " weights");
  if (R == 0) return 0;
  Buffer t = backend.alloc(size_t(R) * 4), w = backend.alloc(size_t(R) * 4), l = backend.alloc(size_t(R) * 4);
  backend.upload(t.data(), targets.data(), size_t(R) * 4);
  backend.upload(w.data(), weights.data(), size_t(R) * 4);
  Tensor tt = t.as(DType::I32, {R}), wt = w.as(DType::F32, {R}), lt = l.as(DType::F32, {R});
  backend.cross_entropy(logits, tt, wt, lt);
  std::vector<float> loss(static_cast<size_t>(R));
  backend.download(loss.data(), l.data(), size_t(R) * 4);
  double total = 0;
  for (int64_t r = 0; r < R; r++) total += double(weights[size_t(r)]) * double(loss[size_t(r)]);
  if (!row_loss.empty()) std::copy(loss.begin(), loss.end(), row_loss.begin());
  return total;
}

}  // namespace tiller
