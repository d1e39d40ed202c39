// The continuous-batching scheduler: every request in flight shares each Model::forward over one
// paged KV cache. The server and the batch runner are both front ends of this one loop.
//
// A step is one ragged forward: one decode row per running sequence first, then prefill chunks of
// admitted prompts in arrival order filling the rest of the row budget, so a long prompt never
// stalls decoding. Requests join between steps when the KV cache can hold their worst case
// (prompt + max_tokens for every choice), so a forward never runs out of blocks and no sequence
// is ever preempted; the rest wait in a bounded queue. n > 1 prefills the prompt once and forks
// it per choice (copy-on-write blocks); with the prefix cache, identical whole-block prompt
// prefixes are shared across requests too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "engine/error.h"
#include "engine/sampler.h"
#include "models/model.h"
#include "serving/metrics.h"
#include "serving/prefix_cache.h"

namespace tiller::serving {

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", "error"

struct TopLogprob {
  int32_t id;
  float logprob;
};

// One chosen (or prompt) token and, when asked for, its log-probability under the model's own
// distribution (log-softmax of the logits, before temperature and truncation, as vLLM reports).
struct TokenOutput {
  int32_t id = 0;
  float logprob = 0;
  std::vector<TopLogprob> top;  // the most likely tokens, best first
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // [P] token ids, P >= 1
  int64_t max_tokens = 16;      // per choice; 0 only scores the prompt (with prompt_logprobs)
  SamplingParams sampling;
  uint64_t seed = 0;            // choice i draws from seed + i
  std::vector<int32_t> stop_ids;
  int n = 1;                    // choices, each its own sequence forked from the prompt
  int logprobs = -1;            // < 0: none; k >= 0: each token's logprob and the k most likely
  bool prompt_logprobs = false; // logprobs of prompt tokens 1..P-1 (echo scoring); disables prefix reuse
  int32_t adapter = 0;          // the scheduler's delta set entry (steering profile) its rows use; 0: none

  // Called on the scheduler's thread in this order; they must return quickly.
  // Prompt logprobs: entry i is token i of the prompt (entry 0 carries no logprob).
  std::function<void(const std::vector<TokenOutput>& prompt)> on_prompt;
  // A new token of choice `choice`; returning false finishes that choice with Stop.
  std::function<bool(int choice, const TokenOutput& token)> on_token;
  // Once per choice, last. `error` is set for Error.
  std::function<void(int choice, FinishReason reason, const std::string& error)> on_finish;
};

struct SchedulerOptions {
  int64_t max_batch = 32;          // sequences in flight (each choice of n counts)
  int64_t max_batch_tokens = 512;  // rows per forward: decode rows, then prefill chunks
  int64_t max_queue = 128;         // waiting requests; more are refused with QueueFull
  int64_t ctx = 0;                 // tokens per sequence, prompt included; 0: the model's context
  int64_t kv_blocks = 0;           // KV cache size; 0: room for max_batch sequences of ctx tokens
  int64_t block_size = 16;
  bool prefix_cache = true;
  int64_t prefix_cache_entries = 256;
};

// submit() refuses: max_queue requests already wait (HTTP 429: retry later).
class QueueFull : public Error {
 public:
  using Error::Error;
};

// submit() after shutdown() began (HTTP 503).
class SchedulerStopped : public Error {
 public:
  using Error::Error;
};

class Scheduler {
 public:
  // Resolves the options against the model (ctx, kv_blocks) and allocates the KV cache. `deltas`
  // (optional, kept by the caller) applies per row to requests with an adapter; it must know
  // adapters 1..n_adapters.
  Scheduler(Model& model, const SchedulerOptions& options, ProjectionDelta* deltas = nullptr, int32_t n_adapters = 0);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request and returns its id (thread-safe). Throws Error when it can never run
  // (empty prompt, token outside the vocabulary, prompt + max_tokens past ctx, n > max_batch,
  // more KV blocks than the cache has), QueueFull when max_queue requests already wait, and
  // SchedulerStopped once shutdown() began.
  uint64_t submit(GenerationRequest request);
  // Finishes a queued or running request's choices with Cancelled and frees its blocks at the
  // next step (thread-safe; unknown or finished ids are ignored).
  void cancel(uint64_t id);

  // Runs one step on the caller's thread; false when there was nothing to do. Either drive the
  // scheduler with step() or start() its thread, not both.
  bool step();
  void start();
  // Refuses new requests, lets running and queued ones finish for up to `grace`, cancels the
  // rest, and stops the thread.
  void shutdown(std::chrono::milliseconds grace);
  // Blocks until no request is queued or running (or `timeout` passes); true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);

  struct Stats {
    int64_t waiting = 0, running_requests = 0, running_sequences = 0;
    int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_blocks_cached = 0;  // cached: held by the prefix cache alone
    uint64_t requests_finished = 0, prompt_tokens = 0, generated_tokens = 0, prefix_tokens_reused = 0, steps = 0;
    uint64_t mixed_steps = 0;  // steps that ran decode rows and prefill rows together
    uint64_t cancelled = 0;    // requests cancelled (client gone, shutdown) before they finished
  };
  Stats stats() const;
  const SchedulerOptions& options() const { return options_; }
  const Model& model() const { return model_; }
  // Generation metrics (queue depth, KV blocks, tokens, time to first token, per-token latency).
  void write_metrics(std::string& out) const;
  double kv_bytes() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Choice;
  struct Live;

  void take_submissions();
  void admit();
  int64_t outstanding_blocks(const Live& r) const;
  void finish_choice(Live& r, int c, FinishReason reason, const std::string& error = {});
  void abort_request(Live& r, FinishReason reason, const std::string& error);
  void prefill_done(Live& r);
  void run_batch();
  void retire();
  void publish_stats();
  void loop();

  Model& model_;
  SchedulerOptions options_;
  ProjectionDelta* deltas_;
  int32_t n_adapters_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<PrefixCache> prefix_;

  // Shared with submitting threads.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::unique_ptr<Live>> incoming_;
  std::unordered_set<uint64_t> cancels_;
  bool cancel_all_ = false;
  bool accepting_ = true;
  bool stop_ = false;
  uint64_t next_id_ = 1;
  std::thread thread_;

  // Owned by the stepping thread.
  std::deque<std::unique_ptr<Live>> waiting_;
  std::vector<std::unique_ptr<Live>> running_;
  Clock::time_point last_cache_count_;

  // Published for stats() and metrics.
  std::atomic<int64_t> n_waiting_{0}, n_running_{0}, n_running_seqs_{0}, kv_used_{0}, kv_cached_{0};
  std::atomic<uint64_t> finished_{0}, prompt_tokens_{0}, generated_tokens_{0}, reused_{0}, steps_{0}, mixed_steps_{0}, cancelled_{0};
  Histogram ttft_{latency_buckets()}, itl_{latency_buckets()}, queue_time_{latency_buckets()},
      e2e_{latency_buckets()}, batch_rows_{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}};
};

}  // namespace tiller::serving
