// The two GEMMs of a projection's backward on the CPU, run on the forward's packed GEMM/GEMV
// (matmul.h) after a blocked transpose of one operand:
//   dx = dy · w     is matmul(dy, wᵀ): w [N, K] is transposed to [K, N] in its own dtype;
//   dw = dyᵀ · x    is matmul(dyᵀ, xᵀ): dy and x are transposed to [N, T] and [K, T].
// A transpose reads and writes its operand once, against the GEMM's T·N·K multiply-adds.
#include <cstring>
#include <vector>

#include "kernels/cpu/backward.h"
#include "kernels/cpu/matmul.h"

namespace tiller::cpu {
namespace {

constexpr int64_t kTile = 32;

// dst [cols, rows] = src [rows, cols]ᵀ for elements of E bytes, in kTile x kTile tiles.
template <typename E>
void transpose(const E* src, int64_t rows, int64_t cols, E* dst, ThreadPool& pool) {
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / (kTile * std::max<int64_t>(cols, 1)));
  pool.parallel_for(row_tiles, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t r0 = b0 * kTile; r0 < std::min(rows, b1 * kTile); r0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile);
      for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
        const int64_t c1 = std::min(cols, c0 + kTile);
        for (int64_t r = r0; r < r1; r++) {
          for (int64_t c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
        }
      }
    }
  });
}

void transpose_any(const void* src, DType type, int64_t rows, int64_t cols, void* dst, ThreadPool& pool) {
  if (dtype_size(type) == 4) {
    transpose(static_cast<const uint32_t*>(src), rows, cols, static_cast<uint32_t*>(dst), pool);
  } else {
    transpose(static_cast<const uint16_t*>(src), rows, cols, static_cast<uint16_t*>(dst), pool);
  }
}

// Per-thread buffers reused across calls (the trainer calls these a few hundred times a step).
std::vector<char>& scratch(int slot, size_t bytes) {
  thread_local std::vector<char> buffers[3];
  std::vector<char>& b = buffers[slot];
  if (b.size() < bytes) b.resize(bytes);
  return b;
}

}  // namespace

void linear_backward_input(const float* dy, int64_t T, int64_t N, const void* w, DType w_type, int64_t K, float* dx,
                           bool accumulate, ThreadPool& pool) {
  if (T == 0 || K == 0) return;
  void* wt = scratch(0, size_t(N * K) * dtype_size(w_type)).data();
  transpose_any(w, w_type, N, K, wt, pool);  // [K, N]
  if (!accumulate) {
    matmul(dy, T, N, wt, w_type, K, nullptr, dx, pool);
    return;
  }
  auto* tmp = reinterpret_cast<float*>(scratch(1, size_t(T * K) * sizeof(float)).data());
  matmul(dy, T, N, wt, w_type, K, nullptr, tmp, pool);
  add_scaled(dx, tmp, 1.0f, T * K, pool);
}

void linear_backward_weight(const float* dy, const float* x, int64_t T, int64_t N, int64_t K, float* dw, float* dbias,
                            bool accumulate, ThreadPool& pool) {
  if (dbias) {
    pool.parallel_for(N, std::max<int64_t>(64, (int64_t(1) << 15) / std::max<int64_t>(T, 1)), [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++) {
        double s = 0;
        for (int64_t t = 0; t < T; t++) s += dy[t * N + n];
        dbias[n] = accumulate ? dbias[n] + float(s) : float(s);
      }
    });
  }
  if (T == 0) {
    if (!accumulate) std::memset(dw, 0, size_t(N * K) * sizeof(float));
    return;
  }
  auto* dyt = reinterpret_cast<float*>(scratch(0, size_t(N * T) * sizeof(float)).data());
  auto* xt = reinterpret_cast<float*>(scratch(1, size_t(K * T) * sizeof(float)).data());
  transpose(dy, T, N, dyt, pool);  // [N, T]
  transpose(x, T, K, xt, pool);    // [K, T]
  if (!accumulate) {
    matmul(dyt, N, T, xt, DType::F32, K, nullptr, dw, pool);
    return;
  }
  auto* tmp = reinterpret_cast<float*>(scratch(2, size_t(N * K) * sizeof(float)).data());
  matmul(dyt, N, T, xt, DType::F32, K, nullptr, tmp, pool);
  add_scaled(dw, tmp, 1.0f, N * K, pool);
}

}  // namespace tiller::cpu
