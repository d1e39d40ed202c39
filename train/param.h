// A trained tensor: its value, gradient and AdamW moments, all F32 on the backend's device, and
// device scratch that grows to the largest batch seen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace tiller {

struct Param {
  std::string name;            // the name it is saved under ("….q_proj.lora_A.weight")
  std::vector<int64_t> shape;  // e.g. [r, in]
  bool decay = true;           // AdamW weight decay applies (HF's Trainer exempts biases and norms)
  Buffer value, grad, m, v;    // F32, shape

  int64_t numel() const;
  Tensor value_t() const { return view(value); }
  Tensor grad_t() const { return view(grad); }
  Tensor m_t() const { return view(m); }
  Tensor v_t() const { return view(v); }
  Tensor view(const Buffer& b) const;
};

// A parameter holding `init` (numel values), with zero gradient and moments.
Param make_param(Backend& backend, std::string name, std::vector<int64_t> shape, const std::vector<float>& init,
                 bool decay = true);

// Host copy of a device tensor's F32 contents.
std::vector<float> download_f32(Backend& backend, const Tensor& t);

// A [rows, width] F32 view of `buffer`, reallocating it when too small.
Tensor scratch_rows(Backend& backend, Buffer& buffer, int64_t rows, int64_t width);

// dst = s · src (exactly: 0 + s·src).   F32, same size
void scaled_copy(Backend& backend, const Tensor& src, Tensor& dst, float s);

}  // namespace tiller
