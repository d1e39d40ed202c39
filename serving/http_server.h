// The OpenAI-compatible HTTP server (cpp-httplib) in front of the scheduler: /v1/completions,
// /v1/chat/completions (whole or as server-sent events), /v1/models, /tokenize, /detokenize,
// /health and Prometheus /metrics.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "serving/http_connections.h"
#include "serving/scheduler.h"
#include "serving/served_model.h"

namespace tiller::serving {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                        // 0: any free port (see HttpServer::bind)
  std::string api_key;                    // empty: no authentication
  size_t max_body_bytes = 16u << 20;      // larger bodies get 413
  // Worker threads. Every streaming client holds one for its whole response, so the pool is
  // sized for connections (running + queued requests), not for cores. 0: max_batch + max_queue + 16.
  int http_threads = 0;
  std::chrono::milliseconds shutdown_grace{10000};  // in-flight requests may finish for this long
  // Connections: limits and timeouts (serving/http_connections.h); max_body_bytes and
  // http_threads above override the ones there.
  ConnectionOptions connections;
  // CORS: browsers may call the API from these origins ("*": any); none unless given.
  std::vector<std::string> allowed_origins;
};

class HttpServer {
 public:
  HttpServer(const ServedModel& model, Scheduler& scheduler, const ServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port and returns the port. Throws Error when the address cannot be bound.
  int bind();
  ConnectionStats connection_stats() const;
  // Answers requests until shutdown() (blocks the calling thread).
  void serve();
  // Graceful stop (any thread): generation requests get 503 from now on, running ones finish for
  // up to shutdown_grace and are then cancelled, streams end with [DONE], then the socket closes.
  void shutdown();
  bool draining() const;
  const ServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tiller::serving
