// The next-token distribution after many prompts, from batched prefills: what a classifier that
// reads its verdict off one token (Llama Guard's "safe"/"unsafe") needs, without generating.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "models/model.h"

namespace tiller::eval {

class NextTokenScorer {
 public:
  // `batch_tokens`: prompt rows per forward; prompts are packed into forwards up to it (a longer
  // prompt is prefilled in chunks of it).
  NextTokenScorer(Model& model, int64_t batch_tokens);

  // For each prompt, P(id | prompt) for each of `ids` (softmax over the whole vocabulary of the
  // logits after the prompt's last token): [prompts.size()][ids.size()].
  std::vector<std::vector<double>> probabilities(const std::vector<std::vector<int32_t>>& prompts,
                                                 std::span<const int32_t> ids);

 private:
  void ensure_cache(int64_t blocks);

  Model& model_;
  int64_t batch_tokens_;
  std::unique_ptr<KvCache> kv_;
};

}  // namespace tiller::eval
