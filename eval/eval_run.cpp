// The evaluation loop: submissions with back-pressure, generation callbacks, judge workers, and
// the items.jsonl writer. The main thread owns the records; the scheduler's thread and the judge
// threads hand their results over through one mutex-guarded inbox.
#include "eval/eval_run.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "engine/jsonl_appender.h"
#include "engine/progress.h"

namespace tiller::eval {

namespace {

using Clock = std::chrono::steady_clock;

json generation_json(const GenerationSettings& g) {
  return {{"temperature", g.sampling.temperature}, {"top_k", g.sampling.top_k}, {"top_p", g.sampling.top_p},
          {"min_p", g.sampling.min_p}, {"repetition_penalty", g.sampling.repetition_penalty},
          {"frequency_penalty", g.sampling.frequency_penalty}, {"presence_penalty", g.sampling.presence_penalty},
          {"max_tokens", g.max_tokens}, {"samples", g.samples}, {"seed", g.seed}, {"stop_ids", g.stop_ids}};
}

uint64_t request_seed(uint64_t seed, const std::string& key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, then a splitmix64 finish
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  uint64_t z = seed ^ h;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The first place two JSON values differ, as "path: old -> new".
std::string first_difference(const json& a, const json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& k : keys) {
      const json va = a.contains(k) ? a[k] : json(), vb = b.contains(k) ? b[k] : json();
      if (va != vb) return first_difference(va, vb, path.empty() ? k : path + "." + k);
    }
    return "";
  }
  auto show = [](const json& v) {
    std::string s = v.is_null() ? "(absent)" : v.dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
  };
  return path + ": " + show(a) + " -> " + show(b);
}

// Refuses a run whose answers would not be comparable with those already in `dir`; records the
// judges' settings (a judge may be added to a finished run, not changed).
void check_and_record_identity(const std::filesystem::path& dir, const json& identity, const std::vector<Judge*>& judges) {
  const auto path = dir / "run.json";
  json judges_json = json::object();
  if (std::filesystem::exists(path)) {
    const json old = read_json_file(path);
    if (old.value("identity", json()) != identity)
      fail(dir.string(), " holds a run made with other settings (", first_difference(old.value("identity", json()), identity, ""),
           "); use another --out for these settings, or the same settings to resume");
    judges_json = old.value("judges", json::object());
    for (const Judge* j : judges) {
      if (judges_json.contains(j->name()) && judges_json[j->name()] != j->settings())
        fail(dir.string(), ": judge '", j->name(), "' was run with other settings (",
             first_difference(judges_json[j->name()], j->settings(), j->name()), "); give it another name (NAME=SPEC) or use another --out");
    }
  }
  for (const Judge* j : judges) judges_json[j->name()] = j->settings();
  const json doc = {{"tiller_eval", 1}, {"identity", identity}, {"judges", judges_json}};
  const auto tmp = path.string() + ".tmp";
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(tmp, ": cannot open for writing");
    const std::string text = doc.dump(1) + "\n";
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    if (std::fclose(f) != 0 || !ok) fail(tmp, ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

struct Request {  // one item through one system: `samples` choices
  size_t item = 0, system = 0;
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
  std::vector<bool> want;                    // [samples] lines to write
  std::vector<std::vector<int32_t>> tokens;  // [samples]
  std::vector<serving::FinishReason> finish;
  std::vector<std::string> errors;
  int remaining = 0;                         // choices not finished (scheduler thread)
  uint64_t scheduler_id = 0;
};

struct JudgeJob {
  size_t record = 0;  // index into the pending records
  JudgeInput input;
};

struct JudgeResult {
  size_t record = 0, judge = 0;
  Verdict verdict;
};

// The state the scheduler's and judges' threads share with the main thread.
struct Inbox {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<size_t> finished_requests;
  std::deque<JudgeResult> verdicts;
  std::vector<std::deque<JudgeJob>> judge_queues;  // [judges]
  std::condition_variable judge_work;
  bool closing = false;   // no more judge jobs will come
  bool abandon = false;   // drop queued judge jobs
  int busy_judges = 0;
  std::string fatal;      // a judge that cannot go on
};

void judge_worker(Judge& judge, size_t index, Inbox& inbox) {
  while (true) {
    std::vector<JudgeJob> jobs;
    {
      std::unique_lock lock(inbox.mutex);
      auto& q = inbox.judge_queues[index];
      inbox.judge_work.wait(lock, [&] { return !q.empty() || inbox.closing || inbox.abandon; });
      if (inbox.abandon || (q.empty() && inbox.closing)) return;
      // A short wait lets a batch fill while generation goes on.
      if (q.size() < judge.batch_size() && !inbox.closing)
        inbox.judge_work.wait_for(lock, std::chrono::milliseconds(20), [&] { return q.size() >= judge.batch_size() || inbox.closing; });
      while (!q.empty() && jobs.size() < judge.batch_size()) {
        jobs.push_back(std::move(q.front()));
        q.pop_front();
      }
      inbox.busy_judges++;
    }
    std::vector<JudgeInput> inputs;
    for (const auto& j : jobs) inputs.push_back(j.input);
    std::vector<Verdict> verdicts;
    std::string fatal;
    try {
      verdicts = judge.judge(inputs);
      if (verdicts.size() != jobs.size()) fail("judge ", judge.name(), " returned ", verdicts.size(), " verdicts for ", jobs.size());
    } catch (const JudgeUnavailable& e) {
      fatal = e.what();
    } catch (const Error& e) {
      verdicts.assign(jobs.size(), Verdict{});
      for (auto& v : verdicts) v.error = e.what();
    }
    std::lock_guard lock(inbox.mutex);
    inbox.busy_judges--;
    if (!fatal.empty()) {
      if (inbox.fatal.empty()) inbox.fatal = fatal;
      inbox.changed.notify_all();
      return;
    }
    for (size_t i = 0; i < jobs.size(); i++) inbox.verdicts.push_back({jobs[i].record, index, std::move(verdicts[i])});
    inbox.changed.notify_all();
  }
}

bool needs_judging(const ItemRecord& r, const Judge& j) {
  auto it = r.judges.find(j.name());
  return it == r.judges.end() || !it->second.error.empty();
}

}  // namespace

json GenerationSettings::to_json() const { return generation_json(*this); }

EvalOutcome run_eval(const serving::ServedModel& model, serving::Scheduler& scheduler, const EvalRun& run) {
  const auto t0 = Clock::now();
  const Dataset& data = *run.dataset;
  const size_t n_systems = run.systems.size(), n_judges = run.judges.size();
  const int samples = run.generation.samples;
  std::filesystem::create_directories(run.out_dir);
  check_and_record_identity(run.out_dir, run.identity, run.judges);

  // What earlier runs finished (the last line of a key wins).
  const auto items_path = run.out_dir / "items.jsonl";
  std::unordered_map<std::string, ItemRecord> existing;
  std::vector<std::string> existing_order;
  // Opening cuts off a line a killed run left unfinished (engine/jsonl_appender.h).
  JsonlAppender writer(items_path, [&](std::string_view line) {
    try {
      ItemRecord r = ItemRecord::from_json(json::parse(line));
      if (!existing.count(r.key())) existing_order.push_back(r.key());
      existing[r.key()] = std::move(r);
    } catch (const json::exception&) {  // a damaged line: its work is simply redone
    }
  });

  EvalOutcome out;
  out.total = int64_t(data.items.size() * n_systems) * samples;
  Inbox inbox;
  inbox.judge_queues.resize(n_judges);
  std::vector<ItemRecord> pending;              // records waiting for verdicts, by index
  std::vector<std::set<size_t>> waiting;        // [pending] judges not yet answered
  int64_t open_records = 0;
  auto enqueue_judging = [&](ItemRecord r, const std::set<size_t>& judges) {
    const size_t id = pending.size();
    const JudgeInput input{r.prompt, r.response, r.language};
    pending.push_back(std::move(r));
    waiting.push_back(judges);
    open_records++;
    for (size_t j : judges) inbox.judge_queues[j].push_back({id, input});
  };

  // Work: answers to generate, and finished answers some judge has not judged.
  std::vector<Request> requests;
  for (size_t i = 0; i < data.items.size(); i++) {
    for (size_t s = 0; s < n_systems; s++) {
      Request q;
      q.item = i, q.system = s;
      q.want.assign(size_t(samples), false);
      bool any = false;
      for (int k = 0; k < samples; k++) {
        auto it = existing.find(record_key(data.items[i], run.systems[s].name, k));
        if (it == existing.end() || !it->second.generated()) {
          q.want[size_t(k)] = any = true;
          continue;
        }
        std::set<size_t> todo;
        for (size_t j = 0; j < n_judges; j++) {
          if (needs_judging(it->second, *run.judges[j])) todo.insert(j);
        }
        if (todo.empty()) out.already_done++;
        else enqueue_judging(it->second, todo);
      }
      if (any) requests.push_back(std::move(q));
    }
  }

  std::vector<std::thread> workers;
  for (size_t j = 0; j < n_judges; j++) workers.emplace_back(judge_worker, std::ref(*run.judges[j]), j, std::ref(inbox));
  inbox.judge_work.notify_all();
  size_t next_request = 0, in_flight = 0;
  // Whatever way this frame ends, nothing that points into it may outlive it: cancel what the
  // scheduler still runs for us and stop the judges (a no-op after a normal end).
  struct Unwind {
    serving::Scheduler& scheduler;
    std::vector<Request>& requests;
    const size_t& submitted;
    Inbox& inbox;
    std::vector<std::thread>& workers;
    ~Unwind() {
      for (size_t i = 0; i < submitted; i++) {
        if (requests[i].scheduler_id != 0) scheduler.cancel(requests[i].scheduler_id);
      }
      scheduler.wait_idle(std::chrono::seconds(60));
      {
        std::lock_guard lock(inbox.mutex);
        inbox.abandon = true;
        inbox.judge_work.notify_all();
      }
      for (auto& w : workers) {
        if (w.joinable()) w.join();
      }
    }
  } unwind{scheduler, requests, next_request, inbox, workers};

  // Prompt tokens are the same for every system: tokenize each item once, when first needed.
  std::unordered_map<size_t, std::vector<int32_t>> prompt_cache;
  const int64_t ctx = scheduler.options().ctx;
  const size_t window_limit = size_t(scheduler.options().max_queue + scheduler.options().max_batch);
  int64_t clamped = 0;
  std::vector<std::string> request_errors;

  auto finish_request_line = [&](Request& q) {
    const EvalItem& item = data.items[q.item];
    for (int k = 0; k < samples; k++) {
      if (!q.want[size_t(k)]) continue;
      ItemRecord r = ItemRecord::for_item(item, run.systems[q.system].name, k);
      r.prompt_tokens = int64_t(q.prompt.size());
      if (!q.errors[size_t(k)].empty()) {
        r.finish_reason = "error";
        r.error = q.errors[size_t(k)];
        writer.append(r.to_json().dump(-1, ' ', false, ojson::error_handler_t::replace));
        out.failed++;
        continue;
      }
      const auto& toks = q.tokens[size_t(k)];
      r.response = model.decode(toks);
      r.completion_tokens = int64_t(toks.size());
      r.finish_reason = serving::finish_reason_name(q.finish[size_t(k)]);
      out.generated++;
      out.generated_tokens += r.completion_tokens;
      std::set<size_t> all;
      for (size_t j = 0; j < n_judges; j++) all.insert(j);
      enqueue_judging(std::move(r), all);
    }
  };

  auto submit_more = [&] {
    while (next_request < requests.size() && in_flight < window_limit) {
      Request& q = requests[next_request];
      const EvalItem& item = data.items[q.item];
      q.tokens.assign(size_t(samples), {});
      q.finish.assign(size_t(samples), serving::FinishReason::Stop);
      q.errors.assign(size_t(samples), "");
      auto pc = prompt_cache.find(q.item);
      if (pc == prompt_cache.end()) {
        try {
          pc = prompt_cache.emplace(q.item, run.prompts->tokens(item)).first;
        } catch (const Error& e) {  // e.g. a message the chat template cannot hold safely: that item's error
          for (auto& err : q.errors) err = e.what();
          std::lock_guard lock(inbox.mutex);
          inbox.finished_requests.push_back(next_request++);
          continue;
        }
      }
      q.prompt = pc->second;
      const int64_t room = ctx - int64_t(q.prompt.size());
      if (room < 1) {
        for (auto& e : q.errors)
          e = "the prompt has " + std::to_string(q.prompt.size()) + " tokens; the context holds " + std::to_string(ctx);
        std::lock_guard lock(inbox.mutex);
        inbox.finished_requests.push_back(next_request++);
        continue;
      }
      q.max_tokens = std::min(run.generation.max_tokens, room);
      if (q.max_tokens < run.generation.max_tokens) clamped++;
      serving::GenerationRequest g;
      g.prompt = q.prompt;
      g.max_tokens = q.max_tokens;
      g.sampling = run.generation.sampling;
      g.seed = request_seed(run.generation.seed, item.key() + "\x1f" + run.systems[q.system].name);
      g.stop_ids = run.generation.stop_ids;
      g.n = samples;
      g.adapter = run.systems[q.system].adapter;
      q.remaining = samples;
      const size_t index = next_request;
      g.on_token = [&requests, index](int choice, const serving::TokenOutput& t) {
        requests[index].tokens[size_t(choice)].push_back(t.id);
        return true;
      };
      g.on_finish = [&requests, &inbox, index](int choice, serving::FinishReason reason, const std::string& error) {
        Request& r = requests[index];
        r.finish[size_t(choice)] = reason;
        if (reason == serving::FinishReason::Error) r.errors[size_t(choice)] = error.empty() ? "generation failed" : error;
        if (reason == serving::FinishReason::Cancelled) r.errors[size_t(choice)] = "cancelled";
        if (--r.remaining == 0) {
          std::lock_guard lock(inbox.mutex);
          inbox.finished_requests.push_back(index);
          inbox.changed.notify_all();
        }
      };
      try {
        q.scheduler_id = scheduler.submit(std::move(g));
      } catch (const serving::QueueFull&) {
        return;  // again once something finishes
      } catch (const Error& e) {
        for (auto& err : q.errors) err = e.what();
        std::lock_guard lock(inbox.mutex);
        inbox.finished_requests.push_back(next_request++);
        continue;
      }
      in_flight++;
      next_request++;
    }
  };

  // Counts items of this run; those resumed from items.jsonl count as done before it.
  ProgressLine line("eval", "items", run.progress, out.already_done);
  auto progress = [&](bool final) {
    if (!final && !line.due()) return;
    int64_t backlog = 0;
    {
      std::lock_guard lock(inbox.mutex);
      for (const auto& q : inbox.judge_queues) backlog += int64_t(q.size());
    }
    const double elapsed = line.elapsed_seconds();
    char figures[96];
    std::snprintf(figures, sizeof figures, "%.1f tok/s  judging %lld",
                  elapsed > 0 ? double(out.generated_tokens) / elapsed : 0.0, (long long)backlog);
    line.update(out.already_done + out.judged + out.failed, out.total, figures, final);
  };

  scheduler.start();
  std::string stopped;
  while (true) {
    const bool stopping = run.stop && run.stop->load();
    if (!stopping) submit_more();
    std::deque<size_t> finished;
    std::deque<JudgeResult> verdicts;
    std::string fatal;
    {
      std::lock_guard lock(inbox.mutex);
      finished.swap(inbox.finished_requests);
      verdicts.swap(inbox.verdicts);
      fatal = inbox.fatal;
    }
    for (size_t index : finished) {
      Request& q = requests[index];
      if (q.scheduler_id != 0) in_flight--;
      bool cancelled = false;
      for (const auto& e : q.errors) cancelled |= e == "cancelled";
      if (!cancelled) finish_request_line(q);
    }
    if (!finished.empty()) inbox.judge_work.notify_all();
    for (auto& v : verdicts) {
      ItemRecord& r = pending[v.record];
      r.judges[run.judges[v.judge]->name()] = std::move(v.verdict);
      waiting[v.record].erase(v.judge);
      if (waiting[v.record].empty()) {
        writer.append(r.to_json().dump(-1, ' ', false, ojson::error_handler_t::replace));
        out.judged++;
        open_records--;
        r = ItemRecord{};  // free the text
      }
    }
    progress(false);
    if (!fatal.empty()) stopped = fatal;
    else if (stopping) stopped = "interrupted";
    if (!stopped.empty()) break;
    if (next_request == requests.size() && in_flight == 0 && open_records == 0) break;
    std::unique_lock lock(inbox.mutex);
    inbox.changed.wait_for(lock, std::chrono::milliseconds(200), [&] {
      return !inbox.finished_requests.empty() || !inbox.verdicts.empty() || !inbox.fatal.empty();
    });
  }

  if (!stopped.empty()) {
    // Stop generating, let the judges' current batches end, and keep every answer: lines whose
    // judges did not answer are written with that noted, so a rerun judges them.
    for (size_t i = 0; i < next_request; i++) {
      if (requests[i].scheduler_id != 0) scheduler.cancel(requests[i].scheduler_id);
    }
    scheduler.wait_idle(std::chrono::seconds(30));
    {
      std::lock_guard lock(inbox.mutex);
      inbox.abandon = true;
      inbox.judge_work.notify_all();
    }
    for (auto& w : workers) w.join();
    workers.clear();
    for (size_t index : inbox.finished_requests) {
      bool cancelled = false;
      for (const auto& e : requests[index].errors) cancelled |= e == "cancelled";
      if (!cancelled) finish_request_line(requests[index]);
    }
    for (auto& v : inbox.verdicts) {
      pending[v.record].judges[run.judges[v.judge]->name()] = std::move(v.verdict);
      waiting[v.record].erase(v.judge);
    }
    for (size_t id = 0; id < pending.size(); id++) {
      if (pending[id].id.empty()) continue;  // written already
      for (size_t j : waiting[id]) {
        Verdict v;
        v.error = "not judged: " + stopped;
        pending[id].judges[run.judges[j]->name()] = v;
      }
      writer.append(pending[id].to_json().dump(-1, ' ', false, ojson::error_handler_t::replace));
    }
  } else {
    {
      std::lock_guard lock(inbox.mutex);
      inbox.closing = true;
      inbox.judge_work.notify_all();
    }
    for (auto& w : workers) w.join();
  }
  progress(true);
  if (clamped > 0 && run.progress)
    std::fprintf(stderr, "tiller eval: %lld prompts left less room than --max-tokens in the %lld-token context; their "
                 "answers were capped there\n", (long long)clamped, (long long)ctx);
  out.stopped = stopped;
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!stopped.empty()) return out;

  // Finished: rewrite items.jsonl in dataset order (lines of earlier, wider selections after).
  std::unordered_map<std::string, ItemRecord> all;
  std::vector<std::string> order;
  for (const auto& line : read_jsonl_lines(items_path)) {
    ItemRecord r = ItemRecord::from_json(json::parse(line));
    if (!all.count(r.key())) order.push_back(r.key());
    all[r.key()] = std::move(r);
  }
  std::vector<std::string> lines;
  std::set<std::string> selected;
  for (const auto& item : data.items) {
    for (const auto& sys : run.systems) {
      for (int k = 0; k < samples; k++) {
        const std::string key = record_key(item, sys.name, k);
        auto it = all.find(key);
        if (it == all.end()) fail(items_path.string(), ": no line for ", item.id, "/", item.language, "/", sys.name, " after the run (internal)");
        selected.insert(key);
        out.records.push_back(it->second);
        lines.push_back(it->second.to_json().dump(-1, ' ', false, ojson::error_handler_t::replace));
      }
    }
  }
  for (const auto& key : order) {
    if (!selected.count(key)) lines.push_back(all[key].to_json().dump(-1, ' ', false, ojson::error_handler_t::replace));
  }
  write_jsonl_atomically(items_path, lines);
  out.complete = true;
  return out;
}

}  // namespace tiller::eval
