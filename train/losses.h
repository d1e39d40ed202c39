// Token losses of training, each returning its value and leaving its gradient with respect to the
// logits in the logits' own buffer (the backward starts from there).
#pragma once

#include <cstdint>
#include <span>

#include "engine/backend.h"

namespace tiller {

// Σ_r weights[r] · CE(logits[r], targets[r]) over the rows of logits [R, V] (on the backend's
// device); logits becomes its gradient. Per-row losses land in `row_loss` when it is not empty.
double cross_entropy_loss(Backend& backend, Tensor& logits, std::span<const int32_t> targets,
                          std::span<const float> weights, std::span<float> row_loss = {});

}  // namespace tiller
