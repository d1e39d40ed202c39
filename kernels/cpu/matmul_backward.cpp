// The two GEMMs of a projection's backward on the CPU, on the forward's packed GEMM (matmul.h)
// reading its operands in place as their transposes (matmul_transposed), so nothing is copied:
//   dx = dy · w     w [N, K] is already the [depth, out] layout a transposed read wants;
//   dw = dyᵀ · x    dy [T, N] and x [T, K] likewise, as [depth, rows] and [depth, out].
// Accumulation goes into the GEMM's own tiles: no temporary, no second pass over dx or dw.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/backward.h"
#include "kernels/cpu/matmul.h"

namespace tiller::cpu {

void linear_backward_input(const float* dy, int64_t T, int64_t N, const void* w, DType w_type, int64_t K, float* dx,
                           bool accumulate, ThreadPool& pool) {
  if (T == 0 || K == 0) return;
  matmul_transposed(dy, T, N, w, w_type, K, dx, {.accumulate = accumulate}, pool);
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
  matmul_transposed(dy, N, T, x, DType::F32, K, dw, {.x_transposed = true, .accumulate = accumulate}, pool);
}

}  // namespace tiller::cpu
