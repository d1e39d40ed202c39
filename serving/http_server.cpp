// The HTTP front end: routes, authentication, OpenAI error shapes, streaming, graceful shutdown.
#include "serving/http_server.h"

#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <httplib.h>
#include <thread>

#include "serving/completion_sink.h"
#include "serving/openai_request.h"

namespace tiller::serving {

namespace {

// httplib fixes the listen backlog at 5; dozens of clients connecting at once would then wait
// for SYN retries. Re-listening on the bound socket raises it.
class TunedServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) { ::listen(svr_sock_, backlog); }
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

}  // namespace

struct HttpServer::Impl {
  const ServedModel& model;
  Scheduler& sched;
  ServerOptions opt;
  TunedServer http;
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

  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    if (draining) throw ApiError(503, "the server is shutting down", "", "service_unavailable");
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
    return out;
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      const bool protected_path = req.path.rfind("/v1/", 0) == 0 || req.path == "/tokenize" || req.path == "/detokenize";
      if (opt.api_key.empty() || !protected_path) return httplib::Server::HandlerResponse::Unhandled;
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
      send_json(res, draining ? 503 : 200, {{"status", draining ? "shutting down" : "ok"}});
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
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) { count(req, res); });
  }
};

HttpServer::HttpServer(const ServedModel& model, Scheduler& scheduler, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model, scheduler, options)) {
  Impl& s = *impl_;
  const SchedulerOptions& so = scheduler.options();
  const int threads = options.http_threads > 0 ? options.http_threads : int(so.max_batch + so.max_queue + 16);
  s.opt.http_threads = threads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.http.set_payload_max_length(options.max_body_bytes);
  s.http.set_keep_alive_max_count(1000);
  s.http.set_tcp_nodelay(true);  // streamed tokens are small writes: Nagle would hold each ~40 ms
  s.http.set_read_timeout(30, 0);
  s.http.set_write_timeout(30, 0);
  s.routes();
}

HttpServer::~HttpServer() {
  if (impl_->http.is_running()) impl_->http.stop();
}

int HttpServer::bind() {
  Impl& s = *impl_;
  s.port = s.opt.port == 0 ? s.http.bind_to_any_port(s.opt.host) : (s.http.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1);
  if (s.port < 0) {
    fail("cannot listen on ", s.opt.host, ":", s.opt.port, " (address in use, or not an address of this machine); "
         "choose another --port or --host");
  }
  s.http.raise_backlog(1024);
  return s.port;
}

void HttpServer::serve() { impl_->http.listen_after_bind(); }

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
  s.http.stop();
}

}  // namespace tiller::serving
