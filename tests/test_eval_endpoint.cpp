// The endpoint judge: against a real `tiller serve` process, against an in-process OpenAI-style
// server whose answers are known (and which can be made to fail midway), and against an
// unreachable URL. Failures give a clear error, keep every answer, and a rerun resumes to the
// items of an uninterrupted run; the answer cache means a rerun never asks twice.
#if TILLER_HAVE_SERVER

#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <thread>

#include "cli_run.h"
#include "engine/json_file.h"
#include "engine/jsonl_appender.h"
#include "eval_models.h"
#include "test_util.h"

using namespace tiller;

namespace {

std::filesystem::path multijail() { return test::shared_dir() / "data" / "safety" / "multijail" / "MultiJail.csv"; }
std::filesystem::path refusal_file() { return test::shared_dir() / "data" / "safety" / "refusal_prefixes.json"; }
bool have_data() { return std::filesystem::exists(test::stories_dir()) && std::filesystem::exists(multijail()); }

std::string eval_args(const std::filesystem::path& out, const std::string& url) {
  return "eval -m " + test::stories_dir().string() + " --device cpu --threads 1 --dataset multijail:" + multijail().string() +
         " --limit 1 --prompt-format raw --max-tokens 16 --judge refusal --refusal-prefixes " + refusal_file().string() +
         " --judge endpoint:" + url + " --judge-retries 1 --judge-concurrency 4 --out " + out.string();
}

std::string slurp(const std::filesystem::path& p) { return std::filesystem::exists(p) ? read_text_file(p) : ""; }

// An OpenAI-style judge: "Harmful" when the answer to judge has an odd length, else "Not Harmful.";
// after `fail_after` answers it returns 503 until healed.
struct FakeJudgeServer {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<int> answered{0};
  std::atomic<int> fail_after{1 << 30};

  FakeJudgeServer() {
    server.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object":"list","data":[{"id":"fake-judge","object":"model"}]})", "application/json");
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (answered >= fail_after) {
        res.status = 503;
        res.set_content(R"({"error":{"message":"overloaded"}})", "application/json");
        return;
      }
      const json body = json::parse(req.body);
      const std::string text = body["messages"].back()["content"];
      const bool harmful = text.size() % 2 == 1;
      answered++;
      const json answer = {{"object", "chat.completion"},
                           {"model", body.value("model", "")},
                           {"choices", {{{"index", 0}, {"finish_reason", "stop"},
                                         {"message", {{"role", "assistant"}, {"content", harmful ? "Harmful" : "Not Harmful."}}}}}}};
      res.set_content(answer.dump(), "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~FakeJudgeServer() {
    server.stop();
    thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/v1"; }
};

}  // namespace

TEST_CASE("eval endpoint judge: unreachable, failing midway, resumed, cached") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const auto root = test::scratch_path("eval-endpoint");
  std::filesystem::remove_all(root);

  // Unreachable: refused before anything is generated.
  const auto dead = test::run_tiller_cli(eval_args(root / "dead", "http://127.0.0.1:1/v1"));
  CHECK(dead.status != 0);
  CHECK(dead.out.find("cannot reach http://127.0.0.1:1/v1/models") != std::string::npos);
  CHECK(!std::filesystem::exists(root / "dead" / "items.jsonl"));

  FakeJudgeServer fake;
  // An uninterrupted run.
  const auto ref = test::run_tiller_cli(eval_args(root / "ref", fake.url()));
  REQUIRE_MESSAGE(ref.status == 0, ref.out);
  const int asked = fake.answered;
  const auto lines = read_jsonl_lines(root / "ref" / "items.jsonl");
  int judged = 0;
  for (const auto& l : lines) {
    const json j = json::parse(l);
    if (j["finish_reason"] == "error") continue;
    const bool harmful = j["response"].get<std::string>().size() % 2 == 1;
    CHECK(j["judges"]["endpoint"]["violation"] == harmful);
    judged++;
  }
  CHECK(judged == asked);
  const json summary = read_json_file(root / "ref" / "summary.json");
  CHECK(summary["judges"]["endpoint"]["stats"]["requests"] == asked);
  CHECK(!summary["agreement"].empty());
  CHECK(ref.out.find("judge agreement refusal vs endpoint") != std::string::npos);

  // The endpoint fails after 3 answers: a clear error, every answer kept.
  fake.answered = 0;
  fake.fail_after = 3;
  const auto failed = test::run_tiller_cli(eval_args(root / "x", fake.url()));
  CHECK(failed.status == 1);
  CHECK(failed.out.find("HTTP 503") != std::string::npos);
  CHECK(failed.out.find("Rerun the same command to go on") != std::string::npos);
  const auto kept = read_jsonl_lines(root / "x" / "items.jsonl");
  CHECK(kept.size() >= 3);
  // Healed: the rerun judges what is left and generates nothing it already has.
  fake.fail_after = 1 << 30;
  const auto resumed = test::run_tiller_cli(eval_args(root / "x", fake.url()));
  REQUIRE_MESSAGE(resumed.status == 0, resumed.out);
  CHECK(slurp(root / "x" / "items.jsonl") == slurp(root / "ref" / "items.jsonl"));
  std::smatch m;
  REQUIRE(std::regex_search(resumed.out, m, std::regex(R"((\d+) answers generated)")));
  CHECK(std::stoi(m[1]) + int(kept.size()) <= int(lines.size()) + 1);

  // A new run with the reference's cache asks the endpoint nothing.
  fake.answered = 0;
  const auto cached = test::run_tiller_cli(eval_args(root / "y", fake.url()) + " --judge-cache " +
                                           (root / "ref" / "judge_cache.jsonl").string());
  REQUIRE_MESSAGE(cached.status == 0, cached.out);
  CHECK(fake.answered == 0);
  CHECK(read_json_file(root / "y" / "summary.json")["judges"]["endpoint"]["stats"]["cached"] == asked);
  std::filesystem::remove_all(root);
}

TEST_CASE("eval endpoint judge: tiller serve as the endpoint") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const auto root = test::scratch_path("eval-serve");
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  const auto log = root / "serve.log";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const std::string cmd = "exec " + std::string(TILLER_BINARY) + " serve -m " + test::stories_dir().string() +
                            " --device cpu --threads 1 --port 0 > " + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  std::string port;
  for (int i = 0; i < 600 && port.empty(); i++) {
    std::smatch m;
    const std::string text = slurp(log);
    if (std::regex_search(text, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) port = m[1];
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE_MESSAGE(!port.empty(), slurp(log));
  const auto r = test::run_tiller_cli(eval_args(root / "out", "http://127.0.0.1:" + port + "/v1"));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE_MESSAGE(r.status == 0, r.out);
  const json s = read_json_file(root / "out" / "summary.json");
  CHECK(s["judges"]["endpoint"]["settings"]["model"] == "stories260K");
  CHECK(s["judges"]["endpoint"]["stats"]["requests"].get<int>() > 0);
  // stories260K answers with a story, not a label: every verdict is recorded as unparsed.
  for (const auto& l : read_jsonl_lines(root / "out" / "items.jsonl")) {
    const json j = json::parse(l);
    if (j["finish_reason"] == "error") continue;
    const json& v = j["judges"]["endpoint"];
    CHECK((v["violation"].is_boolean() || v["detail"].get<std::string>().starts_with("unparsed")));
  }
  std::filesystem::remove_all(root);
}

#endif  // TILLER_HAVE_SERVER
