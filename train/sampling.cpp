// Batched sampling: prefill every prompt (in row-bounded chunks), then decode all together.
#include "train/sampling.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/sampler.h"

namespace tiller {

std::vector<std::vector<int32_t>> sample_continuations(Model& model, ProjectionDelta* delta,
                                                       const std::vector<std::vector<int32_t>>& prompts,
                                                       const SampleOptions& o, std::span<const uint64_t> seeds) {
  const size_t n = prompts.size();
  TILLER_CHECK(seeds.size() == n, "sample_continuations: ", n, " prompts, ", seeds.size(), " seeds");
  const ModelConfig& c = model.config();
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) fail("sampling: an empty prompt");
    longest = std::max(longest, int64_t(p.size()));
  }
  const int64_t max_new = std::min(o.max_new_tokens, c.max_position_embeddings - longest);
  if (max_new < 1) fail("sampling: a prompt of ", longest, " tokens leaves no room in the model's context of ",
                        c.max_position_embeddings);
  KvCache kv(model.backend(), model.kv_cache_options(longest + max_new, int64_t(n)));
  ForwardOptions fo;
  fo.delta = delta;
  std::vector<SeqId> seq(n);
  std::vector<TokenSampler> samplers;
  std::vector<std::vector<int32_t>> history(n), out(n);
  for (size_t i = 0; i < n; i++) {
    seq[i] = kv.create();
    samplers.emplace_back(o.params, seeds[i]);
    history[i] = prompts[i];
  }
  const int64_t V = c.vocab_size;
  std::vector<float> last_logits(n * size_t(V));
  // Prefill: whole prompts per forward while they fit in prefill_rows (a longer one alone, chunked).
  Batch batch;
  std::vector<size_t> want;  // prompt index of each logits row of the current batch
  auto flush = [&] {
    if (batch.empty()) return;
    Tensor logits = model.forward(batch, kv, fo);
    for (size_t r = 0; r < want.size(); r++)
      model.backend().download(last_logits.data() + want[r] * size_t(V), logits.rows(int64_t(r), 1).data,
                               size_t(V) * sizeof(float));
    batch.clear();
    want.clear();
  };
  for (size_t i = 0; i < n; i++) {
    const auto& p = prompts[i];
    for (size_t t = 0; t < p.size(); t++) {
      if (batch.size() >= o.prefill_rows) flush();
      const bool last = t + 1 == p.size();
      batch.add(p[t], seq[i], int32_t(t), last);
      if (last) want.push_back(i);
    }
  }
  flush();
  // Decode: sample every unfinished sequence from its last logits, then one row each.
  std::vector<size_t> live(n);
  for (size_t i = 0; i < n; i++) live[i] = i;
  for (int64_t step = 0; step < max_new && !live.empty(); step++) {
    std::vector<size_t> next;
    for (size_t i : live) {
      std::span<float> row(last_logits.data() + i * size_t(V), size_t(V));
      const int32_t id = sample_logits(row, samplers[i].next(history[i], prompts[i].size()));
      out[i].push_back(id);
      history[i].push_back(id);
      const bool stop = std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end();
      if (!stop && step + 1 < max_new) next.push_back(i);
    }
    live = next;
    for (size_t i : live) {
      batch.add(out[i].back(), seq[i], int32_t(history[i].size() - 1), true);
      want.push_back(i);
    }
    flush();
  }
  return out;
}

}  // namespace tiller
