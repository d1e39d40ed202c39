// The attribution data path: task files, the ICL scaffold and targets (checked token for token
// against the reference script's sentencepiece build), prompts files, bad input, and an end-to-end
// run of `tiller attribute` on stories260K with Soteria's antonym files.
#include <fstream>

#include "cli_run.h"
#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer.h"
#include "steering/attribution_scores.h"
#include "steering/function_task.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

fs::path write_file(const std::string& name, const std::string& text) {
  const fs::path p = test::scratch_path(name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

fs::path stories() { return test::shared_dir() / "models" / "stories260K"; }
fs::path soteria(const std::string& file) { return test::shared_dir() / "data" / "attribution" / "soteria" / file; }

int64_t count_lines(const fs::path& p, const std::string& needle) {
  std::ifstream in(p);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("function task: prompts, targets and slots are built as the reference builds them") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (set TILLER_SHARED): no stories260K tokenizer");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const auto tokenizer = load_tokenizer(stories());
  const PromptBuilder builder(*tokenizer);
  CHECK(builder.start_description() == "BOS 1 (<s>)");
  const json check = read_json_file(test::fixtures_dir() / "attribution" / "stories260k_prompt_check.json");
  for (const json& c : check["prompts"]) {
    CAPTURE(c["language"].get<std::string>());
    std::vector<TaskPair> demos;
    for (const json& d : c["demos"]) demos.push_back({d[0], d[1]});
    const AttributionPrompt p =
        builder.build(demos, {c["query"][0], c["query"][1]}, AttributionPrompt::Kind::Clean, true);
    CHECK(p.tokens == c["tokens"].get<std::vector<int32_t>>());
    CHECK(p.target == c["target"].get<int32_t>());
    CHECK(p.slots == c["slots"].get<std::vector<int32_t>>());
  }
}

TEST_CASE("function task: start of text is the BOS, or the literal <|endoftext|> for models without one") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (set TILLER_SHARED): no tokenizers");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path dir = test::shared_dir() / "data" / "tokenizers";
  const auto qwen = load_tokenizer(dir / "qwen2");
  const std::vector<TaskPair> demos = {{"hot", "cold"}, {"up", "down"}};
  AttributionPrompt p = PromptBuilder(*qwen).build(demos, {"big", "small"}, AttributionPrompt::Kind::Clean, false);
  CHECK(PromptBuilder(*qwen).start_description() == "\"<|endoftext|>\" (151643)");
  CHECK(p.tokens.front() == 151643);
  EncodeOptions plain;
  plain.add_special = false;
  CHECK(std::vector<int32_t>(p.tokens.begin() + 1, p.tokens.end()) ==
        qwen->encode("Q: hot\nA: cold\n\nQ: up\nA: down\n\nQ: big\nA:", plain));
  CHECK(p.target == qwen->encode(" small", plain).front());
  p = PromptBuilder(*qwen, false).build(demos, {"big", "small"}, AttributionPrompt::Kind::Clean, false);
  CHECK(p.tokens.front() == qwen->encode("Q", plain).front());
  const auto llama3 = load_tokenizer(dir / "llama3");
  CHECK(PromptBuilder(*llama3, false).start_description() == "BOS 128000 (<|begin_of_text|>)");
}

TEST_CASE("function task: empty rows are dropped and counted; the split is 70% / 9%, fixed") {
  json rows = json::array();
  for (int i = 0; i < 103; i++) rows.push_back({{"input", "in" + std::to_string(i)}, {"output", "out" + std::to_string(i)}});
  rows[5]["output"] = "";
  rows[17]["input"] = "";
  rows[40]["output"] = "  ";
  const fs::path dir = test::scratch_path("tasks");
  fs::create_directories(dir);
  const fs::path path = dir / "antonym_Klingon.json";
  std::ofstream(path) << rows.dump();
  const TaskSet t = load_task_file(path);
  CHECK(t.task == "antonym");
  CHECK(t.language == "Klingon");
  CHECK(t.rows_total == 103);
  CHECK(t.rows_dropped == 3);
  CHECK(t.train.size() == 70);  // 100 usable: 100 - ceil(30)
  CHECK(t.valid.size() == 9);   // ceil(0.3 · 30)
  const TaskSet again = load_task_file(path, "tlh");
  CHECK(again.language == "tlh");
  CHECK(again.train.front().input == t.train.front().input);
  CHECK(again.valid.back().input == t.valid.back().input);
  for (const TaskPair& v : t.valid) {
    for (const TaskPair& tr : t.train) REQUIRE(v.input != tr.input);
  }
  fs::remove_all(dir);
}

TEST_CASE("function task: bad task and prompts files are refused with the reason") {
  const fs::path malformed = write_file("malformed_English.json", "[{\"input\": \"a\", \"output\": \"b\"},");
  CHECK_THROWS_WITH_AS(load_task_file(malformed), doctest::Contains("malformed JSON"), Error);
  const fs::path not_pairs = write_file("np_English.json", "[{\"input\": \"a\", \"label\": 3}]");
  CHECK_THROWS_WITH_AS(load_task_file(not_pairs), doctest::Contains("row 0 is not {\"input\": str, \"output\": str}"), Error);
  const fs::path empty = write_file("empty_English.json", "[{\"input\": \"a\", \"output\": \"\"}, {\"input\": \"\", \"output\": \"b\"}]");
  CHECK_THROWS_WITH_AS(load_task_file(empty), doctest::Contains("no usable rows: 2 rows, 2 of them with an empty"), Error);

  const std::string gqa = (test::fixtures_dir() / "models" / "llama_gqa").string();
  const fs::path oov = write_file("oov.jsonl", "{\"kind\": \"clean\", \"tokens\": [1, 2], \"target\": 3}\n"
                                              "{\"kind\": \"corrupted\", \"tokens\": [1, 600], \"target\": 3}\n");
  const fs::path out = test::scratch_path("scores.safetensors");
  test::CliRun r = test::run_tiller_cli("attribute --model " + gqa + " --prompts " + oov.string() + " --out " + out.string());
  CHECK(r.status == 1);
  CHECK(r.out.find("line 2: \"tokens\" holds token id 600, outside the model's vocabulary [0, 512)") != std::string::npos);
  r = test::run_tiller_cli("attribute --model " + gqa + " --task " + empty.string() + " --out " + out.string());
  CHECK(r.status == 1);  // the fixture has no tokenizer: refused before the task is read
  CHECK(r.out.find("tokenizer") != std::string::npos);
  const fs::path bad_line = write_file("bad.jsonl", "{\"kind\": \"clean\", \"tokens\": [1, 2]}\n");
  CHECK_THROWS_WITH_AS(read_prompts_jsonl(bad_line, 512, 128), doctest::Contains("line 1: \"target\" is missing"), Error);
  for (const fs::path& p : {malformed, not_pairs, empty, oov, bad_line}) fs::remove(p);
  CHECK(!fs::exists(out));
}

TEST_CASE("attribute: Soteria's antonym files end to end on stories260K (UTF-8, empty rows, resampling, replay)") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared is absent (set TILLER_SHARED): no stories260K");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path out = test::scratch_path("es.safetensors"), dump = test::scratch_path("es.jsonl");
  const fs::path replay = test::scratch_path("replay.safetensors");
  // A short --ctx makes some 10-shot Spanish prompts too long: they are drawn again.
  const std::string run = "attribute -t 1 --model " + stories().string() + " --task " + soteria("antonym_Spanish.json").string() +
                          " --trials 3 --mean-prompts 4 --ctx 200 --seed 3 --out " + out.string();
  test::CliRun r = test::run_tiller_cli(run + " --dump-prompts " + dump.string());
  REQUIRE(r.status == 0);
  CHECK(r.out.find("2398 rows, 2 dropped (empty input or output), 1677 train / 216 valid") != std::string::npos);
  CHECK(r.out.find("#] 120/120  ") != std::string::npos);  // the progress line ends complete
  const AttributionScores s = read_attribution_scores(out);
  CHECK(s.trials == 3);
  CHECK(s.n_layers == 5);
  CHECK(s.n_heads == 8);
  CHECK(s.meta("language") == "Spanish");
  CHECK(s.meta("task") == "antonym");
  CHECK(s.meta("rows_dropped") == "2");
  CHECK(s.meta("start_of_text") == "BOS 1 (<s>)");
  CHECK(s.meta("model_fingerprint").rfind("tiller-fp1:", 0) == 0);
  const int64_t resampled = std::stoll(s.meta("prompts_resampled"));
  CHECK(resampled > 0);
  CHECK(r.out.find(std::to_string(resampled) + " sampled prompts") != std::string::npos);
  CHECK(count_lines(dump, "\"clean\"") == 4);
  CHECK(count_lines(dump, "\"corrupted\"") == 3);
  std::ifstream in(dump);
  for (std::string line; std::getline(in, line);) CHECK(json::parse(line)["tokens"].size() <= 200);

  // Replaying the dumped prompts reproduces the scores exactly.
  r = test::run_tiller_cli("attribute -t 1 -q --model " + stories().string() + " --prompts " + dump.string() +
                           " --task antonym_Spanish.json --out " + replay.string());
  REQUIRE(r.status == 0);
  const AttributionScores again = read_attribution_scores(replay);
  CHECK(again.indirect_effect == s.indirect_effect);
  CHECK(again.meta("language") == "Spanish");
  CHECK(again.meta("model_fingerprint") == s.meta("model_fingerprint"));
  for (const fs::path& p : {out, dump, replay}) fs::remove(p);

  const fs::path bad = write_file("bad_English.json", "[{\"input\": \"hot\", \"output\": \"cold\"}");
  r = test::run_tiller_cli("attribute --model " + stories().string() + " --task " + bad.string() + " --out " + out.string());
  CHECK(r.status == 1);
  CHECK(r.out.find("malformed JSON") != std::string::npos);
  fs::remove(bad);
  CHECK(!fs::exists(out));
}
