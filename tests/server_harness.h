// An in-process tiller server on a free loopback port, and an HTTP client for it (server tests).
#pragma once

#if TILLER_HAVE_SERVER

#include <httplib.h>

#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include "engine/tokenizer/tokenizer.h"
#include "kernels/cpu/cpu_backend.h"
#include "serving/http_server.h"
#include "serving/openai_request.h"
#include "steering/profile_delta.h"
#include "test_util.h"

namespace tiller::test {

// This process's resident memory in bytes (/proc/self/statm), for the servers' memory bounds.
inline int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * 4096;
}

struct TestServer {
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<serving::Scheduler> scheduler;
  std::unique_ptr<serving::ServedModel> served;
  std::unique_ptr<serving::HttpServer> server;
  std::thread thread;
  int port = 0;

  std::unique_ptr<ProfileSet> profiles;  // per-request steering profiles (optional)

  // `make_profiles` (optional) builds the profiles served beside the model; `configure` edits the
  // served model's description (profile list, default, routes) before the server starts.
  TestServer(const std::filesystem::path& dir, serving::SchedulerOptions so, serving::ServerOptions ho = {},
             bool with_tokenizer = false, bool start_scheduler = true,
             const std::function<std::unique_ptr<ProfileSet>(Backend&, const Model&)>& make_profiles = {},
             const std::function<void(serving::ServedModel&)>& configure = {}) {
    backend = std::make_unique<CpuBackend>(1);  // the HTTP threads need the other core
    model = Model::load(dir, *backend);
    if (with_tokenizer) tokenizer = load_tokenizer(dir);
    if (make_profiles) profiles = make_profiles(*backend, *model);
    scheduler = std::make_unique<serving::Scheduler>(*model, so, profiles.get(), profiles ? profiles->size() : 0);
    served = std::make_unique<serving::ServedModel>(
        serving::describe_model(*model, tokenizer.get(), dir, "test-model", scheduler->options().ctx));
    for (int32_t a = 1; profiles && a <= profiles->size(); a++)
      served->profiles.push_back({profiles->name(a), profiles->profile(a).manifest.method, "",
                                  profiles->profile(a).manifest.languages});
    if (configure) configure(*served);
    ho.host = "127.0.0.1";
    ho.port = 0;
    server = std::make_unique<serving::HttpServer>(*served, *scheduler, ho);
    port = server->bind();
    if (start_scheduler) scheduler->start();
    thread = std::thread([this] { server->serve(); });
  }
  ~TestServer() { stop(); }
  void stop() {
    if (!thread.joinable()) return;
    server->shutdown();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    c.set_write_timeout(60, 0);
    return c;
  }
};

// POSTs JSON and returns {status, parsed body}.
inline std::pair<int, serving::ojson> post_json(const TestServer& s, const std::string& path, const std::string& body,
                                                const httplib::Headers& headers = {}) {
  auto c = s.client();
  auto r = c.Post(path.c_str(), headers, body, "application/json");
  REQUIRE_MESSAGE(r, "no response from " << path << ": " << httplib::to_string(r.error()));
  serving::ojson j;
  try {
    j = serving::ojson::parse(r->body);
  } catch (...) {
    j = r->body;
  }
  return {r->status, j};
}

// The `data:` payloads of a server-sent-event body, [DONE] included.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    if (body.compare(pos, 6, "data: ") == 0) out.push_back(body.substr(pos + 6, end - pos - 6));
    pos = end + 2;
  }
  return out;
}

}  // namespace tiller::test

#endif
