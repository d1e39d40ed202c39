// The JSONL batch runner: parse, submit with back-pressure, write results in input order.
#include "serving/batch_runner.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <unordered_set>

#include "engine/jsonl_appender.h"
#include "engine/progress.h"
#include "serving/completion_sink.h"
#include "serving/openai_request.h"

namespace tiller::serving {

namespace {

using Clock = std::chrono::steady_clock;

struct Job {
  int64_t line = 0;
  ojson id;
  std::shared_ptr<CompletionSink> sink;
};

// Notes the id of a finished result line (one without "error") already in the output.
void note_finished(std::string_view line, std::unordered_set<std::string>& done) {
  try {
    const ojson j = ojson::parse(line);
    if (j.is_object() && j.contains("id") && !j.contains("error")) done.insert(j["id"].dump());
  } catch (const ojson::exception&) {  // not ours to judge: it is simply not done
  }
}

ojson result_line(const Job& job) {
  const CompletionSink& sink = *job.sink;
  ojson out = {{"id", job.id}};
  const std::string error = sink.error();
  if (!error.empty()) {
    out["error"] = error;
    return out;
  }
  const ojson resp = sink.response("");
  const bool chat = sink.request().endpoint == Endpoint::Chat;
  const ojson& first = resp["choices"][0];
  out["text"] = chat ? first["message"]["content"] : first["text"];
  out["prompt_tokens"] = resp["usage"]["prompt_tokens"];
  out["completion_tokens"] = resp["usage"]["completion_tokens"];
  out["finish_reason"] = first["finish_reason"];
  if (!sink.request().profile.profile.empty() && sink.request().profile.profile != "base") out["profile"] = sink.request().profile.profile;
  if (!first["logprobs"].is_null()) out["logprobs"] = first["logprobs"];
  if (sink.n_choices() > 1) {
    ojson choices = ojson::array();
    for (int i = 0; i < sink.n_choices(); i++) {
      const ojson& c = resp["choices"][size_t(i)];
      choices.push_back({{"text", chat ? c["message"]["content"] : c["text"]},
                         {"completion_tokens", sink.completion_tokens(i)},
                         {"finish_reason", c["finish_reason"]}});
    }
    out["choices"] = choices;
  }
  return out;
}

}  // namespace

BatchSummary run_batch_file(const ServedModel& model, Scheduler& scheduler, const BatchOptions& opt) {
  BatchSummary sum;
  std::ifstream in(opt.input);
  if (!in) fail(opt.input.string(), ": cannot open the input file");
  std::string line;
  while (std::getline(in, line)) sum.lines += line.find_first_not_of(" \t\r") != std::string::npos ? 1 : 0;
  in.clear();
  in.seekg(0);
  // Whole lines only, whatever moment a previous run was killed at (engine/jsonl_appender.h).
  std::unordered_set<std::string> done;
  JsonlAppender out(opt.output, [&](std::string_view line) { note_finished(line, done); });

  ProgressLine progress("batch", "requests", opt.progress);  // counts this run's requests, not the skipped
  auto report_bad = [&](int64_t n, const std::string& why) {
    progress.clear();
    std::fprintf(stderr, "tiller batch: %s:%lld: %s; line skipped\n", opt.input.c_str(), (long long)n, why.c_str());
    sum.bad_lines++;
  };

  std::mutex mutex;
  std::condition_variable changed;
  uint64_t events = 0;  // finishes so far: waiting on a count cannot miss one
  auto notify = [&] {
    std::lock_guard lock(mutex);
    events++;
    changed.notify_all();
  };

  scheduler.start();
  const auto t0 = Clock::now();
  const size_t window_limit = size_t(scheduler.options().max_queue + scheduler.options().max_batch);
  std::deque<Job> window;  // submitted, in input order
  std::optional<Job> pending;  // parsed, waiting for room in the queue
  std::unordered_set<std::string> seen;
  int64_t line_no = 0;
  bool eof = false;
  // The scheduler's callbacks point into this frame: should an error leave it (a write that
  // fails, weights that changed on disk), they are stopped before anything here is destroyed.
  struct StopOnError {
    Scheduler& scheduler;
    int pending = std::uncaught_exceptions();
    ~StopOnError() {
      if (std::uncaught_exceptions() > pending) scheduler.shutdown(std::chrono::milliseconds(0));
    }
  } stop_on_error{scheduler};

  while (true) {
    uint64_t seen_events;
    {
      std::lock_guard lock(mutex);
      seen_events = events;
    }
    while (!eof && window.size() < window_limit) {
      if (!pending) {
        if (!std::getline(in, line)) {
          eof = true;
          break;
        }
        line_no++;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
          const ojson j = parse_body(line);
          if (!j.contains("id") || !(j["id"].is_string() || j["id"].is_number_integer()))
            throw ApiError(400, "each line needs an \"id\" (a string or an integer)");
          const std::string key = j["id"].dump();
          if (!seen.insert(key).second) throw ApiError(400, "duplicate id " + key);
          if (done.count(key)) {
            sum.skipped++;
            continue;
          }
          ApiRequest r;
          if (j.contains("messages")) r = parse_chat_request(j, model, opt.max_tokens);
          else if (j.contains("prompt")) r = parse_completion_request(j, model, opt.max_tokens);
          else throw ApiError(400, "each line needs \"messages\" (a chat) or \"prompt\" (text or token ids)");
          if (r.prompts.size() != 1) throw ApiError(400, "one prompt per line");
          r.stream = false;
          pending = Job{line_no, j["id"], std::make_shared<CompletionSink>(model, std::move(r))};
        } catch (const Error& e) {
          report_bad(line_no, e.what());
          continue;
        }
      }
      try {
        GenerationRequest g = pending->sink->generation_request(0);
        g.on_finish = [inner = g.on_finish, &notify](int c, FinishReason reason, const std::string& e) {
          inner(c, reason, e);
          notify();
        };
        scheduler.submit(std::move(g));
        window.push_back(std::move(*pending));
        pending.reset();
      } catch (const QueueFull&) {
        break;  // retry once something finishes
      } catch (const Error& e) {
        report_bad(pending->line, e.what());
        pending.reset();
      }
    }
    while (!window.empty() && window.front().sink->finished()) {
      const ojson result = result_line(window.front());
      // No line is written from weights that changed on disk while it was generated.
      model.model->check_files_unchanged("running the batch");
      out.append(result.dump(-1, ' ', false, ojson::error_handler_t::replace));  // a kill loses nothing written
      if (result.contains("error")) {
        sum.failed++;
        progress.clear();
        std::fprintf(stderr, "tiller batch: id %s failed: %s\n", result["id"].dump().c_str(),
                      result["error"].get<std::string>().c_str());
      } else {
        sum.completed++;
        sum.prompt_tokens += result["prompt_tokens"].get<int64_t>();
        sum.completion_tokens += result["completion_tokens"].get<int64_t>();
      }
      window.pop_front();
    }
    const bool finished = eof && window.empty() && !pending;
    if (finished || progress.due()) {
      const double elapsed = progress.elapsed_seconds();
      char figures[48];
      std::snprintf(figures, sizeof figures, "%.1f tok/s", elapsed > 0 ? double(sum.completion_tokens) / elapsed : 0.0);
      progress.update(sum.completed + sum.failed, sum.lines - sum.skipped - sum.bad_lines, figures, finished);
    }
    if (finished) break;
    std::unique_lock lock(mutex);
    changed.wait_for(lock, std::chrono::milliseconds(250), [&] { return events != seen_events; });
  }
  sum.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return sum;
}

}  // namespace tiller::serving
