// A non-owning view of contiguous row-major memory on some device.
//
// The engine is not a tensor library: a Tensor is a pointer, a dtype and a shape, just enough for
// the backend interface to check shapes and for kernels to index. Memory is owned elsewhere (a
// Buffer, a mapped safetensors file, a KV cache).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "engine/dtype.h"
#include "engine/error.h"

namespace tiller {

enum class Device : uint8_t { Cpu, Cuda };

struct Tensor {
  static constexpr int kMaxRank = 4;

  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::Cpu;
  int rank = 0;
  std::array<int64_t, kMaxRank> shape{};

  Tensor() = default;
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> dims, Device device = Device::Cpu)
      : data(data), dtype(dtype), device(device), rank(int(dims.size())) {
    TILLER_CHECK(dims.size() <= kMaxRank);
    int i = 0;
    for (int64_t d : dims) shape[i++] = d;
  }

  bool empty() const { return data == nullptr; }
  int64_t dim(int i) const { return shape[i < 0 ? rank + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return dtype_bytes(dtype, numel()); }  // block types: whole blocks
  // Elements per leading index: the row length of a matrix, the [H, d] block of a [T, H, d] tensor.
  int64_t row_size() const { return rank == 0 ? 1 : numel() / shape[0]; }

  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }

  // Rows [begin, begin + count) along the leading dimension.
  Tensor rows(int64_t begin, int64_t count) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + dtype_bytes(dtype, begin * row_size());
    t.shape[0] = count;
    return t;
  }

  // The same memory under another shape with as many elements.
  Tensor reshaped(std::initializer_list<int64_t> dims) const {
    Tensor t(data, dtype, dims, device);
    TILLER_CHECK(t.numel() == numel(), "reshape from ", shape_string(), " to ", t.shape_string());
    return t;
  }

  std::string shape_string() const {
    std::string s = "[";
    for (int i = 0; i < rank; i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace tiller
