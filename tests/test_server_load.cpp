// Load on loopback: 64 concurrent streaming clients, some leaving mid-stream. Every completed
// response must carry the tokens of the same request run alone (F32, greedy); nothing is lost,
// departed clients stop costing tokens, and memory and KV blocks return to where they were.
#if TILLER_HAVE_SERVER

#include <atomic>
#include <fstream>

#include "models/generate.h"
#include "server_harness.h"

using namespace tiller;
using namespace tiller::serving;
using tiller::test::TestServer;
using tiller::test::resident_bytes;

namespace {

struct Client {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
  bool leaves = false;             // disconnects after its second event
  std::vector<int32_t> expected;   // generate() alone
  std::vector<int32_t> got;
  std::string finish;
  bool done = false;               // saw [DONE]
  bool transport_ok = false;
};

// Streams one completion, collecting token ids from each event; a leaving client aborts the
// connection after two events.
void run_client(int port, Client& c) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(120, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = ojson({{"prompt", c.prompt}, {"max_tokens", c.max_tokens}, {"temperature", 0}, {"ignore_eos", true},
                    {"stream", true}, {"return_token_ids", true}})
                 .dump();
  std::string buffer;
  int events = 0;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;  // keep-alive comments
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        c.done = true;
        continue;
      }
      const ojson j = ojson::parse(payload);
      for (int32_t id : j["choices"][0]["token_ids"]) c.got.push_back(id);
      if (!j["choices"][0]["finish_reason"].is_null()) c.finish = j["choices"][0]["finish_reason"];
      events++;
    }
    return !(c.leaves && events >= 2);
  };
  httplib::Response res;
  httplib::Error error;
  c.transport_ok = http.send(req, res, error) && res.status == 200;
}

}  // namespace

TEST_CASE("server load: 64 streaming clients, some disconnecting; completed ones match generate() alone") {
  SchedulerOptions so;
  so.max_batch = 16;
  so.max_queue = 128;
  so.block_size = 16;
  TestServer s(test::fixtures_dir() / "models" / "llama_gqa", so);
  const int64_t V = s.model->config().vocab_size;

  std::vector<Client> clients(64);
  for (size_t i = 0; i < clients.size(); i++) {
    Client& c = clients[i];
    Rng rng(1000 + i);
    c.prompt = {1};
    const int64_t len = 2 + int64_t(rng.next() % 40);
    while (int64_t(c.prompt.size()) < len) c.prompt.push_back(int32_t(4 + rng.next() % uint64_t(V - 4)));
    c.leaves = i % 5 == 3;
    c.max_tokens = c.leaves ? 80 : 8 + int64_t(rng.next() % 32);
    if (!c.leaves) {  // the server is idle: its model may run generate() here
      GenerateOptions g;
      g.max_new_tokens = c.max_tokens;
      c.expected = generate(*s.model, c.prompt, g).tokens;
    }
  }

  int64_t rss_after_first = 0;
  uint64_t generated_before = 0;
  for (int round = 0; round < 2; round++) {
    CAPTURE(round);
    for (Client& c : clients) {
      c.got.clear();
      c.finish.clear();
      c.done = c.transport_ok = false;
    }
    generated_before = s.scheduler->stats().generated_tokens;
    const uint64_t cancelled_before = s.scheduler->stats().cancelled;
    std::vector<std::thread> threads;
    for (Client& c : clients) threads.emplace_back([&s, &c] { run_client(s.port, c); });
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& t : threads) t.join();
    MESSAGE("round took " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s, steps " << s.scheduler->stats().steps);
    REQUIRE(s.scheduler->wait_idle(std::chrono::seconds(30)));

    uint64_t completed_tokens = 0;
    int leavers = 0;
    for (size_t i = 0; i < clients.size(); i++) {
      const Client& c = clients[i];
      CAPTURE(i);
      if (c.leaves) {
        leavers++;
        CHECK(!c.done);
        continue;
      }
      CHECK(c.transport_ok);  // no request lost
      CHECK(c.done);
      CHECK(c.finish == "length");
      CHECK(c.got == c.expected);
      completed_tokens += c.got.size();
    }
    const Scheduler::Stats st = s.scheduler->stats();
    CHECK(st.running_requests == 0);
    CHECK(st.waiting == 0);
    CHECK(st.kv_blocks_used == st.kv_blocks_cached);  // every sequence's blocks are free again
    // Departed clients stop costing tokens: their requests end before their 80 tokens. (How
    // many each took depends on how soon the server's next write fails; the bound is loose.)
    const uint64_t generated = st.generated_tokens - generated_before;
    CHECK(generated >= completed_tokens);
    CHECK(generated < completed_tokens + uint64_t(leavers) * 80);
    CHECK(st.cancelled - cancelled_before > 0);
    MESSAGE("round " << round << ": " << leavers << " clients left; their requests took "
                     << generated - completed_tokens << " tokens of " << leavers * 80);
    if (round == 0) rss_after_first = resident_bytes();
  }
  // A second identical round reuses what the first allocated.
#ifndef TILLER_ASAN
  CHECK(resident_bytes() - rss_after_first < (32 << 20));
#else
  (void)rss_after_first;
#endif
  auto metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("tiller_running_sequences 0") != std::string::npos);
}

#endif  // TILLER_HAVE_SERVER
