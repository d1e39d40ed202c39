// tiller serve: the OpenAI-compatible HTTP server over the continuous-batching scheduler.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/serving_common.h"
#include "cli/stop_signals.h"
#include "engine/error.h"
#if TILLER_HAVE_SERVER
#include "serving/http_server.h"
#endif

namespace tiller::cli {

namespace {

const Command& serve_command() {
  static const Command c{
      "serve",
      "serve the model over an OpenAI-compatible HTTP API (completions, chat, streaming)",
      "tiller serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--max-batch N] [--ctx N] [options]",
      model_flags() + scheduler_flags() + routing_flags() +
          std::vector<Flag>{
              {"--host", "", "ADDR", "address to listen on (0.0.0.0 for every interface)", "127.0.0.1"},
              {"--port", "", "N", "TCP port (0: any free port)", "8080"},
              {"--api-key", "", "KEY", "require 'Authorization: Bearer KEY' on every endpoint but /health", "none"},
              {"--max-queue", "", "N", "requests that may wait for a slot; more get 429", "128"},
              {"--max-body-mb", "", "MB", "largest request body accepted; larger get 413", "16"},
              {"--http-threads", "", "N", "HTTP worker threads (one per request being answered; a stream holds one)", "max-batch + max-queue + 16"},
              {"--shutdown-grace", "", "SECONDS", "on SIGINT/SIGTERM, let running requests finish this long", "10"},
              {"--max-connections", "", "N", "connections open at once (idle ones included); more get 503", "1024"},
              {"--max-header-kb", "", "KB", "largest request line + headers accepted; larger get 431", "64"},
              {"--request-timeout", "", "SECONDS", "a request must arrive whole this soon after its first byte; else 408", "30"},
              {"--idle-timeout", "", "SECONDS", "close a keep-alive connection idle this long", "60"},
              {"--write-timeout", "", "SECONDS", "drop a client that takes no response bytes this long", "30"},
              {"--allowed-origins", "", "LIST", "CORS: comma-separated origins browsers may call from (* for any)", "none"},
          },
      "Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, POST /tokenize,\n"
      "POST /detokenize, GET /health, GET /metrics.\n\n"
      "Steering profiles: --profile FILE merges one into the weights; --profile NAME=FILE (repeatable) serves\n"
      "each beside the base model: a request gets it by naming it as \"model\" (or \"profile\": NAME, or\n"
      "\"base\"), or by language with --route-by-language; NAME 'default' is used when none applies. Every\n"
      "response says which profile answered: the \"tiller\" field and the X-Tiller-Profile header.\n\n"
      "Examples:\n  tiller serve -m ./Qwen2.5-0.5B-Instruct --port 8080\n"
      "  curl localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'"};
  return c;
}

#if TILLER_HAVE_SERVER
int run_serve(const Args& args) {
  StopSignals stop_signals;  // before any thread starts (the backend's pool included)

  serving::ServerOptions so;
  so.host = args.str("--host", "127.0.0.1");
  const int64_t port = args.integer("--port", 8080);
  if (port < 0 || port > 65535) throw UsageError{"--port expects 0..65535, found " + std::to_string(port)};
  so.port = int(port);
  so.api_key = args.str("--api-key");
  const int64_t max_queue = args.integer("--max-queue", 128);
  if (max_queue < 0) throw UsageError{"--max-queue must be >= 0"};
  const double body_mb = args.number("--max-body-mb", 16);
  if (body_mb <= 0) throw UsageError{"--max-body-mb must be positive"};
  so.max_body_bytes = size_t(body_mb * 1024 * 1024);
  so.http_threads = int(args.integer("--http-threads", 0));
  const double grace = args.number("--shutdown-grace", 10);
  if (grace < 0) throw UsageError{"--shutdown-grace must be >= 0"};
  so.shutdown_grace = std::chrono::milliseconds(int64_t(grace * 1000));
  serving::ConnectionOptions& co = so.connections;
  co.max_connections = int(args.integer("--max-connections", co.max_connections));
  if (co.max_connections < 1) throw UsageError{"--max-connections must be at least 1"};
  const int64_t header_kb = args.integer("--max-header-kb", int64_t(co.max_head_bytes >> 10));
  if (header_kb < 1 || header_kb > 65536) throw UsageError{"--max-header-kb expects 1..65536"};
  co.max_head_bytes = size_t(header_kb) << 10;
  auto seconds = [&](const char* flag, std::chrono::milliseconds fallback) {
    const double s = args.number(flag, double(fallback.count()) / 1000);
    if (s <= 0) throw UsageError{std::string(flag) + " must be positive (seconds)"};
    return std::chrono::milliseconds(int64_t(s * 1000));
  };
  co.request_timeout = seconds("--request-timeout", co.request_timeout);
  co.idle_timeout = seconds("--idle-timeout", co.idle_timeout);
  co.write_timeout = seconds("--write-timeout", co.write_timeout);
  for (std::string rest = args.str("--allowed-origins"); !rest.empty();) {
    const size_t comma = rest.find(',');
    if (std::string o = rest.substr(0, comma); !o.empty()) so.allowed_origins.push_back(o);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }

  Session s = open_session(args, false, ProfileUse::PerRow);
  const std::unique_ptr<serving::Scheduler> scheduler = make_scheduler(args, s, max_queue);
  serving::Scheduler& sched = *scheduler;
  const serving::ServedModel model = served_model(args, s, sched.options().ctx);
  serving::HttpServer server(model, sched, so);
  const int bound = server.bind();
  sched.start();

  std::fprintf(stderr, "tiller serve: model '%s' from %s\n%s  queue         %lld requests, %d HTTP threads\n"
                       "  connections   %d at most; requests must arrive within %.0f s, idle ones close after %.0f s\n"
                       "  chat          %s\n  auth          %s\n",
               model.name.c_str(), s.model_dir.c_str(), (settings_summary(sched, s) + routing_summary(model)).c_str(), (long long)max_queue,
               server.options().http_threads, co.max_connections, co.request_timeout.count() / 1000.0,
               co.idle_timeout.count() / 1000.0,
               model.chat_template ? ("template " + model.chat_template->name()).c_str() : model.chat_template_error.c_str(),
               so.api_key.empty() ? "none (--api-key to require one)" : "Bearer key required");
  std::fprintf(stderr, "tiller serve: listening on http://%s:%d (Ctrl-C stops gracefully)\n", so.host.c_str(), bound);
  const bool loopback = so.host.rfind("127.", 0) == 0 || so.host == "::1" || so.host == "localhost";
  if (!loopback && so.api_key.empty())
    std::fprintf(stderr, "tiller serve: warning: listening beyond this machine without --api-key: anyone who can "
                         "reach %s:%d can use the model\n", so.host.c_str(), bound);

  {
    const StopWatcher watcher = stop_signals.watch([&](const char* signal_name) {
      std::fprintf(stderr, "\ntiller serve: %s received; finishing in-flight requests (up to %.0f s), signal again to stop now\n",
                   signal_name, grace);
      server.shutdown();
    });
    server.serve();
  }
  const serving::Scheduler::Stats st = sched.stats();
  std::fprintf(stderr, "tiller serve: stopped after %llu requests (%llu prompt tokens, %llu generated)\n",
               (unsigned long long)st.requests_finished, (unsigned long long)st.prompt_tokens,
               (unsigned long long)st.generated_tokens);
  return 0;
}
#else
int run_serve(const Args&) {
  fail("this tiller was built without the HTTP server (cpp-httplib was not found). Install "
       "libcpp-httplib-dev and reconfigure with -DTILLER_SERVER=ON; `tiller batch` works without it.");
}
#endif

const RegisterSubcommand kRegistered{22, serve_command, run_serve};

}  // namespace
}  // namespace tiller::cli
