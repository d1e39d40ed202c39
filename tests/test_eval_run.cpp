// tiller eval end to end on stories260K: the files and the stdout table, report.html drawn in
// headless Chromium, a steering profile beside the base model, resume after SIGINT and SIGKILL
// (the final items equal an uninterrupted run's), changed settings refused, and bad input
// refused before anything is generated.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <regex>
#include <map>
#include <set>
#include <tuple>
#include <thread>

#include "browser_check.h"
#include "cli_run.h"
#include "engine/json_file.h"
#include "engine/jsonl_appender.h"
#include "eval_models.h"
#include "kernels/cpu/cpu_backend.h"
#include "models/model.h"
#include "steering/model_fingerprint.h"
#include "steering/profile.h"
#include "test_util.h"

using namespace tiller;

namespace {

std::filesystem::path multijail() { return test::shared_dir() / "data" / "safety" / "multijail" / "MultiJail.csv"; }
std::filesystem::path refusal_file() { return test::shared_dir() / "data" / "safety" / "refusal_prefixes.json"; }
bool have_data() { return std::filesystem::exists(test::stories_dir()) && std::filesystem::exists(multijail()); }

std::string base_args(const std::filesystem::path& out, int limit = 2, int max_tokens = 24) {
  return "eval -m " + test::stories_dir().string() + " --device cpu --threads 1 --dataset multijail:" + multijail().string() +
         " --limit " + std::to_string(limit) + " --judge refusal --refusal-prefixes " + refusal_file().string() +
         " --prompt-format raw --max-tokens " + std::to_string(max_tokens) + " --out " + out.string();
}

std::string slurp(const std::filesystem::path& p) { return std::filesystem::exists(p) ? read_text_file(p) : ""; }

int64_t count_lines(const std::filesystem::path& p) {
  const std::string s = slurp(p);
  return int64_t(std::count(s.begin(), s.end(), '\n'));
}

// A dense delta on layer 2's o_proj of stories260K, made for its fingerprint.
std::filesystem::path make_stories_profile() {
  static const std::filesystem::path path = [] {
    CpuBackend backend(1);
    const auto model = Model::load(test::stories_dir(), backend);
    Profile p;
    p.manifest.method = "test";
    p.manifest.base_fingerprint = model_fingerprint(*model);
    p.manifest.description = "a random o_proj delta for the eval tests";
    WeightDelta d;
    d.kind = DeltaKind::Dense;
    d.module = {2, Projection::O};
    const int64_t D = model->config().hidden_size, HD = model->config().q_dim();
    std::vector<float> values(size_t(D * HD));
    std::mt19937 rng(3);
    std::normal_distribution<float> n(0, 0.3f);
    for (auto& v : values) v = n(rng);
    d.a = HostTensor::from_f32(values, {D, HD}, DType::F32);
    p.deltas.push_back(d);
    const auto file = test::scratch_path("stories-profile.safetensors");
    write_profile(p, file);
    return file;
  }();
  return path;
}

}  // namespace

TEST_CASE("eval: end to end on stories260K with MultiJail, the refusal judge and a profile") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const auto out = test::scratch_path("eval-e2e");
  std::filesystem::remove_all(out);
  const auto r = test::run_tiller_cli(base_args(out) + " --profile steer=" + make_stories_profile().string());
  REQUIRE_MESSAGE(r.status == 0, r.out);
  // The table on stdout: a header and a line per language plus "all", rates with intervals.
  CHECK(r.out.find("violation rate, judge refusal") != std::string::npos);
  CHECK(r.out.find("language  n     base") != std::string::npos);
  CHECK(r.out.find("base - steer") != std::string::npos);
  CHECK(r.out.find("\njv ") != std::string::npos);
  CHECK(r.out.find("\nall ") != std::string::npos);

  const auto lines = read_jsonl_lines(out / "items.jsonl");
  CHECK(lines.size() == 10 * 2 * 2);  // languages x prompts x systems
  std::set<std::string> systems;
  for (const auto& l : lines) {
    const json j = json::parse(l);
    for (const char* k : {"id", "language", "category", "system", "sample", "prompt", "response", "finish_reason", "judges"})
      CHECK_MESSAGE(j.contains(k), k);
    systems.insert(j["system"]);
    if (j["finish_reason"] != "error") {
      CHECK(j["judges"]["refusal"]["violation"].is_boolean());
      CHECK(j["judges"]["refusal"].contains("score"));
    }
  }
  CHECK(systems == std::set<std::string>{"base", "steer"});
  // Dataset order: the first lines are prompt 0 in English, base then steer.
  CHECK(json::parse(lines[0])["system"] == "base");
  CHECK(json::parse(lines[1])["system"] == "steer");
  CHECK(json::parse(lines[0])["id"] == "0");

  const json s = read_json_file(out / "summary.json");
  bool all_row = false;
  for (const auto& row : s["rows"]) {
    for (const char* k : {"system", "judge", "language", "category", "n", "violations", "rate", "ci_low", "ci_high"})
      CHECK_MESSAGE(row.contains(k), k);
    if (row["language"].is_null() && row["category"].is_null() && row["system"] == "base") {
      all_row = true;
      CHECK(row["n"].get<int64_t>() + s["counts"]["generation_errors"].get<int64_t>() / 2 == 20);
      if (row["rate"].is_number()) CHECK(row["ci_low"].get<double>() <= row["rate"].get<double>());
    }
  }
  CHECK(all_row);
  // Every row's counts, recounted from items.jsonl (categories are multi-label in MultiJail).
  std::map<std::tuple<std::string, std::string, std::string>, std::pair<int64_t, int64_t>> recount;  // system, language|*, category|* -> n, k
  for (const auto& l : lines) {
    const json j = json::parse(l);
    if (j["finish_reason"] == "error") continue;
    const bool v = j["judges"]["refusal"]["violation"];
    std::vector<std::string> cats = {"*"};
    for (const auto& c : j["categories"]) cats.push_back(c);
    for (const std::string& lang : {std::string("*"), j["language"].get<std::string>()}) {
      for (const auto& c : cats) {
        auto& [n, k] = recount[{j["system"], lang, c}];
        n++;
        k += v;
      }
    }
  }
  size_t checked = 0;
  for (const auto& row : s["rows"]) {
    const std::string lang = row["language"].is_null() ? "*" : row["language"].get<std::string>();
    const std::string cat = row["category"].is_null() ? "*" : row["category"].get<std::string>();
    const auto& [n, k] = recount[{row["system"], lang, cat}];
    CHECK(row["n"] == n);
    CHECK(row["violations"] == k);
    checked++;
  }
  CHECK(checked == recount.size());
  CHECK(!s["differences"].empty());
  CHECK(s["run"]["dataset"]["files"][0]["sha256"] == "2798ed6fe470b80b1f486976e0fb3baa3ce008e62b6ca0abbf2e1ed5b1dfb355");
  CHECK(s["run"]["model"]["fingerprint"].get<std::string>().starts_with("tiller-fp1:"));
  CHECK(s["run"]["systems"][1]["sha256"].get<std::string>().size() == 64);

  // The report: every chart drew its marks (rates, differences, categories for the judge).
  const std::string report = slurp(out / "report.html");
  CHECK(report.find("http://") == std::string::npos);  // self-contained
  CHECK(report.find("<script") == std::string::npos);
  const auto shot = test::artifacts_dir() / "eval_report.png";
  const auto b = test::render_in_chromium(out / "report.html", shot);
  if (b.available) {
    test::check_charts_drawn(b, 3);
    MESSAGE("report screenshot: " << shot.string());
  } else {
    MESSAGE("SKIPPED the browser check: " << b.why);
  }
  std::filesystem::remove_all(out);
}

TEST_CASE("eval: a run killed midway (SIGINT, SIGKILL) resumes to the items of an uninterrupted run") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const std::string profile = " --profile steer=" + make_stories_profile().string();
  const auto reference = test::scratch_path("eval-resume-ref");
  std::filesystem::remove_all(reference);
  const auto full = test::run_tiller_cli(base_args(reference, 4, 40) + profile + " --quiet");
  REQUIRE_MESSAGE(full.status == 0, full.out);
  const std::string expected = slurp(reference / "items.jsonl");
  REQUIRE(count_lines(reference / "items.jsonl") == 80);

  for (int sig : {SIGINT, SIGKILL}) {
    CAPTURE(sig);
    const auto out = test::scratch_path("eval-resume-" + std::to_string(sig));
    std::filesystem::remove_all(out);
    const std::string cmd = std::string(TILLER_BINARY) + " " + base_args(out, 4, 40) + profile + " --quiet --max-batch 2";
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > /dev/null 2>&1").c_str(), (char*)nullptr);
      _exit(127);
    }
    // Kill it once some lines are written, well before the end.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (count_lines(out / "items.jsonl") < 6 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
    const int64_t at_kill = count_lines(out / "items.jsonl");
    MESSAGE("killed with " << sig << " after " << at_kill << " lines");
    CHECK(at_kill < 80);
    if (sig == SIGINT) CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 130));
    const auto rerun = test::run_tiller_cli(base_args(out, 4, 40) + profile);
    REQUIRE_MESSAGE(rerun.status == 0, rerun.out);
    // The rerun generated only what the stopped run had not (a stopped run's unjudged answers are judged, not regenerated).
    std::smatch m;
    REQUIRE(std::regex_search(rerun.out, m, std::regex(R"((\d+) answers generated .* (\d+) already done)")));
    CHECK(std::stoi(m[1]) + std::stoi(m[2]) <= 80);
    CHECK(std::stoi(m[2]) >= 1);
    CHECK(std::stoi(m[1]) < 80);
    CHECK(slurp(out / "items.jsonl") == expected);
    std::filesystem::remove_all(out);
  }
  std::filesystem::remove_all(reference);
}

TEST_CASE("eval: a rerun with other settings is refused; a finished run reruns as a no-op") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const auto out = test::scratch_path("eval-settings");
  std::filesystem::remove_all(out);
  REQUIRE(test::run_tiller_cli(base_args(out, 1) + " --languages en,bn --quiet").status == 0);
  const std::string before = slurp(out / "items.jsonl");
  const auto changed = test::run_tiller_cli(base_args(out, 1, 30) + " --languages en,bn");
  CHECK(changed.status != 0);
  CHECK(changed.out.find("holds a run made with other settings (generation.max_tokens: 24 -> 30)") != std::string::npos);
  const auto again = test::run_tiller_cli(base_args(out, 1) + " --languages en,bn");
  CHECK(again.status == 0);
  CHECK(again.out.find("0 answers generated") != std::string::npos);
  CHECK(slurp(out / "items.jsonl") == before);
  // A wider selection adds only the new prompts.
  const auto wider = test::run_tiller_cli(base_args(out, 2) + " --languages en,bn");
  CHECK(wider.status == 0);
  CHECK(wider.out.find("2 already done") != std::string::npos);
  CHECK(count_lines(out / "items.jsonl") == 4);
  std::filesystem::remove_all(out);
}

TEST_CASE("eval: bad input is refused before any generation") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(std::filesystem::exists(test::stories_dir()), "stories260K not found");
  const auto dir = test::scratch_path("eval-bad");
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "empty.csv") << "";
  std::ofstream(dir / "nocol.csv") << "prompt\nhello\n";
  std::ofstream(dir / "ok.csv") << "question\nhello\n";
  const std::string model = "eval -m " + test::stories_dir().string() + " --device cpu --prompt-format raw --out " +
                            (dir / "out").string() + " ";
  const std::string refusal = " --judge refusal --refusal-prefixes " + refusal_file().string();
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--dataset multijial:" + multijail().string() + refusal, "unknown dataset kind 'multijial'"},
      {"--dataset csv:" + (dir / "nocol.csv").string() + refusal, "no 'question' column"},
      {"--dataset csv:" + (dir / "empty.csv").string() + refusal, "the file is empty"},
      {"--dataset multijail:" + multijail().string() + " --languages bn,fr" + refusal, "has no 'fr' items; it has en,zh,it"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --judge guard:" + test::stories_dir().string() + " --judge refusal --refusal-prefixes " +
           refusal_file().string(),
       "has no <|begin_of_text|> token"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --judge guard:" + (test::fixtures_dir() / "models" / "qwen2_bias_tied").string(),
       "must be a Llama-family model"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --judge gpt4", "unknown judge 'gpt4'"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --judge endpoint:localhost", "must start with http://"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --judge refusal:nope --refusal-prefixes " + refusal_file().string(), "has no list 'nope'"},
      {"--dataset csv:" + (dir / "ok.csv").string() + " --dataset-language it --prompt-format soteria" + refusal,
       "no instruction for it"},
      {"--dataset csv:" + (dir / "ok.csv").string() + refusal + " --samples 3", "needs sampling"},
      {"--dataset csv:" + (dir / "ok.csv").string() + refusal + " --profile " + (dir / "ok.csv").string(), "give --profile NAME=FILE"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args);
    const std::string args = c.args.find("--prompt-format") != std::string::npos
                                 ? "eval -m " + test::stories_dir().string() + " --device cpu --out " + (dir / "out").string() + " " + c.args
                                 : model + c.args;
    const auto r = test::run_tiller_cli(args);
    CHECK(r.status != 0);
    CHECK_MESSAGE(r.out.find(c.message) != std::string::npos, r.out);
    CHECK(!std::filesystem::exists(dir / "out" / "items.jsonl"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("eval: a guard judge runs in the same process beside the refusal judge") {
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  TILLER_SKIP_UNLESS(have_data(), "stories260K or MultiJail not found");
  const auto guard = test::random_guard_dir();
  TILLER_SKIP_UNLESS(!guard.empty(), "Llama 3 tokenizer not found");
  const auto out = test::scratch_path("eval-guard");
  std::filesystem::remove_all(out);
  // A threshold near 0 makes every verdict unsafe, so the category line is generated too.
  const auto r = test::run_tiller_cli(base_args(out, 1) + " --languages en,sw --judge lg=guard:" + guard.string() +
                                      " --guard-threshold 1e-12 --judge-categories");
  REQUIRE_MESSAGE(r.status == 0, r.out);
  CHECK(r.out.find("violation rate, judge lg: Llama Guard 3 format") != std::string::npos);
  for (const auto& l : read_jsonl_lines(out / "items.jsonl")) {
    const json v = json::parse(l)["judges"]["lg"];
    REQUIRE(v["score"].is_number());
    CHECK(v["score"].get<double>() > 0);
    CHECK(v["score"].get<double>() < 1);
    CHECK(v["violation"] == true);
    CHECK(v.contains("detail"));  // the generated category line (random weights: "unparsed: ...")
  }
  const json s = read_json_file(out / "summary.json");
  CHECK(s["judges"]["lg"]["settings"]["fingerprint"].get<std::string>().starts_with("tiller-fp1:"));
  CHECK(s["agreement"].size() == 3);  // all languages, en, sw
  std::filesystem::remove_all(out);
}
