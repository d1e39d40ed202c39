// A ragged batch: rows are tokens, each with its sequence and position. Prefill (many rows of
// one sequence), decode (one row of many sequences), and mixtures of both are the same call.
// A row may also name an adapter: which of the forward's ProjectionDelta sets (steering profiles)
// applies to it, so rows of several profiles share one forward.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/kv_cache.h"

namespace tiller {

struct Batch {
  std::vector<int32_t> tokens;     // [T]
  std::vector<SeqId> seqs;         // [T]
  std::vector<int32_t> positions;  // [T] rows of one sequence continue its cache: length, length+1, ...
  std::vector<uint8_t> logits;     // [T] 1: compute this row's logits
  std::vector<int32_t> adapters;   // [T] the row's adapter (0: none); may stay empty when all are 0

  void add(int32_t token, SeqId seq, int32_t position, bool want_logits, int32_t adapter = 0) {
    if (adapter != 0 && adapters.size() < tokens.size()) adapters.resize(tokens.size(), 0);
    tokens.push_back(token);
    seqs.push_back(seq);
    positions.push_back(position);
    logits.push_back(want_logits ? 1 : 0);
    if (!adapters.empty() || adapter != 0) adapters.push_back(adapter);
  }
  int32_t adapter(int64_t row) const { return adapters.empty() ? 0 : adapters[size_t(row)]; }
  bool any_adapter() const {
    for (int32_t a : adapters) {
      if (a != 0) return true;
    }
    return false;
  }
  // Appends a run of tokens of one sequence starting at `position`; logits for the last only.
  void add_sequence(const std::vector<int32_t>& ids, SeqId seq, int32_t position, bool logits_for_last = true,
                    int32_t adapter = 0) {
    for (size_t i = 0; i < ids.size(); i++)
      add(ids[i], seq, position + int32_t(i), logits_for_last && i + 1 == ids.size(), adapter);
  }
  void clear() {
    tokens.clear();
    seqs.clear();
    positions.clear();
    logits.clear();
    adapters.clear();
  }
  int64_t size() const { return int64_t(tokens.size()); }
  bool empty() const { return tokens.empty(); }
};

}  // namespace tiller
