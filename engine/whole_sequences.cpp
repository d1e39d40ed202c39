// check_whole_sequences: the precondition of the training ops that read keys by batch row.
#include "engine/whole_sequences.h"

#include <vector>

#include "engine/error.h"

namespace tiller {

void check_whole_sequences(const BatchLayout& b, const char* op) {
  const int64_t T = b.n_rows();
  std::vector<int64_t> rows(size_t(b.n_seqs), 0);
  for (int64_t t = 0; t < T; t++) {
    const int64_t pos = b.positions[size_t(t)];
    const int32_t s = b.row_seq[size_t(t)];
    if (s < 0 || s >= b.n_seqs || pos != rows[size_t(s)] || (pos > 0 && b.row_seq[size_t(t - 1)] != s))
      fail(op, ": row ", t, " (sequence ", s, ", position ", pos,
           ") breaks the layout it needs: each sequence whole, its rows consecutive from position 0");
    rows[size_t(s)]++;
  }
  for (int32_t s = 0; s < b.n_seqs; s++) {
    if (rows[size_t(s)] != b.kv_lens[size_t(s)])
      fail(op, ": sequence ", s, " has ", b.kv_lens[size_t(s)], " cached keys but ", rows[size_t(s)],
           " rows in the batch; every key must be a row of the batch");
  }
}

}  // namespace tiller
