// Batched prompt-only forwards through the capture hooks, pooled per prompt.
#include "eval/probe_capture.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "engine/error.h"
#include "steering/activation_capture.h"

namespace tiller::eval {

namespace {

// Both taps in one forward: ResidPost for the layers, FinalNorm for the last one when asked.
struct Taps final : ActivationHook {
  std::vector<ActivationCapture*> taps;
  void on_activation(HookPoint p, int layer, Tensor& t, const ForwardContext& ctx) override {
    for (ActivationCapture* tap : taps) tap->on_activation(p, layer, t, ctx);
  }
};

int64_t blocks_for(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace

const char* pooling_name(Pooling p) { return p == Pooling::Mean ? "mean" : "last"; }

HookPoint tap_point(const StateTap& tap, int layer, int64_t n_layers) {
  return tap.final_norm && layer == n_layers - 1 ? HookPoint::FinalNorm : HookPoint::ResidPost;
}

void capture_pooled_states(Model& model, ProjectionDelta* delta, std::span<const PromptRun> runs, const StateTap& tap,
                           const StateSink& sink, const std::function<void(int64_t)>& progress) {
  const ModelConfig& c = model.config();
  const int64_t L = c.n_layers, D = c.hidden_size;
  TILLER_CHECK(!tap.layers.empty() && tap.batch_tokens > 0);
  for (size_t i = 0; i < tap.layers.size(); i++)
    TILLER_CHECK(tap.layers[i] >= 0 && tap.layers[i] < L && (i == 0 || tap.layers[i] > tap.layers[i - 1]),
                 "layers must ascend within [0, ", L, ")");
  const bool final_norm = tap_point(tap, tap.layers.back(), L) == HookPoint::FinalNorm;
  std::vector<int> resid_layers = tap.layers;
  if (final_norm) resid_layers.pop_back();
  int64_t longest = 0;
  for (const PromptRun& r : runs) {
    TILLER_CHECK(!r.tokens.empty() && int64_t(r.tokens.size()) <= c.max_position_embeddings);
    TILLER_CHECK(r.adapter == 0 || delta != nullptr, "a run names adapter ", r.adapter, " but no profiles were given");
    longest = std::max<int64_t>(longest, int64_t(r.tokens.size()));
  }
  if (runs.empty()) return;

  // Room for a full batch, with up to twice its blocks for partly filled ones.
  const int64_t rows_cap = std::max(tap.batch_tokens, longest);
  KvCacheOptions kv_opt = model.kv_cache_options(rows_cap, 2);
  auto kv = std::make_unique<KvCache>(model.backend(), kv_opt);

  std::unordered_map<SeqId, int64_t> run_of;     // this forward's sequences -> run
  std::unordered_map<SeqId, int32_t> last_of;    // -> position of its last token
  const bool last = tap.pooling == Pooling::Last;
  const ActivationCapture::RowFilter keep_last = [&](SeqId seq, int32_t pos) { return last_of.at(seq) == pos; };
  ActivationCapture resid(HookPoint::ResidPost, resid_layers, last ? keep_last : ActivationCapture::RowFilter{});
  ActivationCapture head(HookPoint::FinalNorm, {}, last ? keep_last : ActivationCapture::RowFilter{});
  Taps hook;
  if (!resid_layers.empty()) hook.taps.push_back(&resid);
  if (final_norm) hook.taps.push_back(&head);
  ForwardOptions opt;
  opt.hook = &hook;
  opt.delta = delta;
  opt.end_layer = final_norm ? -1 : tap.layers.back() + 1;  // nothing above the last layer asked for

  std::vector<double> sums;    // [runs in this forward, D]
  std::vector<int64_t> count;  // [runs in this forward]
  std::vector<float> state(static_cast<size_t>(D));
  int64_t next = 0;
  while (next < int64_t(runs.size())) {
    Batch batch;
    int64_t first = next, blocks = 0;
    run_of.clear();
    last_of.clear();
    while (next < int64_t(runs.size())) {
      // The next group: a run and those that go with it.
      int64_t end = next + 1, rows = int64_t(runs[size_t(next)].tokens.size());
      int64_t need = blocks_for(rows, kv_opt.block_size);
      while (end < int64_t(runs.size()) && runs[size_t(end)].with_previous) {
        rows += int64_t(runs[size_t(end)].tokens.size());
        need += blocks_for(int64_t(runs[size_t(end)].tokens.size()), kv_opt.block_size);
        end++;
      }
      if (next > first && (batch.size() + rows > rows_cap || blocks + need > kv_opt.n_blocks)) break;
      if (next == first && need > kv_opt.n_blocks) {  // one group larger than the cache: make room
        kv_opt.n_blocks = need;
        kv = std::make_unique<KvCache>(model.backend(), kv_opt);
      }
      for (; next < end; next++) {
        const PromptRun& r = runs[size_t(next)];
        const int64_t T = int64_t(r.tokens.size());
        const SeqId seq = kv->create();
        run_of[seq] = next;
        last_of[seq] = int32_t(T - 1);
        for (int64_t t = 0; t < T; t++)  // the final norm only sees logit rows: all of them for a mean
          batch.add(r.tokens[size_t(t)], seq, int32_t(t), final_norm && (!last || t == T - 1), r.adapter);
      }
      blocks += need;
    }
    model.forward(batch, *kv, opt);

    const int64_t n = next - first;
    for (size_t slot = 0; slot < tap.layers.size(); slot++) {
      const bool from_head = final_norm && slot + 1 == tap.layers.size();
      const CapturedRows& rows = from_head ? head.at(-1) : resid.at(tap.layers[slot]);
      TILLER_CHECK(rows.width == D);
      sums.assign(size_t(n * D), 0.0);
      count.assign(size_t(n), 0);
      for (int64_t i = 0; i < rows.n_rows(); i++) {
        const int64_t local = run_of.at(rows.seqs[size_t(i)]) - first;
        const float* x = rows.row(i);
        double* s = sums.data() + local * D;
        for (int64_t j = 0; j < D; j++) s[j] += x[j];
        count[size_t(local)]++;
      }
      for (int64_t local = 0; local < n; local++) {
        const int64_t expect = last ? 1 : int64_t(runs[size_t(first + local)].tokens.size());
        TILLER_CHECK(count[size_t(local)] == expect, "captured ", count[size_t(local)], " rows of ", expect);
        const double* s = sums.data() + local * D;
        for (int64_t j = 0; j < D; j++) state[size_t(j)] = float(s[j] / double(expect));
        sink(first + local, slot, state.data());
      }
    }
    resid.clear();
    head.clear();
    for (const auto& [seq, run] : run_of) kv->release(seq);
    if (progress) progress(next);
  }
}

}  // namespace tiller::eval
