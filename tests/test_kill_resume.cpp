// Nothing lost: tiller batch and tiller eval killed with SIGKILL at several moments (before any
// result, after the first, midway, near the end, at random instants) and rerun each time end with
// exactly one whole line per item, equal to an uninterrupted run's; and the JSONL appender they
// write with.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "cli_run.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/jsonl_appender.h"
#include "test_util.h"

extern char** environ;

using namespace tiller;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int64_t complete_lines(const fs::path& p) {
  const std::string s = read_file(p);
  return std::count(s.begin(), s.end(), '\n');
}

// Starts `tiller ARGS...` on its own (stderr to /dev/null); returns its pid.
pid_t start_tiller(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TILLER_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c;
  for (auto& a : argv) c.push_back(a.data());
  c.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, c[0], &fa, nullptr, c.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

pid_t start_batch(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"batch", "--threads", "1", "--quiet"};
  argv.insert(argv.end(), args.begin(), args.end());
  return start_tiller(argv);
}

// Waits for the process; true when it ran to completion with status 0.
bool finished_ok(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("nothing lost: tiller batch killed with SIGKILL at any moment resumes to exactly the missing items") {
  const fs::path model = test::fixtures_dir() / "models" / "llama_gqa";
  const fs::path tmp = test::scratch_path("kill");
  fs::create_directories(tmp);
  const fs::path in = tmp / "in.jsonl", ref = tmp / "reference.jsonl", out = tmp / "out.jsonl";
  const int kItems = 48;
  {
    std::ofstream f(in);
    for (int i = 0; i < kItems; i++) {
      json p = json::array({1});
      for (int k = 0; k < 4 + i % 13; k++) p.push_back(10 + (i * 37 + k * 11) % 400);
      f << json({{"id", i}, {"prompt", p}, {"max_tokens", 20 + i % 17}, {"temperature", 0}, {"ignore_eos", true}}).dump()
        << "\n";
    }
  }
  const std::vector<std::string> common = {"--model", model.string(), "--input", in.string(), "--max-batch", "2"};
  auto args_to = [&](const fs::path& o) {
    auto a = common;
    a.insert(a.end(), {"--output", o.string()});
    return a;
  };
  REQUIRE(finished_ok(start_batch(args_to(ref))));
  std::map<int64_t, json> expected;
  for (const std::string& line : [&] {
         std::vector<std::string> v;
         std::ifstream f(ref);
         for (std::string l; std::getline(f, l);) v.push_back(l);
         return v;
       }())
    expected[json::parse(line)["id"].get<int64_t>()] = json::parse(line);
  REQUIRE(expected.size() == size_t(kItems));

  // Kill points: lines already in the output when the kill comes (0: at once), then random instants.
  std::mt19937 rng(7);
  struct Kill {
    int64_t after_lines;
    int delay_ms;
  };
  const std::vector<Kill> kills = {{0, 0}, {1, 0}, {12, 0}, {-1, 5}, {30, 0}, {-1, 40}, {-1, 90}, {44, 0}};
  int killed = 0, torn_seen = 0;
  for (const Kill& k : kills) {
    const int64_t before = complete_lines(out);
    const pid_t pid = start_batch(args_to(out));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    if (k.after_lines >= 0) {
      while (complete_lines(out) < k.after_lines && std::chrono::steady_clock::now() < until) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(k.delay_ms + int(rng() % 20)));
    }
    if (kill(pid, SIGKILL) == 0) killed++;
    waitpid(pid, nullptr, 0);
    const std::string text = read_file(out);
    if (!text.empty() && text.back() != '\n') torn_seen++;  // the next run cuts it off
    MESSAGE("kill after " << k.after_lines << " lines / " << k.delay_ms << " ms: the output went from " << before
                          << " to " << complete_lines(out) << " whole lines");
  }
  CHECK(killed >= 6);
  REQUIRE(finished_ok(start_batch(args_to(out))));
  // Exactly one whole, parseable line per item, each the uninterrupted run's.
  std::map<int64_t, int> seen;
  std::ifstream f(out);
  for (std::string line; std::getline(f, line);) {
    json j;
    REQUIRE_NOTHROW(j = json::parse(line));
    const int64_t id = j["id"].get<int64_t>();
    seen[id]++;
    CHECK(j == expected[id]);
  }
  CHECK(seen.size() == size_t(kItems));
  for (const auto& [id, n] : seen) {
    CAPTURE(id);
    CHECK(n == 1);
  }
  MESSAGE(killed << " kills, " << torn_seen << " left a torn last line");
  fs::remove_all(tmp);
}

TEST_CASE("jsonl appender: whole lines only; a torn tail is cut at open; complete lines are handed back") {
  const fs::path tmp = test::scratch_path("jsonl");
  fs::create_directories(tmp);
  const fs::path p = tmp / "out.jsonl";
  {
    JsonlAppender a(p);
    a.append(R"({"id":1})");
    a.append(R"({"id":2,"text":"two"})");
    a.sync();
  }
  {
    std::ofstream f(p, std::ios::app);
    f << R"({"id":3,"te)";  // what a kill in the middle of a write leaves
  }
  std::vector<std::string> lines;
  {
    JsonlAppender a(p, [&](std::string_view l) { lines.emplace_back(l); });
    CHECK(a.torn_bytes_cut() == 11);
    a.append(R"({"id":3})");
    CHECK_THROWS_AS(a.append("two\nlines"), Error);
  }
  CHECK(lines == std::vector<std::string>{R"({"id":1})", R"({"id":2,"text":"two"})"});
  CHECK(read_file(p) == "{\"id\":1}\n{\"id\":2,\"text\":\"two\"}\n{\"id\":3}\n");
  // A file of one torn line becomes empty; a missing folder is a clear error.
  {
    std::ofstream f(p, std::ios::trunc);
    f << "{\"half";
  }
  { JsonlAppender a(p); }
  CHECK(fs::file_size(p) == 0);
  CHECK_THROWS_WITH_AS(JsonlAppender(tmp / "no" / "such.jsonl"), doctest::Contains("cannot open for appending"), Error);
  // Long lines go out whole too (one write each).
  {
    JsonlAppender a(p);
    a.append(std::string(1 << 20, 'x'));
  }
  CHECK(fs::file_size(p) == (1u << 20) + 1);
  fs::remove_all(tmp);
}

TEST_CASE("nothing lost: tiller eval killed with SIGKILL at any moment resumes to the uninterrupted items.jsonl") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path stories = test::shared_dir() / "models" / "stories260K";
  const fs::path data = test::shared_dir() / "data" / "safety";
  TILLER_SKIP_UNLESS(fs::exists(stories) && fs::exists(data / "multijail" / "MultiJail.csv"), "stories260K or MultiJail not found");
  const fs::path tmp = test::scratch_path("kill-eval");
  fs::remove_all(tmp);
  auto eval_args = [&](const fs::path& out) {
    return std::vector<std::string>{"eval", "-m", stories.string(), "--device", "cpu", "--threads", "1", "--quiet",
                                    "--dataset", "multijail:" + (data / "multijail" / "MultiJail.csv").string(),
                                    "--limit", "8", "--judge", "refusal", "--refusal-prefixes",
                                    (data / "refusal_prefixes.json").string(), "--prompt-format", "raw",
                                    "--max-tokens", "48", "--max-batch", "2", "--out", out.string()};
  };
  REQUIRE(finished_ok(start_tiller(eval_args(tmp / "reference"))));
  const std::string expected = read_file(tmp / "reference" / "items.jsonl");
  REQUIRE(std::count(expected.begin(), expected.end(), '\n') == 80);

  const fs::path out = tmp / "out", items = out / "items.jsonl";
  std::mt19937 rng(11);
  const std::vector<int64_t> after_lines = {0, 1, 9, -1, 30, -1, -1, 70};  // -1: a random instant
  int killed = 0, torn_seen = 0;
  for (const int64_t k : after_lines) {
    const pid_t pid = start_tiller(eval_args(out));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    if (k >= 0) {
      while (complete_lines(items) < k && std::chrono::steady_clock::now() < until) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + int(rng() % 400)));
    }
    if (kill(pid, SIGKILL) == 0) killed++;
    waitpid(pid, nullptr, 0);
    const std::string text = read_file(items);
    if (!text.empty() && text.back() != '\n') torn_seen++;
    MESSAGE("eval killed after " << k << " lines: " << complete_lines(items) << " whole lines");
  }
  // What a kill inside a write leaves, for certain: a torn last line the next run must cut off.
  std::ofstream(items, std::ios::app) << R"({"id":"7","language":"en","spl)";
  CHECK(killed >= 6);
  REQUIRE(finished_ok(start_tiller(eval_args(out))));
  CHECK(read_file(items) == expected);
  MESSAGE(killed << " kills of tiller eval, " << torn_seen << " left a torn last line");
  fs::remove_all(tmp);
}
