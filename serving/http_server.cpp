// The HTTP front end: routes, authentication, OpenAI error shapes, streaming, graceful shutdown.
#include "serving/http_server.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <httplib.h>
#include <thread>

#include "serving/completion_sink.h"
#include "serving/openai_request.h"

namespace tiller::serving {

namespace {

// httplib parses requests and writes responses; connections, timeouts and threads are the
// ConnectionLoop's (serving/http_connections.h), which hands each complete request here.
class TunedServer : public httplib::Server {
 public:
  bool answer(httplib::Stream& stream, bool close_after, bool& closed) {
    last_status = 0;
    const bool ok = process_request(stream, close_after, closed, nullptr);
    // A request httplib could not parse leaves the stream at an unknown place: close it.
    if (last_status == 400 || last_status == 414) closed = true;
    return ok;
  }
  static thread_local int last_status;  // the status of the response just written (set by the logger)
  // httplib stops writing streamed responses once its own listening socket is invalid; it has
  // none here, so it is told one is open while the loop listens.
  void set_listening(bool on) { svr_sock_ = on ? 0 : INVALID_SOCKET; }
};

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const ojson& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& type,
                const std::string& param = {}, const std::string& code = {}) {
  send_json(res, status, error_body(message, type, param, code));
}

const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

int64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * 4096;
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); i++) diff |= uint8_t(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

thread_local int TunedServer::last_status = 0;

}  // namespace

struct HttpServer::Impl {
  const ServedModel& model;
  Scheduler& sched;
  ServerOptions opt;
  TunedServer http;
  std::unique_ptr<ConnectionLoop> connections;
  int port = -1;
  std::atomic<bool> draining{false};
  std::atomic<int> responding{0};  // generation responses still being written
  LabeledCounter requests;
  LabeledCounter profile_requests;  // generation requests by steering profile, detected language and route

  Impl(const ServedModel& m, Scheduler& s, const ServerOptions& o) : model(m), sched(s), opt(o) {}

  // Runs a JSON endpoint: bad input, refusals and bugs all become OpenAI error objects.
  void guarded(const httplib::Request& req, httplib::Response& res,
               const std::function<void(const httplib::Request&, httplib::Response&)>& fn) {
    try {
      fn(req, res);
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.status == 400 || e.status == 404 ? e.type : error_type(e.status), e.param, e.code);
    } catch (const QueueFull& e) {
      res.set_header("Retry-After", "1");
      send_error(res, 429, e.what(), "rate_limit_error");
    } catch (const SchedulerStopped& e) {
      send_error(res, 503, e.what(), "service_unavailable");
    } catch (const Error& e) {  // the scheduler refusing a request it can never run
      send_error(res, 400, e.what(), "invalid_request_error");
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what(), "server_error");
    }
  }

  void count(const httplib::Request& req, const httplib::Response& res) {
    std::string path = req.path.rfind("/v1/models/", 0) == 0 ? "/v1/models/{id}" : req.path;
    static const char* known[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/models/{id}",
                                  "/tokenize", "/detokenize", "/health", "/metrics"};
    if (std::find(std::begin(known), std::end(known), path) == std::end(known)) path = "other";
    requests.add("endpoint=\"" + path + "\",status=\"" + std::to_string(res.status) + "\"");
  }

  // Empty while the weight files on disk are still the ones mapped (checked at most once a
  // second); else why they cannot be trusted, and the server answers 503.
  std::mutex weights_mutex;
  std::chrono::steady_clock::time_point weights_checked{};
  std::string weights_problem;
  std::string weights_changed() {
    std::lock_guard lock(weights_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (weights_problem.empty() && now - weights_checked > std::chrono::seconds(1)) {
      weights_checked = now;
      try {
        model.model->check_files_unchanged("serving");
      } catch (const Error& e) {
        weights_problem = e.what();
        std::fprintf(stderr, "tiller serve: %s\n", e.what());
      }
    }
    return weights_problem;
  }

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    if (draining) throw ApiError(503, "the server is shutting down", "", "service_unavailable");
    if (const std::string why = weights_changed(); !why.empty()) throw ApiError(503, why, "", "service_unavailable");
    const ojson body = parse_body(req.body);
    ApiRequest request = endpoint == Endpoint::Chat ? parse_chat_request(body, model) : parse_completion_request(body, model);
    res.set_header("X-Tiller-Profile", request.profile.profile);
    if (!request.profile.language.empty()) res.set_header("X-Tiller-Language", request.profile.language);
    profile_requests.add("profile=\"" + request.profile.profile + "\",language=\"" + request.profile.language +
                         "\",route=\"" + request.profile.reason + "\"");
    auto sink = std::make_shared<CompletionSink>(model, std::move(request));
    auto ids = std::make_shared<std::vector<uint64_t>>();
    try {
      for (size_t i = 0; i < sink->request().prompts.size(); i++) ids->push_back(sched.submit(sink->generation_request(i)));
    } catch (...) {
      for (uint64_t id : *ids) sched.cancel(id);
      throw;
    }
    const std::string id = response_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
    auto cancel_all = [this, ids] {
      for (uint64_t i : *ids) sched.cancel(i);
    };
    if (!sink->request().stream) {
      // Short requests are answered whole; past a few seconds the body is sent chunked with
      // whitespace before the JSON, so a client that went away is noticed and its work freed.
      std::vector<ChoiceDelta> ignored;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      bool done = false;
      while (!done && std::chrono::steady_clock::now() < until) done = sink->wait(ignored, std::chrono::milliseconds(200));
      if (done) {
        finish_whole(res, *sink, id);
        return;
      }
      responding++;
      res.set_chunked_content_provider(
          "application/json",
          [this, sink, id, cancel_all](size_t, httplib::DataSink& out) {
            std::vector<ChoiceDelta> news;
            if (!sink->wait(news, std::chrono::seconds(2))) {
              if (out.write(" ", 1)) return true;  // whitespace before the JSON is still valid JSON
              cancel_all();
              return false;
            }
            const std::string text = sink->error().empty() ? dump(sink->response(id))
                                                            : dump(error_body(sink->error(), "server_error"));
            out.write(text.data(), text.size());
            out.done();
            return true;
          },
          [this, sink, cancel_all](bool) {
            if (!sink->finished()) cancel_all();
            responding--;
          });
      return;
    }
    responding++;
    auto first = std::make_shared<std::vector<bool>>(size_t(sink->n_choices()), true);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, sink, id, first, cancel_all](size_t, httplib::DataSink& out) {
          std::vector<ChoiceDelta> news;
          const bool done = sink->wait(news, std::chrono::seconds(2));
          std::string text;
          for (const ChoiceDelta& d : news) {
            if (d.finish == FinishReason::Error) {
              text += "data: " + dump(error_body(d.error, "server_error")) + "\n\n";
              continue;
            }
            text += "data: " + dump(sink->stream_chunk(id, d, (*first)[size_t(d.index)])) + "\n\n";
            (*first)[size_t(d.index)] = false;
          }
          if (text.empty() && !done) text = ": keep-alive\n\n";  // notices a client that left
          if (done) {
            if (sink->request().include_usage) text += "data: " + dump(sink->usage_chunk(id)) + "\n\n";
            text += "data: [DONE]\n\n";
          }
          if (!out.write(text.data(), text.size())) {
            cancel_all();
            return false;
          }
          if (done) out.done();
          return true;
        },
        [this, sink, cancel_all](bool) {
          if (!sink->finished()) cancel_all();  // the client disconnected mid-stream
          responding--;
        });
  }

  void finish_whole(httplib::Response& res, const CompletionSink& sink, const std::string& id) {
    if (!sink.error().empty()) send_error(res, 500, "generation failed: " + sink.error(), "server_error");
    else send_json(res, 200, sink.response(id));
  }

  void tokenize(const httplib::Request& req, httplib::Response& res) {
    const ojson body = parse_body(req.body);
    if (auto m = body.find("model"); m != body.end() && m->is_string() && m->get<std::string>() != model.name &&
                                     !model.find_profile(m->get<std::string>()))
      throw ApiError(404, "The model '" + m->get<std::string>() + "' does not exist", "model", "invalid_request_error", "model_not_found");
    std::vector<int32_t> ids;
    if (body.contains("messages")) {
      ids = encode_messages(body["messages"], body.value("tools", ojson()), model);
    } else if (body.contains("prompt") && body["prompt"].is_string()) {
      if (!model.tokenizer) throw ApiError(400, "this model has no tokenizer", "prompt");
      auto special = body.find("add_special_tokens");
      if (special != body.end() && !special->is_boolean())
        throw ApiError(400, "'add_special_tokens' must be true or false", "add_special_tokens");
      const bool add = special == body.end() || special->get<bool>();
      ids = model.tokenizer->encode(body["prompt"].get<std::string>(), {.add_special = add, .parse_special = true});
    } else {
      throw ApiError(400, "give 'prompt' (a string) or 'messages' (a chat)", "prompt");
    }
    send_json(res, 200, {{"count", ids.size()}, {"max_model_len", model.ctx}, {"tokens", ids}});
  }

  void detokenize(const httplib::Request& req, httplib::Response& res) {
    const ojson body = parse_body(req.body);
    auto t = body.find("tokens");
    if (t == body.end() || !t->is_array()) throw ApiError(400, "'tokens' must be a list of token ids", "tokens");
    std::vector<int32_t> ids = encode_prompt(*t, model, "tokens");
    send_json(res, 200, {{"prompt", model.decode(ids)}});
  }

  ojson model_card() const {
    return {{"id", model.name}, {"object", "model"}, {"created", model.created}, {"owned_by", "tiller"},
            {"root", model.name}, {"parent", nullptr}, {"max_model_len", model.ctx}};
  }

  // A steering profile, listed as vLLM lists LoRA adapters: its own id, the base model as parent.
  ojson profile_card(const ServedModel::Profile& p) const {
    return {{"id", p.name}, {"object", "model"}, {"created", model.created}, {"owned_by", "tiller"}, {"root", p.source},
            {"parent", model.name}, {"max_model_len", model.ctx},
            {"tiller", {{"method", p.method}, {"languages", p.languages}}}};
  }

  ojson model_list() const {
    ojson data = ojson::array({model_card()});
    for (const auto& p : model.profiles) data.push_back(profile_card(p));
    return {{"object", "list"}, {"data", data}};
  }

  std::string metrics() const {
    std::string out;
    requests.write(out, "tiller_http_requests_total", "HTTP requests answered, by endpoint and status");
    profile_requests.write(out, "tiller_profile_requests_total",
                           "Generation requests by steering profile applied, detected language and how it was chosen");
    sched.write_metrics(out);
    write_metric(out, "process_resident_memory_bytes", "gauge", "Resident memory of the server process",
                 double(resident_bytes()));
    write_metric(out, "tiller_kv_cache_bytes", "gauge", "Memory of the KV cache", sched.kv_bytes());
    const ConnectionStats c = connections->stats();
    write_metric(out, "tiller_http_connections", "gauge", "HTTP connections open", double(c.open));
    write_metric(out, "tiller_http_connections_refused_total", "counter",
                 "Connections answered 503 at --max-connections", double(c.refused_full));
    write_metric(out, "tiller_http_request_timeouts_total", "counter",
                 "Requests that did not arrive within --request-timeout (408)", double(c.timed_out));
    return out;
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "OPTIONS") return cors_preflight(req, res);  // browsers send no key with it
      // With a key, every endpoint but /health needs it (/metrics and unknown paths included).
      if (opt.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (constant_time_equal(req.get_header_value("Authorization"), "Bearer " + opt.api_key))
        return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401, "Incorrect API key provided. Pass it as 'Authorization: Bearer KEY' (the server's --api-key).",
                 "invalid_request_error", "", "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
    auto post = [this](const char* path, std::function<void(const httplib::Request&, httplib::Response&)> fn) {
      http.Post(path, [this, fn](const httplib::Request& req, httplib::Response& res) { guarded(req, res, fn); });
    };
    post("/v1/completions", [this](auto& q, auto& s) { generate(q, s, Endpoint::Completions); });
    post("/v1/chat/completions", [this](auto& q, auto& s) { generate(q, s, Endpoint::Chat); });
    post("/tokenize", [this](auto& q, auto& s) { tokenize(q, s); });
    post("/detokenize", [this](auto& q, auto& s) { detokenize(q, s); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, model_list()); });
    http.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
      const std::optional<int32_t> profile = model.find_profile(req.matches[1]);
      if (req.matches[1] == model.name) send_json(res, 200, model_card());
      else if (profile) send_json(res, 200, profile_card(model.profiles[size_t(*profile - 1)]));
      else send_error(res, 404, "The model '" + std::string(req.matches[1]) + "' does not exist", "invalid_request_error", "model", "model_not_found");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const std::string weights = weights_changed();
      if (!weights.empty()) send_json(res, 503, {{"status", "weights changed on disk"}, {"detail", weights}});
      else send_json(res, draining ? 503 : 200, {{"status", draining ? "shutting down" : "ok"}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics(), "text/plain; version=0.0.4");
    });
    // Statuses httplib sets itself (404 no route, 413 too large, 400 unreadable) get OpenAI's shape.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string message = "HTTP " + std::to_string(res.status);
      if (res.status == 404) message = "no route " + req.method + " " + req.path;
      if (res.status == 405) message = "method " + req.method + " is not allowed on " + req.path;
      if (res.status == 413) message = "the request body is larger than the server accepts (its --max-body-mb)";
      send_error(res, res.status, message, error_type(res.status));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, 500, "internal error: " + what, "server_error");
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      TunedServer::last_status = res.status;
      count(req, res);
    });
    http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) { cors_headers(req, res); });
  }

  // CORS is off unless --allowed-origins names origins: without its headers a browser page on
  // another origin cannot read the API's answers (a local server stays private to local pages).
  std::string allowed_origin(const httplib::Request& req) const {
    const std::string origin = req.get_header_value("Origin");
    if (origin.empty()) return {};
    for (const std::string& o : opt.allowed_origins)
      if (o == "*" || o == origin) return o == "*" ? "*" : origin;
    return {};
  }
  void cors_headers(const httplib::Request& req, httplib::Response& res) const {
    const std::string origin = allowed_origin(req);
    if (origin.empty()) return;
    res.set_header("Access-Control-Allow-Origin", origin);
    if (origin != "*") res.set_header("Vary", "Origin");
  }
  httplib::Server::HandlerResponse cors_preflight(const httplib::Request& req, httplib::Response& res) const {
    if (allowed_origin(req).empty()) {
      send_error(res, 405, "method OPTIONS is not allowed on " + req.path + " (CORS is off; see --allowed-origins)",
                 "invalid_request_error");
      return httplib::Server::HandlerResponse::Handled;
    }
    res.status = 204;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.set_header("Access-Control-Max-Age", "600");
    return httplib::Server::HandlerResponse::Handled;
  }
};

HttpServer::HttpServer(const ServedModel& model, Scheduler& scheduler, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, scheduler, options)) {
  Impl& s = *impl_;
  const SchedulerOptions& so = scheduler.options();
  const int threads = options.http_threads > 0 ? options.http_threads : int(so.max_batch + so.max_queue + 16);
  s.opt.http_threads = threads;
  ConnectionOptions co = options.connections;
  co.workers = threads;
  co.max_body_bytes = options.max_body_bytes;
  s.opt.connections = co;
  s.http.set_payload_max_length(options.max_body_bytes);  // chunked bodies, which the loop does not size
  s.http.set_keep_alive_max_count(size_t(co.keep_alive_max));  // both only set the Keep-Alive header
  s.http.set_keep_alive_timeout(std::max<time_t>(1, co.idle_timeout.count() / 1000));
  s.routes();
  s.connections = std::make_unique<ConnectionLoop>(
      co, [&s](httplib::Stream& stream, bool close_after, bool& closed) { return s.http.answer(stream, close_after, closed); },
      [](int status, const std::string& message) { return dump(error_body(message, error_type(status))); });
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  Impl& s = *impl_;
  s.port = s.connections->bind(s.opt.host, s.opt.port);
  s.http.set_listening(true);
  return s.port;
}

void HttpServer::serve() { impl_->connections->serve(); }

ConnectionStats HttpServer::connection_stats() const { return impl_->connections->stats(); }

bool HttpServer::draining() const { return impl_->draining; }

const ServerOptions& HttpServer::options() const { return impl_->opt; }

void HttpServer::shutdown() {
  Impl& s = *impl_;
  if (s.draining.exchange(true)) return;
  s.sched.shutdown(s.opt.shutdown_grace);  // finishes or cancels every request
  // Let the response writers send their last chunks and [DONE].
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (s.responding > 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  s.connections->stop();
}

}  // namespace tiller::serving
