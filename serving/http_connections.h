// The HTTP server's connections: one event-loop thread accepts every connection and reads each
// request whole (serving/request_framing.h); a pool of workers answers complete requests. A
// connection holds a worker only while its request is being answered, so idle keep-alive
// connections and clients still sending (byte by byte) cost a file descriptor and a buffer, never
// a worker: hundreds of them delay nobody. The loop enforces the connection limit (503 past it)
// and the timeouts (408 for a request that does not arrive in time, silent close of an idle
// connection, a dropped client that reads nothing), and refuses oversized heads (431) and bodies
// (413) before reading them.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace tiller::serving {

struct ConnectionOptions {
  int max_connections = 1024;                          // open at once; more are answered 503 and closed
  int workers = 64;                                    // requests answered at once (a stream holds one)
  size_t max_head_bytes = 64u << 10;                   // request line + headers; more: 431
  size_t max_body_bytes = 16u << 20;                   // Content-Length past this: 413
  std::chrono::milliseconds request_timeout{30000};   // head and body must arrive within this of the first byte: 408
  std::chrono::milliseconds idle_timeout{60000};      // a keep-alive connection waiting longer is closed
  std::chrono::milliseconds write_timeout{30000};     // a client that takes no bytes this long is dropped
  int keep_alive_max = 1000;                           // requests per connection
  size_t max_buffered_bytes = 256u << 20;             // request bytes all connections may hold in the loop
};

struct ConnectionStats {
  int64_t open = 0;           // connections open now
  int64_t answering = 0;      // of them, requests being answered by a worker
  uint64_t accepted = 0;      // connections accepted since start
  uint64_t refused_full = 0;  // answered 503 at max_connections
  uint64_t timed_out = 0;     // requests that did not arrive within request_timeout (408)
  uint64_t refused = 0;       // heads or bodies refused before reading (400, 413, 431, 501)
};

class ConnectionLoop {
 public:
  // Reads one request from `stream`, writes its response and returns false when the connection
  // cannot go on (httplib's process_request); `closed` is set when the client asked to close.
  using Answer = std::function<bool(httplib::Stream& stream, bool close_after, bool& closed)>;
  // The JSON body of a response the loop sends itself (408, 413, 431, 503, ...).
  using ErrorBody = std::function<std::string(int status, const std::string& message)>;

  ConnectionLoop(const ConnectionOptions& options, Answer answer, ErrorBody error_body);
  ~ConnectionLoop();
  ConnectionLoop(const ConnectionLoop&) = delete;
  ConnectionLoop& operator=(const ConnectionLoop&) = delete;

  // Listens on host:port (0: any free port) and returns the port. Throws Error when the address
  // cannot be bound.
  int bind(const std::string& host, int port);
  // Runs the loop on the calling thread until stop().
  void serve();
  // From any thread: stops accepting, closes connections that wait or are still sending, lets
  // the requests being answered finish, and makes serve() return.
  void stop();
  ConnectionStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tiller::serving
