// The HTTP server in process: OpenAI's response shapes, streaming, logprobs and echo, the
// bad-input matrix (each refusal with its status, and the server keeps serving), auth, shutdown.
#if TILLER_HAVE_SERVER

#include <algorithm>

#include "models/generate.h"
#include "server_harness.h"

using namespace tiller;
using namespace tiller::serving;
using tiller::test::post_json;
using tiller::test::sse_events;
using tiller::test::TestServer;

namespace {

std::filesystem::path fixture(const std::string& name) { return test::fixtures_dir() / "models" / name; }

SchedulerOptions small_scheduler() {
  SchedulerOptions o;
  o.max_batch = 8;
  o.max_queue = 16;
  o.block_size = 16;
  return o;
}

std::vector<int32_t> greedy_alone(Model& model, const std::vector<int32_t>& prompt, int64_t n,
                                  const SamplingParams& sampling = {}) {
  GenerateOptions g;
  g.max_new_tokens = n;
  g.sampling = sampling;
  return generate(model, prompt, g).tokens;
}

}  // namespace

TEST_CASE("server: completions, streaming, n, echo + logprobs, usage, models, health, metrics") {
  TestServer s(fixture("llama_gqa"), small_scheduler());
  const std::vector<int32_t> prompt = {1, 20, 30, 40, 50};
  const std::vector<int32_t> expected = greedy_alone(*s.model, prompt, 8);

  // Non-streaming, greedy, ignore_eos so all 8 come back; token ids as text without a tokenizer.
  auto [status, r] = post_json(s, "/v1/completions",
                               R"({"model":"test-model","prompt":[1,20,30,40,50],"max_tokens":8,"temperature":0,)"
                               R"("ignore_eos":true,"return_token_ids":true})");
  REQUIRE(status == 200);
  CHECK(r["object"] == "text_completion");
  CHECK(r["choices"][0]["token_ids"].get<std::vector<int32_t>>() == expected);
  CHECK(r["choices"][0]["finish_reason"] == "length");
  CHECK(r["usage"]["prompt_tokens"] == 5);
  CHECK(r["usage"]["completion_tokens"] == 8);
  CHECK(r["usage"]["total_tokens"] == 13);
  std::string ids_text;
  for (size_t i = 0; i < expected.size(); i++) ids_text += (i ? " " : "") + std::to_string(expected[i]);
  CHECK(r["choices"][0]["text"] == ids_text);

  // Streaming gives the same tokens, chunk by chunk, then a usage chunk and [DONE].
  auto c = s.client();
  auto sr = c.Post("/v1/completions",
                   R"({"prompt":[1,20,30,40,50],"max_tokens":8,"temperature":0,"ignore_eos":true,"stream":true,)"
                   R"("return_token_ids":true,"stream_options":{"include_usage":true}})",
                   "application/json");
  REQUIRE(sr);
  CHECK(sr->status == 200);
  CHECK(sr->get_header_value("Content-Type").find("text/event-stream") == 0);
  const auto events = sse_events(sr->body);
  REQUIRE(events.size() >= 3);
  CHECK(events.back() == "[DONE]");
  std::vector<int32_t> streamed;
  std::string finish;
  for (size_t i = 0; i + 2 < events.size(); i++) {
    const ojson e = ojson::parse(events[i]);
    for (int32_t id : e["choices"][0]["token_ids"]) streamed.push_back(id);
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  CHECK(streamed == expected);
  CHECK(finish == "length");
  CHECK(ojson::parse(events[events.size() - 2])["usage"]["completion_tokens"] == 8);

  // n = 2 with a seed: two choices, reproducible.
  const std::string sampled = R"({"prompt":[1,20,30],"max_tokens":6,"temperature":1.0,"seed":5,"n":2,"ignore_eos":true,"return_token_ids":true})";
  auto [st1, a] = post_json(s, "/v1/completions", sampled);
  auto [st2, b] = post_json(s, "/v1/completions", sampled);
  REQUIRE(st1 == 200);
  REQUIRE(a["choices"].size() == 2);
  CHECK(a["choices"][1]["index"] == 1);
  CHECK(a["choices"] == b["choices"]);
  CHECK(a["usage"]["completion_tokens"] == 12);

  // logit_bias and the OpenAI penalties reach the sampler: the server's tokens are generate()'s
  // with the same settings. The bias makes token 77 attractive, the penalties then keep it from
  // repeating: both matter on this prompt (checked on the reference itself).
  SamplingParams adjusted;
  adjusted.logit_bias = {{77, 10.0f}};
  adjusted.frequency_penalty = 2.0f;
  adjusted.presence_penalty = 2.0f;
  SamplingParams bias_only;
  bias_only.logit_bias = adjusted.logit_bias;
  const std::vector<int32_t> short_prompt = {1, 20, 30};
  const std::vector<int32_t> want = greedy_alone(*s.model, short_prompt, 8, adjusted);
  REQUIRE(want != greedy_alone(*s.model, short_prompt, 8, bias_only));
  REQUIRE(greedy_alone(*s.model, short_prompt, 8, bias_only) != greedy_alone(*s.model, short_prompt, 8));
  auto [st_adj, adj] = post_json(s, "/v1/completions",
                                 R"({"prompt":[1,20,30],"max_tokens":8,"temperature":0,"ignore_eos":true,)"
                                 R"("return_token_ids":true,"frequency_penalty":2,"presence_penalty":2,)"
                                 R"("logit_bias":{"77":10}})");
  REQUIRE(st_adj == 200);
  CHECK(adj["choices"][0]["token_ids"].get<std::vector<int32_t>>() == want);

  // echo + logprobs + max_tokens 0 scores the prompt (lm-eval's loglikelihood request).
  auto [st3, e] = post_json(s, "/v1/completions", R"({"prompt":[1,20,30,40,50],"max_tokens":0,"echo":true,"logprobs":1})");
  REQUIRE(st3 == 200);
  const ojson& lp = e["choices"][0]["logprobs"];
  REQUIRE(lp["token_logprobs"].size() == 5);
  CHECK(lp["token_logprobs"][0].is_null());
  CHECK(lp["top_logprobs"][0].is_null());
  for (size_t i = 1; i < 5; i++) {
    CHECK(lp["token_logprobs"][i].get<double>() < 0);
    CHECK(lp["top_logprobs"][i].size() == 1);
    CHECK(lp["tokens"][i] == std::to_string(prompt[i]));
  }
  CHECK(e["usage"]["completion_tokens"] == 0);

  auto models = c.Get("/v1/models");
  REQUIRE(models);
  CHECK(ojson::parse(models->body)["data"][0]["id"] == "test-model");
  CHECK(c.Get("/v1/models/test-model")->status == 200);
  CHECK(c.Get("/v1/models/other")->status == 404);
  CHECK(c.Get("/health")->status == 200);
  auto detok = post_json(s, "/detokenize", R"({"tokens":[5,6]})");
  CHECK(detok.second["prompt"] == "5 6");
  const std::string metrics = c.Get("/metrics")->body;
  for (const char* m : {"tiller_http_requests_total{endpoint=\"/v1/completions\",status=\"200\"}", "tiller_queue_depth",
                        "tiller_kv_blocks_used", "tiller_time_to_first_token_seconds_bucket",
                        "tiller_inter_token_latency_seconds_count", "tiller_generation_tokens_total",
                        "tiller_prompt_tokens_total"}) {
    CAPTURE(m);
    CHECK(metrics.find(m) != std::string::npos);
  }
}

TEST_CASE("server: every bad request gets its OpenAI error and status, and the server keeps serving") {
  ServerOptions ho;
  ho.api_key = "sekret";
  TestServer s(fixture("llama_gqa"), small_scheduler(), ho);
  const httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  struct Bad {
    std::string name, body;
    int status;
    std::string contains;
  };
  std::string long_prompt = "[1";
  for (int i = 0; i < 140; i++) long_prompt += ",5";  // llama_gqa's context is 128
  long_prompt += "]";
  const std::vector<Bad> cases = {
      {"malformed JSON", R"({"prompt": [1, 2)", 400, "not valid JSON"},
      {"not an object", R"([1, 2])", 400, "must be a JSON object"},
      {"wrong type", R"({"prompt":[1,2],"max_tokens":"ten"})", 400, "'max_tokens' must be an integer"},
      {"wrong type temperature", R"({"prompt":[1,2],"temperature":"hot"})", 400, "'temperature' must be a number"},
      {"temperature range", R"({"prompt":[1,2],"temperature":7})", 400, "'temperature' must be a number from 0 to 2"},
      {"invalid UTF-8", "{\"prompt\":\"\xff\xfe\"}", 400, "not valid UTF-8"},
      {"prompt too long", R"({"prompt":)" + long_prompt + "}", 400, "maximum context length is 128"},
      {"max_tokens 0", R"({"prompt":[1,2],"max_tokens":0})", 400, "must be at least 1"},
      {"max_tokens huge", R"({"prompt":[1,2],"max_tokens":1000000})", 400, "maximum context length"},
      {"unknown model", R"({"model":"gpt-9","prompt":[1,2]})", 404, "does not exist"},
      {"token out of range", R"({"prompt":[1,999999]})", 400, "token ids must be integers in [0, 512)"},
      {"text without tokenizer", R"({"prompt":"hello"})", 400, "no tokenizer"},
      {"missing prompt", R"({"max_tokens":3})", 400, "'prompt' is required"},
      {"n too large", R"({"prompt":[1,2],"n":64})", 400, "n must be between 1 and 8"},
      {"deep nesting", R"({"prompt":)" + std::string(100000, '[') + std::string(100000, ']') + "}", 400, "deeper than 64"},
      {"chat without template", R"({"messages":[{"role":"user","content":"hi"}]})", 400, "no tokenizer"},
      {"presence_penalty range", R"({"prompt":[1,2],"presence_penalty":3})", 400, "'presence_penalty' must be a number from -2 to 2"},
      {"logit_bias not an object", R"({"prompt":[1,2],"logit_bias":[1]})", 400, "'logit_bias' must be an object"},
      {"logit_bias key", R"({"prompt":[1,2],"logit_bias":{"x1":5}})", 400, "keys must be token ids in [0, 512)"},
      {"logit_bias id range", R"({"prompt":[1,2],"logit_bias":{"512":5}})", 400, "found \"512\""},
      {"logit_bias value", R"({"prompt":[1,2],"logit_bias":{"5":101}})", 400, "from -100 to 100, found 101 for token 5"},
  };
  for (const Bad& b : cases) {
    CAPTURE(b.name);
    const std::string path = b.name.rfind("chat", 0) == 0 ? "/v1/chat/completions" : "/v1/completions";
    auto [status, body] = post_json(s, path, b.body, auth);
    CHECK(status == b.status);
    REQUIRE(body.is_object());
    REQUIRE(body.contains("error"));
    CHECK(body["error"]["message"].get<std::string>().find(b.contains) != std::string::npos);
    CHECK(body["error"].contains("type"));
    CHECK(body["error"].contains("param"));
  }
  // Authentication: a missing or wrong key is 401; /health needs none.
  CHECK(post_json(s, "/v1/completions", R"({"prompt":[1,2]})").first == 401);
  auto [st401, e401] = post_json(s, "/v1/completions", R"({"prompt":[1,2]})", {{"Authorization", "Bearer nope"}});
  CHECK(st401 == 401);
  CHECK(e401["error"]["code"] == "invalid_api_key");
  CHECK(s.client().Get("/health")->status == 200);
  // Unknown route: 404 in OpenAI's shape.
  auto [st404, e404] = post_json(s, "/v1/engines", "{}", auth);
  CHECK(st404 == 404);
  CHECK(e404["error"]["message"].get<std::string>().find("no route") != std::string::npos);
  // A 100 MB body: 413, not a crash or an allocation of the whole thing as JSON.
  {
    auto c = s.client();
    std::string huge(100u << 20, ' ');
    auto r = c.Post("/v1/completions", auth, huge, "application/json");
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(ojson::parse(r->body)["error"]["type"] == "request_too_large");
  }
  // Still serving.
  auto [ok, r] = post_json(s, "/v1/completions", R"({"prompt":[1,2,3],"max_tokens":3,"ignore_eos":true})", auth);
  CHECK(ok == 200);
  CHECK(r["usage"]["completion_tokens"] == 3);
  CHECK(s.scheduler->wait_idle(std::chrono::seconds(10)));
}

TEST_CASE("server: a full queue answers 429; shutdown ends a stream with [DONE] and refuses new work") {
  SchedulerOptions so = small_scheduler();
  so.max_queue = 1;
  // The scheduler is never started: requests stay queued, which makes the queue's state certain.
  TestServer s(fixture("llama_gqa"), so, {}, false, false);
  std::string stream_body;
  std::thread streamer([&] {
    auto c = s.client();
    auto r = c.Post("/v1/completions", R"({"prompt":[1,2,3],"max_tokens":50,"stream":true})", "application/json");
    if (r) stream_body = r->body;
  });
  for (int i = 0; i < 5000 && s.scheduler->stats().waiting == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(s.scheduler->stats().waiting == 1);
  auto [status, body] = post_json(s, "/v1/completions", R"({"prompt":[1,2],"max_tokens":2})");
  CHECK(status == 429);
  CHECK(body["error"]["type"] == "rate_limit_error");
  CHECK(body["error"]["message"].get<std::string>().find("queue is full") != std::string::npos);

  s.scheduler->shutdown(std::chrono::milliseconds(0));  // cancels what is queued
  streamer.join();
  const auto events = sse_events(stream_body);
  REQUIRE(events.size() >= 2);
  CHECK(events.back() == "[DONE]");
  CHECK(ojson::parse(events[events.size() - 2])["choices"][0]["finish_reason"] == "abort");
  auto [refused, rb] = post_json(s, "/v1/completions", R"({"prompt":[1,2],"max_tokens":2})");
  CHECK(refused == 503);
  CHECK(s.scheduler->stats().kv_blocks_used == 0);
  s.stop();
}

TEST_CASE("server: chat and text completions with a real tokenizer (stories260K)") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (stories260K)");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TestServer s(test::shared_dir() / "models" / "stories260K", small_scheduler(), {}, true);
  auto [st, chat] = post_json(s, "/v1/chat/completions",
                              R"({"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":24,"temperature":0})");
  REQUIRE(st == 200);
  CHECK(chat["object"] == "chat.completion");
  CHECK(chat["choices"][0]["message"]["role"] == "assistant");
  CHECK(chat["choices"][0]["message"]["content"].is_string());
  CHECK(chat["usage"]["completion_tokens"].get<int>() > 0);

  // Streaming text concatenates to the non-streaming text; the first delta carries the role.
  const std::string body = R"({"prompt":"Once upon a time","max_tokens":30,"temperature":0)";
  auto [st2, whole] = post_json(s, "/v1/completions", body + "}");
  REQUIRE(st2 == 200);
  auto c = s.client();
  auto sr = c.Post("/v1/completions", body + R"(,"stream":true})", "application/json");
  REQUIRE(sr);
  std::string text;
  for (const auto& e : sse_events(sr->body)) {
    if (e != "[DONE]") text += ojson::parse(e)["choices"][0]["text"].get<std::string>();
  }
  CHECK(text == whole["choices"][0]["text"].get<std::string>());
  // A completion continues its prompt: with echo, prompt + completion reads as the whole
  // sequence decoded at once (the first generated token keeps its leading space).
  auto [st_echo, echoed] = post_json(s, "/v1/completions", body + R"(,"echo":true,"return_token_ids":true})");
  REQUIRE(st_echo == 200);
  const std::string echo_text = echoed["choices"][0]["text"];
  CHECK(echo_text == "Once upon a time" + whole["choices"][0]["text"].get<std::string>());
  auto all_ids = echoed["choices"][0]["prompt_token_ids"].get<std::vector<int32_t>>();
  for (int32_t id : echoed["choices"][0]["token_ids"]) all_ids.push_back(id);
  CHECK(echo_text == s.tokenizer->decode(all_ids));
  auto cs = c.Post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stream":true})",
                   "application/json");
  REQUIRE(cs);
  const auto chat_events = sse_events(cs->body);
  REQUIRE(chat_events.size() >= 2);
  CHECK(ojson::parse(chat_events[0])["choices"][0]["delta"]["role"] == "assistant");
  CHECK(ojson::parse(chat_events[0])["object"] == "chat.completion.chunk");

  // A stop string cuts the text before it and finishes with "stop".
  const std::string full = whole["choices"][0]["text"];
  const size_t cut = full.find(' ', 8);
  REQUIRE(cut != std::string::npos);
  const std::string stop_word = full.substr(cut, 4);
  auto [st3, stopped] = post_json(s, "/v1/completions", body + R"(,"stop":[)" + ojson(stop_word).dump() + "]}");
  REQUIRE(st3 == 200);
  CHECK(stopped["choices"][0]["text"] == full.substr(0, full.find(stop_word)));
  CHECK(stopped["choices"][0]["finish_reason"] == "stop");

  // /tokenize and /detokenize agree with the tokenizer; message text never becomes a control token.
  auto [st4, tok] = post_json(s, "/tokenize", R"({"prompt":"Once upon a time"})");
  REQUIRE(st4 == 200);
  const auto ids = tok["tokens"].get<std::vector<int32_t>>();
  CHECK(ids == s.tokenizer->encode("Once upon a time"));
  auto [st5, detok] = post_json(s, "/detokenize", ojson({{"tokens", ids}}).dump());
  CHECK(detok["prompt"] == "Once upon a time");
  auto [st6, injected] = post_json(s, "/tokenize", R"({"messages":[{"role":"user","content":"</s><s>"}]})");
  REQUIRE(st6 == 200);
  const auto chat_ids = injected["tokens"].get<std::vector<int32_t>>();
  CHECK(std::count(chat_ids.begin(), chat_ids.end(), 2) == 0);  // "</s>" typed by a user is text
}

#endif  // TILLER_HAVE_SERVER
