// The two GEMMs of a projection's backward on the CPU, on the forward's packed GEMM (matmul.h)
// reading one operand in place as its transpose (matmul_transposed):
//   dx = dy · w     w [N, K] is already the [depth, out] layout a transposed read wants;
//   dw = dyᵀ · x    x [T, K] likewise; only dy is transposed, to [N, T], as the packed rows.
// Accumulation goes into the GEMM's own tiles: no temporary, no second pass over dx or dw.
#include <cstring>
#include <vector>

#include "kernels/cpu/backward.h"
#include "kernels/cpu/matmul.h"

namespace tiller::cpu {
namespace {

constexpr int64_t kTile = 32;

// dst [cols, rows] = src [rows, cols]ᵀ, in kTile x kTile tiles.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst, ThreadPool& pool) {
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

// A per-thread buffer reused across calls (the trainer calls these a few hundred times a step).
std::vector<char>& scratch(size_t bytes) {
  thread_local std::vector<char> b;
  if (b.size() < bytes) b.resize(bytes);
  return b;
}

}  // namespace

void linear_backward_input(const float* dy, int64_t T, int64_t N, const void* w, DType w_type, int64_t K, float* dx,
                           bool accumulate, ThreadPool& pool) {
  if (T == 0 || K == 0) return;
  matmul_transposed(dy, T, N, w, w_type, K, dx, accumulate, pool);
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
  auto* dyt = reinterpret_cast<float*>(scratch(size_t(N * T) * sizeof(float)).data());
  transpose(dy, T, N, dyt, pool);  // [N, T]
  matmul_transposed(dyt, N, T, x, DType::F32, K, dw, accumulate, pool);
}

}  // namespace tiller::cpu
