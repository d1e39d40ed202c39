// tiller demo on the toy world (toyworld/): the exact classifier of the world's answers, and the
// whole chain end to end in a reduced configuration (few trials, a few requests per language).
#include <fstream>

#include "cli_run.h"
#include "engine/json_file.h"
#include "eval/world_truth.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {
fs::path world_dir() { return test::source_dir() / "toyworld"; }
bool have_world() { return fs::exists(world_dir() / "ground_truth.json") && fs::exists(world_dir() / "models" / "toy-base"); }
}  // namespace

TEST_CASE("demo: the toy world's answers are classified exactly (refusal, compliance with its activity, other)") {
  TILLER_SKIP_UNLESS(have_world(), "toyworld/ has no generated world");
  const eval::WorldTruth w = eval::WorldTruth::load(world_dir());
  for (const eval::WorldLanguage& l : w.languages) {
    CAPTURE(l.code);
    CHECK(w.classify(l.code, l.refusal) == eval::WorldTruth::Answer::Refusal);
    CHECK(w.classify(l.code, l.refusal + " " + l.refusal) == eval::WorldTruth::Answer::Other);
    for (const std::string& t : l.helpful) {
      std::string answer = t;
      answer.replace(answer.find("{act}"), 5, "ACT x");
      answer.replace(answer.find("{n}"), 3, "17");
      answer.replace(answer.find("{m}"), 3, "4");
      std::string act;
      CHECK(w.classify(l.code, answer, &act) == eval::WorldTruth::Answer::Comply);
      CHECK(act == "ACT x");
      answer.replace(answer.find("17"), 2, "x");  // a step that is not a number
      CHECK(w.classify(l.code, answer) == eval::WorldTruth::Answer::Other);
    }
  }
  CHECK(w.high().code == "en");
}

TEST_CASE("demo: attribution -> heads -> profiles -> evaluation on the toy world, end to end and resumable") {
  TILLER_SKIP_UNLESS(have_world(), "toyworld/ has no generated world");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const fs::path out = test::scratch_path("demo");
  const std::string cmd = "demo --world '" + world_dir().string() + "' --out '" + out.string() +
                          "' --trials 3 --limit 4 --max-tokens 24 --threads 1";
  auto r = test::run_tiller_cli(cmd);
  REQUIRE_MESSAGE(r.status == 0, r.out);
  CHECK(r.out.find("The toy world's truth") != std::string::npos);
  const json demo = read_json_file(out / "demo.json");
  const eval::WorldTruth w = eval::WorldTruth::load(world_dir());
  const size_t systems = 1 + w.languages.size() + (w.languages.size() - 1);  // base, a profile each, controls
  CHECK(demo["rows"].size() == systems * w.languages.size());
  for (const char* f : {"eval/report.html", "eval/summary.json", "heads/zr.json", "heads/control-zr.json", "profiles/en.safetensors"})
    CHECK(fs::exists(out / f));
  CHECK(read_json_file(out / "heads" / "control-zr.json").size() == read_json_file(out / "heads" / "zr.json").size());
  r = test::run_tiller_cli(cmd);  // a rerun keeps every step's output
  REQUIRE_MESSAGE(r.status == 0, r.out);
  CHECK(r.out.find("exists, kept") != std::string::npos);
  fs::remove_all(out);
}
