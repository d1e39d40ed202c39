// The continuous-batching loop: admission against KV capacity, step composition, sampling.
#include "serving/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace tiller::serving {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "error";
}

struct Scheduler::Choice {
  SeqId seq = -1;               // -1 until the prompt is forked for this choice
  TokenSampler sampler;
  std::vector<int32_t> history;  // prompt + generated: what the repetition penalty sees
  int32_t next_input = -1;      // the token fed at the next step
  int64_t generated = 0;
  bool done = false;
  Clock::time_point last_token;
};

// A request from admission to its last choice's finish.
struct Scheduler::Live {
  uint64_t id = 0;
  GenerationRequest req;
  int64_t max_new = 0;      // max_tokens, limited by ctx
  // Prompt tokens the first sequence prefills: all P when one choice samples from the last
  // prompt row, else P - 1, after which each choice feeds the last prompt token itself.
  int64_t prefill_end = 0;
  int64_t prefilled = 0;
  int64_t planned = 0;      // prefill rows in the step being run
  bool decoding = false;    // choices have sequences and sample
  std::vector<Choice> choices;
  int active = 0;
  std::vector<TokenOutput> prompt_lp;
  Clock::time_point submitted;
  bool first_token = false;

  int64_t prompt_len() const { return int64_t(req.prompt.size()); }
  // The most tokens any of its sequences will hold (the last generated token is never fed).
  int64_t target_len() const { return std::max(prefill_end, prompt_len() + max_new - 1); }
};

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// log-softmax of one row of logits, in place.
void log_softmax(std::vector<float>& row) {
  const float mx = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float v : row) sum += std::exp(double(v) - mx);
  const float lse = mx + float(std::log(sum));
  for (float& v : row) v -= lse;
}

TokenOutput token_output(const std::vector<float>& logprobs, int32_t id, int top_k) {
  TokenOutput out{id, logprobs[size_t(id)], {}};
  const int k = std::min<int>(top_k, int(logprobs.size()));
  if (k <= 0) return out;
  std::vector<int32_t> idx(logprobs.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return logprobs[size_t(a)] > logprobs[size_t(b)] || (logprobs[size_t(a)] == logprobs[size_t(b)] && a < b);
  });
  for (int i = 0; i < k; i++) out.top.push_back({idx[size_t(i)], logprobs[size_t(idx[size_t(i)])]});
  return out;
}

}  // namespace

Scheduler::Scheduler(Model& model, const SchedulerOptions& options, ProjectionDelta* deltas, int32_t n_adapters)
    : model_(model), options_(options), deltas_(deltas), n_adapters_(deltas ? n_adapters : 0) {
  const ModelConfig& c = model.config();
  SchedulerOptions& o = options_;
  if (o.ctx <= 0 || o.ctx > c.max_position_embeddings) o.ctx = c.max_position_embeddings;
  if (o.max_batch < 1) fail("scheduler: max_batch must be at least 1, found ", o.max_batch);
  if (o.block_size < 1) fail("scheduler: block_size must be at least 1, found ", o.block_size);
  o.max_batch_tokens = std::max(o.max_batch_tokens, o.max_batch);  // every decode row fits, and one prefill row
  if (o.max_queue < 0) o.max_queue = 0;
  if (o.kv_blocks <= 0) o.kv_blocks = o.max_batch * ceil_div(o.ctx, o.block_size);
  if (o.kv_blocks < ceil_div(o.ctx, o.block_size)) {
    fail("scheduler: the KV cache (", o.kv_blocks, " blocks of ", o.block_size, " tokens) cannot hold one sequence of ",
         o.ctx, " tokens; give it more memory or a smaller context");
  }
  KvCacheOptions kvo = model.kv_cache_options(o.ctx, 1, o.block_size);
  kvo.n_blocks = o.kv_blocks;
  kv_ = std::make_unique<KvCache>(model.backend(), kvo);
  if (o.prefix_cache) prefix_ = std::make_unique<PrefixCache>(*kv_, o.prefix_cache_entries);
  publish_stats();
}

Scheduler::~Scheduler() { shutdown(std::chrono::milliseconds(0)); }

double Scheduler::kv_bytes() const { return double(kv_->options().bytes_per_block()) * double(kv_->n_blocks()); }

uint64_t Scheduler::submit(GenerationRequest request) {
  const ModelConfig& c = model_.config();
  const int64_t P = int64_t(request.prompt.size());
  const int64_t ctx = options_.ctx;
  if (P == 0) fail("the prompt is empty: give at least one token");
  for (int32_t id : request.prompt) {
    if (id < 0 || id >= c.vocab_size) fail("prompt token id ", id, " is outside the vocabulary [0, ", c.vocab_size, ")");
  }
  if (request.n < 1 || request.n > options_.max_batch)
    fail("n must be between 1 and ", options_.max_batch, " (the server's --max-batch), found ", request.n);
  if (request.max_tokens < 0) fail("max_tokens must be >= 0, found ", request.max_tokens);
  if (request.adapter < 0 || request.adapter > n_adapters_)
    fail("adapter ", request.adapter, " is not loaded (", n_adapters_, " profiles)");
  if (request.logprobs > c.vocab_size) fail("logprobs must be at most the vocabulary size ", c.vocab_size);
  if (request.max_tokens > 0 ? P >= ctx : P > ctx) {
    fail("the prompt has ", P, " tokens but the context is ", ctx, " tokens",
         request.max_tokens > 0 ? ", leaving no room to generate" : "", "; shorten the prompt");
  }
  auto live = std::make_unique<Live>();
  Live& r = *live;
  r.max_new = std::min(request.max_tokens, ctx - P);
  r.prefill_end = request.n == 1 && r.max_new > 0 ? P : P - 1;
  r.req = std::move(request);
  const int64_t worst = r.req.n * ceil_div(r.target_len(), options_.block_size);
  if (worst > kv_->n_blocks()) {
    fail("the request needs up to ", worst, " KV blocks (", r.req.n, " x ", r.target_len(), " tokens) but the cache has ",
         kv_->n_blocks(), "; lower max_tokens or n");
  }
  r.active = r.req.n;
  r.choices.reserve(size_t(r.req.n));
  for (int i = 0; i < r.req.n; i++) {
    Choice ch{-1, TokenSampler(r.req.sampling, r.req.seed + uint64_t(i)), r.req.prompt, -1, 0, false, {}};
    r.choices.push_back(std::move(ch));
  }
  if (r.req.prompt_logprobs) r.prompt_lp.resize(size_t(P));
  if (!r.prompt_lp.empty()) r.prompt_lp[0].id = r.req.prompt[0];
  r.submitted = Clock::now();

  std::lock_guard lock(mutex_);
  if (!accepting_) throw SchedulerStopped("the server is shutting down and takes no new requests");
  const int64_t queued = int64_t(incoming_.size()) + n_waiting_.load();
  if (queued >= options_.max_queue) {
    throw QueueFull("the request queue is full (" + std::to_string(queued) + " requests waiting, limit " +
                    std::to_string(options_.max_queue) + "); retry later");
  }
  r.id = next_id_++;
  const uint64_t id = r.id;
  incoming_.push_back(std::move(live));
  wake_.notify_all();
  return id;
}

void Scheduler::cancel(uint64_t id) {
  std::lock_guard lock(mutex_);
  cancels_.insert(id);
  wake_.notify_all();
}

void Scheduler::finish_choice(Live& r, int c, FinishReason reason, const std::string& error) {
  Choice& ch = r.choices[size_t(c)];
  if (ch.done) return;
  ch.done = true;
  if (ch.seq >= 0) kv_->release(ch.seq);  // blocks shared with other choices stay theirs
  ch.seq = -1;
  r.active--;
  if (r.req.on_finish) r.req.on_finish(c, reason, error);
}

void Scheduler::abort_request(Live& r, FinishReason reason, const std::string& error) {
  for (int c = 0; c < int(r.choices.size()); c++) finish_choice(r, c, reason, error);
}

void Scheduler::take_submissions() {
  std::unordered_set<uint64_t> cancels;
  bool all = false;
  {
    std::lock_guard lock(mutex_);
    while (!incoming_.empty()) {
      waiting_.push_back(std::move(incoming_.front()));
      incoming_.pop_front();
    }
    n_waiting_ = int64_t(waiting_.size());  // with the lock held, so wait_idle never sees a gap
    cancels.swap(cancels_);
    all = cancel_all_;
  }
  if (cancels.empty() && !all) return;
  auto cancelled = [&](const std::unique_ptr<Live>& r) {
    if (!all && !cancels.count(r->id)) return false;
    abort_request(*r, FinishReason::Cancelled, {});
    cancelled_++;
    return true;
  };
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), cancelled), waiting_.end());
  running_.erase(std::remove_if(running_.begin(), running_.end(), cancelled), running_.end());
}

int64_t Scheduler::outstanding_blocks(const Live& r) const {
  const int64_t target = r.target_len(), bs = options_.block_size;
  if (!r.decoding) {
    const SeqId parent = r.choices[0].seq;
    int64_t need = kv_->blocks_needed(parent, target - kv_->length(parent));
    // Each later fork shares the prompt's whole blocks and copies the partly filled one.
    if (r.max_new > 0) need += (r.req.n - 1) * (ceil_div(target, bs) - r.prefill_end / bs);
    return need;
  }
  int64_t need = 0;
  for (const Choice& ch : r.choices) {
    if (!ch.done) need += kv_->blocks_needed(ch.seq, target - kv_->length(ch.seq));
  }
  return need;
}

void Scheduler::admit() {
  int64_t seqs = 0;
  for (const auto& r : running_) seqs += r->active;
  while (!waiting_.empty()) {
    Live& r = *waiting_.front();
    if (seqs + r.req.n > options_.max_batch) break;
    int64_t committed = 0;  // blocks running requests may still take: kept free for them
    for (const auto& x : running_) committed += outstanding_blocks(*x);
    PrefixCache::Hit hit;
    if (prefix_ && !r.req.prompt_logprobs) hit = prefix_->acquire(r.req.prompt, r.prompt_len() - 1, r.req.adapter);
    r.choices[0].seq = hit.seq >= 0 ? hit.seq : kv_->create();
    const int64_t need = outstanding_blocks(r);
    // Drop cached prefixes only when that makes the request fit; otherwise keep them and wait.
    if (kv_->free_blocks() - committed < need && prefix_ &&
        kv_->free_blocks() + prefix_->reclaimable_blocks() - committed >= need)
      prefix_->reclaim(committed + need);
    if (kv_->free_blocks() - committed < need) {  // wait for running sequences to finish
      kv_->release(r.choices[0].seq);
      r.choices[0].seq = -1;
      break;
    }
    r.prefilled = hit.length;
    reused_ += uint64_t(hit.length);
    prompt_tokens_ += uint64_t(r.prompt_len());
    queue_time_.observe(std::chrono::duration<double>(Clock::now() - r.submitted).count());
    seqs += r.req.n;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    if (r.prefilled == r.prefill_end) prefill_done(r);
  }
}

// The prompt is in the first sequence's cache: report its logprobs, remember it for reuse, and
// give every choice its sequence.
void Scheduler::prefill_done(Live& r) {
  const SeqId parent = r.choices[0].seq;
  if (r.req.prompt_logprobs && r.req.on_prompt) r.req.on_prompt(r.prompt_lp);
  if (prefix_) prefix_->insert(parent, std::span(r.req.prompt).first(size_t(r.prefill_end)), r.req.adapter);
  if (r.max_new == 0) {
    abort_request(r, FinishReason::Length, {});
    return;
  }
  r.decoding = true;
  if (r.prefill_end < r.prompt_len()) {  // each choice feeds the last prompt token itself
    for (size_t c = 0; c < r.choices.size(); c++) {
      if (c > 0) r.choices[c].seq = kv_->fork(parent);
      r.choices[c].next_input = r.req.prompt.back();
    }
  }
}

void Scheduler::run_batch() {
  struct LogitRow {
    Live* r;
    int choice;            // >= 0: sample this choice's next token here
    int64_t prompt_index;  // >= 0 with prompt logprobs: the row of prompt token i, scoring token i + 1
  };
  Batch batch;
  std::vector<LogitRow> rows;
  int64_t budget = options_.max_batch_tokens;
  for (auto& r : running_) {
    if (!r->decoding) continue;
    for (int c = 0; c < int(r->choices.size()); c++) {
      const Choice& ch = r->choices[size_t(c)];
      if (ch.done) continue;
      batch.add(ch.next_input, ch.seq, int32_t(kv_->length(ch.seq)), true, r->req.adapter);
      rows.push_back({r.get(), c, -1});
      budget--;
    }
  }
  const int64_t decode_rows = batch.size();
  for (auto& r : running_) {  // prefill chunks, oldest request first
    if (r->decoding || budget <= 0) continue;
    const int64_t take = std::min(r->prefill_end - r->prefilled, budget);
    const int64_t P = r->prompt_len();
    for (int64_t i = r->prefilled; i < r->prefilled + take; i++) {
      const bool sample_row = i == P - 1;  // only when prefill_end == P
      const bool lp_row = r->req.prompt_logprobs && i + 1 < P;
      batch.add(r->req.prompt[size_t(i)], r->choices[0].seq, int32_t(i), sample_row || lp_row, r->req.adapter);
      if (sample_row || lp_row) rows.push_back({r.get(), sample_row ? 0 : -1, lp_row ? i : -1});
    }
    r->planned = take;
    budget -= take;
  }
  if (batch.empty()) return;

  Tensor logits;
  try {
    ForwardOptions fo;
    if (batch.any_adapter()) fo.delta = deltas_;  // otherwise plain steps stay graph-replayable
    logits = model_.forward(batch, *kv_, fo);
  } catch (const std::exception& e) {
    // Not expected (admission keeps blocks free); fail the requests in this batch, keep serving.
    std::fprintf(stderr, "tiller: forward failed: %s\n", e.what());
    for (auto& r : running_) {
      if (r->decoding || r->planned > 0) abort_request(*r, FinishReason::Error, e.what());
    }
    return;
  }
  steps_++;
  if (decode_rows > 0 && batch.size() > decode_rows) mixed_steps_++;
  batch_rows_.observe(double(batch.size()));

  // Logprobs come from the raw logits, before sampling modifies them in place.
  const int64_t V = model_.config().vocab_size;
  std::vector<std::vector<float>> lp_rows(rows.size());
  for (size_t j = 0; j < rows.size(); j++) {
    const LogitRow& row = rows[j];
    if (!(row.prompt_index >= 0 || (row.choice >= 0 && row.r->req.logprobs >= 0))) continue;
    lp_rows[j].resize(size_t(V));
    model_.backend().download(lp_rows[j].data(), logits.ptr<float>() + int64_t(j) * V, size_t(V) * sizeof(float));
    log_softmax(lp_rows[j]);
    if (row.prompt_index >= 0) {
      const int64_t i = row.prompt_index;
      row.r->prompt_lp[size_t(i + 1)] =
          token_output(lp_rows[j], row.r->req.prompt[size_t(i + 1)], std::max(row.r->req.logprobs, 0));
    }
  }
  std::vector<SampleRequest> requests(rows.size());
  for (size_t j = 0; j < rows.size(); j++) {
    if (rows[j].choice < 0) continue;  // scoring-only rows take the default greedy request
    Choice& ch = rows[j].r->choices[size_t(rows[j].choice)];
    requests[j] = ch.sampler.next(ch.history, rows[j].r->req.prompt.size());
  }
  std::vector<int32_t> ids(rows.size());
  model_.backend().sample(logits, requests, ids);

  for (auto& r : running_) {
    if (r->planned == 0) continue;
    r->prefilled += r->planned;
    r->planned = 0;
    if (r->prefilled == r->prefill_end) prefill_done(*r);
  }
  const auto now = Clock::now();
  for (size_t j = 0; j < rows.size(); j++) {
    if (rows[j].choice < 0) continue;
    Live& r = *rows[j].r;
    const int c = rows[j].choice;
    Choice& ch = r.choices[size_t(c)];
    if (ch.done) continue;
    const int32_t id = ids[j];
    const TokenOutput out = r.req.logprobs >= 0 ? token_output(lp_rows[j], id, r.req.logprobs) : TokenOutput{id, 0, {}};
    ch.history.push_back(id);
    ch.generated++;
    generated_tokens_++;
    if (!r.first_token) ttft_.observe(std::chrono::duration<double>(now - r.submitted).count());
    else if (ch.generated > 1) itl_.observe(std::chrono::duration<double>(now - ch.last_token).count());
    r.first_token = true;
    ch.last_token = now;
    const bool keep = !r.req.on_token || r.req.on_token(c, out);
    const bool stop_id = std::find(r.req.stop_ids.begin(), r.req.stop_ids.end(), id) != r.req.stop_ids.end();
    if (stop_id || !keep) finish_choice(r, c, FinishReason::Stop);
    else if (ch.generated >= r.max_new) finish_choice(r, c, FinishReason::Length);
    else ch.next_input = id;
  }
}

// Drops requests whose every choice finished.
void Scheduler::retire() {
  const auto now = Clock::now();
  auto done = [&](const std::unique_ptr<Live>& r) {
    if (r->active > 0) return false;
    finished_++;
    e2e_.observe(std::chrono::duration<double>(now - r->submitted).count());
    return true;
  };
  running_.erase(std::remove_if(running_.begin(), running_.end(), done), running_.end());
}

bool Scheduler::step() {
  take_submissions();
  admit();
  retire();
  const bool work = !running_.empty();
  if (work) run_batch();
  retire();
  publish_stats();
  return work;
}

void Scheduler::publish_stats() {
  int64_t seqs = 0;
  for (const auto& r : running_) seqs += r->active;
  n_waiting_ = int64_t(waiting_.size());
  n_running_ = int64_t(running_.size());
  n_running_seqs_ = seqs;
  kv_used_ = kv_->used_blocks();
  // Counting the prefix cache's own blocks walks every entry: do it when idle or now and then.
  const auto now = Clock::now();
  if (prefix_ && (running_.empty() || now - last_cache_count_ > std::chrono::milliseconds(250))) {
    kv_cached_ = prefix_->reclaimable_blocks();
    last_cache_count_ = now;
  } else if (!prefix_) {
    kv_cached_ = 0;
  }
  std::lock_guard lock(mutex_);
  if (running_.empty() && waiting_.empty() && incoming_.empty()) idle_.notify_all();
}

void Scheduler::loop() {
  for (;;) {
    bool worked = false;
    try {
      worked = step();
    } catch (const std::exception& e) {  // a bug, not bad input: fail what is running, keep serving
      std::fprintf(stderr, "tiller: scheduler step failed: %s\n", e.what());
      for (auto& r : running_) abort_request(*r, FinishReason::Error, e.what());
      running_.clear();
    }
    std::unique_lock lock(mutex_);
    if (stop_ && running_.empty() && waiting_.empty() && incoming_.empty()) break;
    if (!worked) {
      wake_.wait(lock, [&] { return stop_ || cancel_all_ || !incoming_.empty() || !cancels_.empty(); });
    }
  }
}

void Scheduler::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

bool Scheduler::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [&] {
    return incoming_.empty() && n_waiting_.load() == 0 && n_running_.load() == 0;
  });
}

void Scheduler::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  if (thread_.joinable()) {
    wait_idle(grace);
    {
      std::lock_guard lock(mutex_);
      cancel_all_ = true;
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  } else {
    {
      std::lock_guard lock(mutex_);
      cancel_all_ = true;
    }
    take_submissions();
    publish_stats();
  }
}

}  // namespace tiller::serving
