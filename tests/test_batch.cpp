// tiller batch end to end: results in input order equal generate() alone, bad lines reported
// with their line numbers and skipped, and a rerun resumes after a crash without redoing work.
#include <fstream>

#include "engine/json_file.h"
#include "kernels/cpu/cpu_backend.h"
#include "models/generate.h"
#include "cli_run.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

test::CliRun run_batch_cli(const std::string& args) { return test::run_tiller_cli("batch --threads 1 " + args); }

std::vector<json> read_lines(const fs::path& path) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) out.push_back(json::parse(line));
  return out;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); i++) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace

TEST_CASE("batch: input order, generate()'s tokens, bad lines skipped with their numbers, resume") {
  const fs::path dir = test::fixtures_dir() / "models" / "llama_gqa";
  const fs::path tmp = test::scratch_path("batch");
  fs::create_directories(tmp);
  const fs::path in = tmp / "in.jsonl", out = tmp / "out.jsonl";
  std::vector<std::vector<int32_t>> prompts;
  {
    std::ofstream f(in);
    for (int i = 0; i < 12; i++) {
      std::vector<int32_t> p = {1};
      for (int k = 0; k < 3 + i * 5 % 23; k++) p.push_back(10 + (i * 31 + k * 7) % 400);
      prompts.push_back(p);
      f << json({{"id", "q" + std::to_string(i)}, {"prompt", p}, {"max_tokens", 4 + i % 9}, {"temperature", 0},
                 {"ignore_eos", true}})
                .dump()
        << "\n";
      if (i == 2) f << "{\"id\": \"broken\", \"prompt\": [1, 2\n";          // line 4
      if (i == 5) f << "{\"prompt\": [1, 2]}\n";                            // line 8: no id
      if (i == 7) f << "\n" << json({{"id", "q0"}, {"prompt", {1}}}).dump() << "\n";  // line 11 blank, 12: duplicate
    }
  }
  test::CliRun r = run_batch_cli("--model " + dir.string() + " --input " + in.string() + " --output " + out.string() +
                        " --max-batch 4 --batch-tokens 16");
  CHECK(r.status == 0);
  CHECK(r.out.find("in.jsonl:4: the request body is not valid JSON") != std::string::npos);
  CHECK(r.out.find("in.jsonl:8: each line needs an \"id\"") != std::string::npos);
  CHECK(r.out.find("in.jsonl:12: duplicate id \"q0\"") != std::string::npos);
  CHECK(r.out.find("12 written, 0 already done, 3 bad lines") != std::string::npos);

  std::vector<json> lines = read_lines(out);
  REQUIRE(lines.size() == 12);
  CpuBackend backend(1);
  auto model = Model::load(dir, backend);
  for (size_t i = 0; i < lines.size(); i++) {
    CAPTURE(i);
    CHECK(lines[i]["id"] == "q" + std::to_string(i));
    GenerateOptions g;
    g.max_new_tokens = 4 + int64_t(i) % 9;
    CHECK(lines[i]["text"] == ids_text(generate(*model, prompts[i], g).tokens));
    CHECK(lines[i]["prompt_tokens"] == prompts[i].size());
    CHECK(lines[i]["completion_tokens"] == g.max_new_tokens);
    CHECK(lines[i]["finish_reason"] == "length");
  }

  // A crash after 7 results, the 8th half written: the rerun completes exactly the rest.
  {
    std::ofstream f(out, std::ios::trunc);
    for (size_t i = 0; i < 7; i++) f << lines[i].dump() << "\n";
    f << "{\"id\": \"q7\", \"te";
  }
  r = run_batch_cli("--model " + dir.string() + " --input " + in.string() + " --output " + out.string() + " -q");
  CHECK(r.status == 0);
  CHECK(r.out.find("5 written, 7 already done") != std::string::npos);
  const std::vector<json> resumed = read_lines(out);
  REQUIRE(resumed.size() == 12);
  for (size_t i = 0; i < resumed.size(); i++) CHECK(resumed[i] == lines[i]);
  fs::remove_all(tmp);
}

TEST_CASE("batch: chat and text prompts with a real tokenizer (stories260K)") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (stories260K)");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path tmp = test::scratch_path("batch-chat");
  fs::create_directories(tmp);
  const fs::path in = tmp / "in.jsonl", out = tmp / "out.jsonl";
  {
    std::ofstream f(in);
    f << R"({"id": 1, "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 16})" << "\n";
    f << R"({"id": 2, "prompt": "Once upon a time", "temperature": 0.8, "seed": 4, "n": 2})" << "\n";
    f << R"({"id": 3, "messages": "not a list"})" << "\n";
  }
  const test::CliRun r = run_batch_cli("--model " + (test::shared_dir() / "models" / "stories260K").string() + " --input " +
                              in.string() + " --output " + out.string() + " --max-tokens 12");
  CHECK(r.status == 0);
  CHECK(r.out.find("in.jsonl:3: 'messages' must be a non-empty list") != std::string::npos);
  const std::vector<json> lines = read_lines(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["id"] == 1);
  CHECK(lines[0]["text"].get<std::string>().size() > 0);
  CHECK(lines[0]["completion_tokens"].get<int>() <= 16);
  CHECK(lines[1]["choices"].size() == 2);
  CHECK(lines[1]["completion_tokens"].get<int>() <= 24);
  fs::remove_all(tmp);
}
