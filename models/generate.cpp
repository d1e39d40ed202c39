// The single-sequence generation loop.
#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "engine/error.h"

namespace tiller {

namespace {

void check_prompt(const ModelConfig& c, int64_t n_prompt) {
  if (n_prompt == 0) fail("generate: the prompt is empty (pass at least one token, e.g. BOS)");
  if (n_prompt >= c.max_position_embeddings) {
    fail("generate: the prompt has ", n_prompt, " tokens but the model's context is ", c.max_position_embeddings,
         " (max_position_embeddings); shorten the prompt");
  }
}

}  // namespace

GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<bool(int32_t)>& on_token) {
  const ModelConfig& c = model.config();
  const int64_t n_prompt = int64_t(prompt.size());
  check_prompt(c, n_prompt);
  const int64_t max_new = std::min(options.max_new_tokens, c.max_position_embeddings - n_prompt);
  KvCache kv(model.backend(), model.kv_cache_options(n_prompt + max_new, 1, options.block_size));
  return generate(model, kv, kv.create(), prompt, options, on_token);
}

GenerateResult generate(Model& model, KvCache& kv, SeqId seq, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const std::function<bool(int32_t)>& on_token) {
  using clock = std::chrono::steady_clock;
  const ModelConfig& c = model.config();
  const int64_t n_prompt = int64_t(prompt.size());
  check_prompt(c, n_prompt);
  const int64_t cached = kv.length(seq);
  if (cached >= n_prompt) fail("generate: the cache already holds ", cached, " of the prompt's ", n_prompt, " tokens");
  const int64_t max_new = std::min(options.max_new_tokens, c.max_position_embeddings - n_prompt);
  TokenSampler sampler(options.sampling, options.seed);
  std::vector<int32_t> history(prompt.begin(), prompt.end());  // what the repetition penalty sees
  GenerateResult result;
  result.finish_reason = "length";

  // Prefill in chunks; only the last chunk's last row needs logits.
  const auto t0 = clock::now();
  Tensor logits;
  Batch batch;
  for (int64_t start = cached; start < n_prompt; start += options.prefill_chunk) {
    const int64_t end = std::min(n_prompt, start + options.prefill_chunk);
    batch.clear();
    for (int64_t i = start; i < end; i++) batch.add(prompt[size_t(i)], seq, int32_t(i), i == n_prompt - 1);
    logits = model.forward(batch, kv);
  }
  const auto t1 = clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  for (int64_t step = 0; step < max_new; step++) {
    int32_t id = 0;
    const SampleRequest request = sampler.next(history, prompt.size());
    model.backend().sample(logits, std::span(&request, 1), std::span(&id, 1));
    result.tokens.push_back(id);
    history.push_back(id);
    const bool keep_going = !on_token || on_token(id);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end()) {
      result.finish_reason = "stop";
      break;
    }
    if (!keep_going) {
      result.finish_reason = "stop";
      break;
    }
    if (step + 1 == max_new) break;
    batch.clear();
    batch.add(id, seq, int32_t(n_prompt + step), true);
    logits = model.forward(batch, kv);
  }
  result.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return result;
}

}  // namespace tiller
