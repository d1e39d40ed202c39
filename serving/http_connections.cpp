// The connection loop (epoll, level-triggered) and its workers. The loop thread owns every
// connection except while a worker answers its request; workers hand connections back through a
// queue and an eventfd. Deadlines are checked on a 100 ms tick.
#include "serving/http_connections.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/error.h"
#include "serving/request_framing.h"

namespace tiller::serving {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = 64u << 10;         // bytes read per readiness event (fairness)
constexpr milliseconds kLinger{2000};            // a refused connection drains input this long before closing
constexpr milliseconds kTick{100};
constexpr size_t kLingerSlack = 256;             // refused connections lingering beyond max_connections

struct Connection {
  enum class State { Waiting, Reading, Answering, Lingering };
  int fd = -1;
  State state = State::Waiting;
  std::string buffer;           // bytes read and not yet consumed by a request
  size_t searched = 0;          // leading buffer bytes known to hold no end of head
  RequestFrame frame;           // of the request being read, once its head is complete
  Clock::time_point deadline;   // Waiting: idle timeout; Reading: request timeout; Lingering: close
  int served = 0;               // requests answered on this connection
};

// What a worker reads a request from and writes its response to: the bytes the loop already
// read first, then the socket, never past the request's deadline.
class ConnectionStream : public httplib::Stream {
 public:
  ConnectionStream(Connection& c, Clock::time_point read_deadline, milliseconds write_timeout)
      : c_(c), read_deadline_(read_deadline), write_timeout_(write_timeout) {}

  bool is_readable() const override { return pos_ < c_.buffer.size() || wait(POLLIN, read_remaining()); }
  bool is_writable() const override { return wait(POLLOUT, write_timeout_); }

  ssize_t read(char* ptr, size_t size) override {
    if (pos_ < c_.buffer.size()) {
      const size_t n = std::min(size, c_.buffer.size() - pos_);
      std::memcpy(ptr, c_.buffer.data() + pos_, n);
      pos_ += n;
      return ssize_t(n);
    }
    while (true) {
      const ssize_t n = ::recv(c_.fd, ptr, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || !wait(POLLIN, read_remaining())) {
        failed_ = true;
        return -1;
      }
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::send(c_.fd, ptr + done, size - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait(POLLOUT, write_timeout_)) continue;
      failed_ = true;  // the client left, or took nothing for write_timeout
      return -1;
    }
    return ssize_t(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { address(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { address(false, ip, port); }
  // httplib 0.11 answers 500 to a stream whose socket number is FD_SETSIZE or more, because its
  // own streams select() on them. This one polls, so it reports the socket only below that.
  socket_t socket() const override { return c_.fd < FD_SETSIZE ? c_.fd : 0; }

  size_t consumed() const { return pos_; }
  bool failed() const { return failed_; }

 private:
  Connection& c_;
  size_t pos_ = 0;
  Clock::time_point read_deadline_;
  milliseconds write_timeout_;
  mutable bool failed_ = false;

  milliseconds read_remaining() const {
    return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(read_deadline_ - Clock::now()));
  }
  bool wait(short events, milliseconds timeout) const {
    pollfd p{c_.fd, events, 0};
    while (true) {
      const int r = ::poll(&p, 1, int(timeout.count()));
      if (r < 0 && errno == EINTR) continue;
      return r > 0 && (p.revents & events) && !(p.revents & (POLLERR | POLLNVAL));
    }
  }
  void address(bool remote, std::string& ip, int& port) const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int r = remote ? ::getpeername(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len)
                         : ::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&addr), &len);
    char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "0";
    if (r == 0) ::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    ip = host;
    port = std::atoi(serv);
  }
};

const char* status_text(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    default: return "Service Unavailable";
  }
}

}  // namespace

struct ConnectionLoop::Impl {
  ConnectionOptions opt;
  Answer answer;
  ErrorBody error_body;
  FramingLimits limits;

  int listen_fd = -1, epoll_fd = -1, wake_fd = -1;
  std::atomic<bool> stopping{false};
  Clock::time_point listen_paused_until{};  // out of file descriptors: accept again after this

  // Owned by the loop thread (a connection being answered is lent to a worker).
  std::unordered_map<int, std::unique_ptr<Connection>> connections;
  size_t buffered = 0;  // bytes in the buffers of connections the loop holds

  // Loop -> workers, and workers -> loop.
  std::mutex mutex;
  std::condition_variable work_ready;
  std::deque<Connection*> work;
  std::vector<std::pair<Connection*, bool>> returned;  // connection, keep it open
  bool workers_quit = false;
  std::vector<std::thread> workers;

  std::atomic<int64_t> n_open{0}, n_answering{0};
  std::atomic<uint64_t> n_accepted{0}, n_full{0}, n_timed_out{0}, n_refused{0};

  Impl(const ConnectionOptions& o, Answer a, ErrorBody e) : opt(o), answer(std::move(a)), error_body(std::move(e)) {
    limits.max_head_bytes = o.max_head_bytes;
    limits.max_body_bytes = o.max_body_bytes;
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    TILLER_CHECK(epoll_fd >= 0 && wake_fd >= 0, "epoll/eventfd: ", std::strerror(errno));
  }

  ~Impl() {
    for (auto& [fd, c] : connections) ::close(fd);
    for (int fd : {listen_fd, epoll_fd, wake_fd})
      if (fd >= 0) ::close(fd);
  }

  std::string response(int status, const std::string& message) const {
    const std::string body = error_body(status, message);
    return "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\nConnection: close\r\n" + (status == 503 ? "Retry-After: 1\r\n" : "") + "\r\n" + body;
  }

  void watch(int fd, int op) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd, op, fd, &ev);
  }

  void close_connection(Connection& c) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);  // fails harmlessly when not watched
    buffered -= c.buffer.size();
    ::close(c.fd);
    n_open--;
    connections.erase(c.fd);  // destroys c
  }

  // Answers `status` and drains the client's input for a moment before closing, so the response
  // is not lost to a reset (a close with unread input sends RST).
  void refuse(Connection& c, int status, const std::string& message) {
    const std::string text = response(status, message);
    (void)::send(c.fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(c.fd, SHUT_WR);
    buffered -= c.buffer.size();
    c.buffer.clear();
    c.buffer.shrink_to_fit();
    c.state = Connection::State::Lingering;
    c.deadline = Clock::now() + kLinger;
  }

  void accept_all() {
    while (true) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {  // wait for descriptors instead of spinning on the listener
          ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
          listen_paused_until = Clock::now() + std::chrono::seconds(1);
        }
        return;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // streamed tokens are small writes
      n_accepted++;
      n_open++;
      auto c = std::make_unique<Connection>();
      c->fd = fd;
      c->deadline = Clock::now() + opt.idle_timeout;
      Connection& ref = *c;
      connections.emplace(fd, std::move(c));
      watch(fd, EPOLL_CTL_ADD);
      if (connections.size() > size_t(opt.max_connections)) {
        n_full++;
        refuse(ref, 503, "the server has " + std::to_string(opt.max_connections) +
                             " connections open, its --max-connections; retry shortly");
        if (connections.size() > size_t(opt.max_connections) + kLingerSlack) close_connection(ref);
      }
    }
  }

  void readable(Connection& c) {
    char chunk[kReadChunk];
    const ssize_t n = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) {  // the client closed (or reset) the connection
      close_connection(c);
      return;
    }
    if (c.state == Connection::State::Lingering) return;  // discarded
    if (c.state == Connection::State::Waiting) {
      c.state = Connection::State::Reading;
      c.deadline = Clock::now() + opt.request_timeout;
    }
    c.buffer.append(chunk, size_t(n));
    buffered += size_t(n);
    advance(c);
  }

  // Decides what the bytes read so far allow: wait for more, refuse, or hand the request over.
  void advance(Connection& c) {
    if (c.frame.head_length == 0) {
      c.frame = frame_request(c.buffer, limits, c.searched);
      c.searched = c.buffer.size();
    } else if (c.frame.state == RequestFrame::State::Incomplete && c.buffer.size() >= c.frame.length) {
      c.frame.state = RequestFrame::State::Complete;
    }
    switch (c.frame.state) {
      case RequestFrame::State::Refused:
        n_refused++;
        refuse(c, c.frame.status, c.frame.reason);
        return;
      case RequestFrame::State::Incomplete:
        // A large body is read by the worker when the loop already holds too much.
        if (c.frame.head_length > 0 && buffered + (c.frame.length - c.buffer.size()) > opt.max_buffered_bytes) break;
        return;
      case RequestFrame::State::Head:
      case RequestFrame::State::Complete:
        break;
    }
    dispatch(c);
  }

  void dispatch(Connection& c) {
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
    buffered -= c.buffer.size();
    c.state = Connection::State::Answering;
    n_answering++;
    {
      std::lock_guard lock(mutex);
      work.push_back(&c);
    }
    work_ready.notify_one();
  }

  void take_returned() {
    uint64_t ignored;
    (void)!::read(wake_fd, &ignored, sizeof ignored);
    std::vector<std::pair<Connection*, bool>> back;
    {
      std::lock_guard lock(mutex);
      back.swap(returned);
    }
    for (auto [c, keep] : back) {
      n_answering--;
      buffered += c->buffer.size();
      if (!keep || stopping) {
        close_connection(*c);
        continue;
      }
      c->frame = {};
      c->searched = 0;
      c->state = c->buffer.empty() ? Connection::State::Waiting : Connection::State::Reading;
      const auto now = Clock::now();
      c->deadline = now + (c->buffer.empty() ? opt.idle_timeout : opt.request_timeout);
      watch(c->fd, EPOLL_CTL_ADD);
      if (!c->buffer.empty()) advance(*c);  // a pipelined request already arrived
    }
  }

  void sweep(Clock::time_point now) {
    std::vector<Connection*> expired;
    for (auto& [fd, c] : connections)
      if (c->state != Connection::State::Answering && now >= c->deadline) expired.push_back(c.get());
    for (Connection* c : expired) {
      if (c->state == Connection::State::Reading) {
        n_timed_out++;
        refuse(*c, 408, "the request did not arrive within " + std::to_string(opt.request_timeout.count() / 1000) +
                            " s (the server's --request-timeout)");
      } else {
        close_connection(*c);  // idle past idle_timeout, or done lingering
      }
    }
    if (listen_paused_until != Clock::time_point{} && now >= listen_paused_until) {
      listen_paused_until = {};
      watch(listen_fd, EPOLL_CTL_ADD);
    }
  }

  void worker() {
    while (true) {
      Connection* c;
      {
        std::unique_lock lock(mutex);
        work_ready.wait(lock, [&] { return !work.empty() || workers_quit; });
        if (work.empty()) return;
        c = work.front();
        work.pop_front();
      }
      bool keep = false;
      {
        ConnectionStream stream(*c, c->deadline, opt.write_timeout);
        const bool close_after = c->served + 1 >= opt.keep_alive_max || stopping;
        bool closed = false;
        bool ok = false;
        try {
          ok = answer(stream, close_after, closed);
        } catch (...) {  // answer() reports errors as responses; anything else ends the connection
        }
        c->buffer.erase(0, stream.consumed());
        c->served++;
        keep = ok && !closed && !close_after && !stream.failed();
      }
      {
        std::lock_guard lock(mutex);
        returned.emplace_back(c, keep);
      }
      const uint64_t one = 1;
      (void)!::write(wake_fd, &one, sizeof one);
    }
  }
};

ConnectionLoop::ConnectionLoop(const ConnectionOptions& options, Answer answer, ErrorBody error_body)
    : impl_(std::make_unique<Impl>(options, std::move(answer), std::move(error_body))) {}

ConnectionLoop::~ConnectionLoop() = default;

int ConnectionLoop::bind(const std::string& host, int port) {
  Impl& s = *impl_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int r = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found); r != 0)
    fail("cannot listen on ", host, ":", port, ": ", ::gai_strerror(r), "; choose another --host");
  std::string why = "no address";
  for (addrinfo* a = found; a && s.listen_fd < 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1, zero = 0;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
      s.listen_fd = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (s.listen_fd < 0) {
    fail("cannot listen on ", host, ":", port, " (", why, "; the address is in use, or not one of this machine's); "
         "choose another --port or --host");
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void ConnectionLoop::serve() {
  Impl& s = *impl_;
  TILLER_CHECK(s.listen_fd >= 0, "ConnectionLoop::serve before bind");
  // Each connection is a descriptor: take the process's whole allowance (often 1024 by default).
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  s.watch(s.listen_fd, EPOLL_CTL_ADD);
  s.watch(s.wake_fd, EPOLL_CTL_ADD);
  for (int i = 0; i < std::max(1, s.opt.workers); i++) s.workers.emplace_back([&s] { s.worker(); });

  std::vector<epoll_event> events(256);
  auto next_sweep = Clock::now();
  while (!s.stopping) {
    const int n = ::epoll_wait(s.epoll_fd, events.data(), int(events.size()), int(kTick.count()));
    for (int i = 0; i < n; i++) {
      const int fd = events[size_t(i)].data.fd;
      if (fd == s.listen_fd) {
        s.accept_all();
      } else if (fd == s.wake_fd) {
        s.take_returned();
      } else if (auto it = s.connections.find(fd); it != s.connections.end()) {
        s.readable(*it->second);
      }
    }
    const auto now = Clock::now();
    if (now >= next_sweep) {
      s.sweep(now);
      next_sweep = now + kTick;
    }
  }

  // Stop: no new connections; those not being answered close now; the rest finish first.
  ::epoll_ctl(s.epoll_fd, EPOLL_CTL_DEL, s.listen_fd, nullptr);
  ::close(s.listen_fd);
  s.listen_fd = -1;
  std::vector<Connection*> held;
  for (auto& [fd, c] : s.connections)
    if (c->state != Connection::State::Answering) held.push_back(c.get());
  for (Connection* c : held) s.close_connection(*c);
  while (s.n_answering > 0) {
    pollfd p{s.wake_fd, POLLIN, 0};
    ::poll(&p, 1, int(kTick.count()));
    s.take_returned();
  }
  {
    std::lock_guard lock(s.mutex);
    s.workers_quit = true;
  }
  s.work_ready.notify_all();
  for (auto& t : s.workers) t.join();
  s.workers.clear();
}

void ConnectionLoop::stop() {
  impl_->stopping = true;
  const uint64_t one = 1;
  (void)!::write(impl_->wake_fd, &one, sizeof one);
}

ConnectionStats ConnectionLoop::stats() const {
  const Impl& s = *impl_;
  return {s.n_open.load(), s.n_answering.load(), s.n_accepted.load(), s.n_full.load(), s.n_timed_out.load(), s.n_refused.load()};
}

}  // namespace tiller::serving
