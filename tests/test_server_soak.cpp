// A soak of mixed streaming load on loopback. For TILLER_SOAK_SECONDS (default 20; scripts/soak.sh
// runs minutes) clients loop over a pool of greedy requests, streamed and whole, n = 1 and 2, some
// leaving mid-stream, while others poll /health and /metrics. Every completed response must
// equal the same request run alone, and resident memory must come back to where it stood after
// the warm-up. TILLER_SOAK_REPORT=FILE writes the memory curve as JSON lines.
#if TILLER_HAVE_SERVER

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>

#include "models/generate.h"
#include "server_harness.h"

using namespace tiller;
using namespace tiller::serving;
using tiller::test::TestServer;
using tiller::test::resident_bytes;
using Clock = std::chrono::steady_clock;

namespace {

struct PoolEntry {
  std::vector<int32_t> prompt;
  int64_t max_tokens;
  std::vector<int32_t> expected;  // generate() alone
};

struct Tally {
  std::atomic<int64_t> completed{0}, equal{0}, left{0}, refused{0}, failed{0}, tokens{0};
};

// One request; `leave` aborts after two events. Counts into `t`.
void one_request(int port, const PoolEntry& e, bool stream, int n, bool leave, Tally& t) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(120, 0);
  const ojson body = {{"prompt", e.prompt}, {"max_tokens", e.max_tokens}, {"temperature", 0}, {"ignore_eos", true},
                      {"stream", stream}, {"n", n}, {"return_token_ids", true}};
  if (!stream) {
    auto r = http.Post("/v1/completions", body.dump(), "application/json");
    if (!r) {
      t.failed++;
      return;
    }
    if (r->status == 429) {
      t.refused++;
      return;
    }
    const ojson j = ojson::parse(r->body);
    bool all_equal = r->status == 200 && j["choices"].size() == size_t(n);
    for (const auto& c : j["choices"]) all_equal = all_equal && c["token_ids"].get<std::vector<int32_t>>() == e.expected;
    t.completed++;
    t.equal += all_equal ? 1 : 0;
    t.tokens += int64_t(e.expected.size()) * n;
    return;
  }
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  std::vector<std::vector<int32_t>> got(static_cast<size_t>(n));
  std::string buffer;
  int events = 0;
  bool done = false;
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    buffer.append(data, size);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      if (event == "data: [DONE]") {
        done = true;
        continue;
      }
      const ojson j = ojson::parse(event.substr(6));
      for (const auto& c : j["choices"])
        for (int32_t id : c["token_ids"]) got[c["index"].get<size_t>()].push_back(id);
      events++;
    }
    return !(leave && events >= 2);
  };
  httplib::Response res;
  httplib::Error error;
  const bool ok = http.send(req, res, error);
  if (leave) {
    t.left++;
    return;
  }
  if (ok && res.status == 429) {
    t.refused++;
    return;
  }
  if (!ok || res.status != 200 || !done) {
    t.failed++;
    return;
  }
  bool all_equal = true;
  for (const auto& g : got) all_equal = all_equal && g == e.expected;
  t.completed++;
  t.equal += all_equal ? 1 : 0;
  t.tokens += int64_t(e.expected.size()) * n;
}

}  // namespace

TEST_CASE("server soak: mixed streaming load; every completed response equals the request alone; memory returns") {
  const char* env = std::getenv("TILLER_SOAK_SECONDS");
  const double seconds = env ? std::atof(env) : 20;
  SchedulerOptions so;
  so.max_batch = 8;
  so.max_queue = 32;
  TestServer s(test::fixtures_dir() / "models" / "llama_gqa", so);
  const int64_t V = s.model->config().vocab_size;

  std::vector<PoolEntry> pool(48);
  std::mt19937_64 rng(2024);
  for (PoolEntry& e : pool) {
    e.prompt = {1};
    const int64_t len = 2 + int64_t(rng() % 50);
    while (int64_t(e.prompt.size()) < len) e.prompt.push_back(int32_t(4 + rng() % uint64_t(V - 4)));
    e.max_tokens = 4 + int64_t(rng() % 40);
    GenerateOptions g;
    g.max_new_tokens = e.max_tokens;
    e.expected = generate(*s.model, e.prompt, g).tokens;  // the server is idle: its model may run here
  }

  Tally t;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> polls{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 12; c++) {
    clients.emplace_back([&, c] {
      std::mt19937_64 r(uint64_t(c) * 7919 + 1);
      while (!stop) {
        const PoolEntry& e = pool[r() % pool.size()];
        const int kind = int(r() % 20);
        one_request(s.port, e, kind < 13, kind % 7 == 0 ? 2 : 1, kind >= 10 && kind < 13, t);
      }
    });
  }
  clients.emplace_back([&] {
    auto http = s.client();
    while (!stop) {
      if (http.Get("/health") && http.Get("/metrics")) polls++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  struct Sample {
    double t;
    int64_t rss;
    int64_t completed;
  };
  std::vector<Sample> curve;
  const auto t0 = Clock::now();
  const double warmup = std::min(5.0, seconds / 4);
  int64_t baseline = 0;
  while (true) {
    const double now = std::chrono::duration<double>(Clock::now() - t0).count();
    curve.push_back({now, resident_bytes(), t.completed.load()});
    if (baseline == 0 && now >= warmup) baseline = curve.back().rss;
    if (now >= seconds) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  stop = true;
  for (auto& th : clients) th.join();
  REQUIRE(s.scheduler->wait_idle(std::chrono::seconds(60)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t end_rss = resident_bytes();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  curve.push_back({elapsed, end_rss, t.completed.load()});

  int64_t peak = 0;
  for (const Sample& x : curve) peak = std::max(peak, x.rss);
  MESSAGE("soak " << seconds << " s: " << t.completed.load() << " responses completed, " << t.equal.load()
                  << " equal to the request alone; " << t.left.load() << " clients left mid-stream, " << t.refused.load()
                  << " got 429, " << t.failed.load() << " failed; " << polls.load() << " health+metrics polls; "
                  << t.tokens.load() << " tokens");
  MESSAGE("resident memory: after warm-up " << baseline / 1048576.0 << " MiB, peak " << peak / 1048576.0 << " MiB, after "
                                            << end_rss / 1048576.0 << " MiB");
  if (const char* report = std::getenv("TILLER_SOAK_REPORT")) {
    std::ofstream f(report);
    for (const Sample& x : curve)
      f << ojson({{"t", x.t}, {"rss_mib", double(x.rss) / 1048576.0}, {"completed", x.completed}}).dump() << "\n";
    f << ojson({{"completed", t.completed.load()}, {"equal", t.equal.load()}, {"left", t.left.load()},
                {"refused", t.refused.load()}, {"failed", t.failed.load()}, {"baseline_mib", double(baseline) / 1048576.0},
                {"peak_mib", double(peak) / 1048576.0}, {"end_mib", double(end_rss) / 1048576.0}})
                 .dump()
      << "\n";
  }
  CHECK(t.completed > 0);
  CHECK(t.equal == t.completed);
  CHECK(t.failed == 0);
  CHECK(t.left > 0);
  const Scheduler::Stats st = s.scheduler->stats();
  CHECK(st.running_requests == 0);
  CHECK(st.kv_blocks_used == st.kv_blocks_cached);
  CHECK(s.server->connection_stats().answering == 0);
#ifndef TILLER_ASAN  // ASan keeps freed memory in quarantine; LeakSanitizer checks leaks there
  CHECK(end_rss - baseline < (24 << 20));
  CHECK(peak - baseline < (64 << 20));
#endif
}

#endif  // TILLER_HAVE_SERVER
