// The layout the training ops need: every sequence of the batch whole and in order, so each key
// of attention is a row of the batch (the row of key position p of the sequence starting at row s
// is s + p).
#pragma once

#include "engine/backend.h"

namespace tiller {

// Throws Error naming `op` and the first row that breaks the rule: each sequence's rows are
// consecutive, at positions 0, 1, 2, ..., and its cached length is its number of rows.
void check_whole_sequences(const BatchLayout& b, const char* op);

}  // namespace tiller
