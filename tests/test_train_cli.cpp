// tiller finetune and tiller distill end to end: outputs (profile, PEFT folder, loss log, model
// folder), resume equal to an uninterrupted run, and each refusal the issue names.
#include <filesystem>
#include <fstream>
#include <string>

#include "cli_run.h"
#include "engine/json_file.h"
#include "engine/safetensors.h"
#include "kernels/cpu/cpu_backend.h"
#include "steering/peft_adapter.h"
#include "steering/profile.h"
#include "test_util.h"

using namespace tiller;
namespace fs = std::filesystem;

namespace {

using test::run_tiller_cli;

std::string fixture(const std::string& name) { return (test::fixtures_dir() / "models" / name).string(); }

// A few input_ids examples for a tokenizer-less fixture (vocab 512), loss after the second token.
fs::path ids_data(const std::string& name) {
  const fs::path p = test::scratch_path(name);
  std::ofstream out(p);
  for (int i = 0; i < 6; i++) {
    json j;
    std::vector<int> ids, mask;
    for (int t = 0; t < 9 + 3 * i; t++) ids.push_back(1 + (t * 37 + i * 11) % 500), mask.push_back(t >= 2);
    j["input_ids"] = ids;
    j["completion_mask"] = mask;
    out << j.dump() << "\n";
  }
  return p;
}

std::string common(const fs::path& data, const fs::path& out) {
  return "finetune -m " + fixture("llama_gqa") + " --data " + data.string() + " --out " + out.string() +
         " --threads 1 --no-progress --batch-tokens 40 --seed 3";
}

std::vector<float> tensor_f32(const fs::path& file, const std::string& name) {
  const auto f = SafetensorsFile::open(file);
  const Tensor t = f->view(name);
  return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
}

}  // namespace

TEST_CASE("cli: finetune writes a profile, a PEFT adapter of the same deltas, and the loss curve") {
  const fs::path data = ids_data("ft.jsonl"), out = test::scratch_path("ft.safetensors"),
                 peft = test::scratch_path("ft-peft");
  const auto r = run_tiller_cli(common(data, out) + " --steps 4 --lora-targets q_proj,o_proj,down_proj --peft-out " +
                                peft.string());
  INFO(r.out);
  REQUIRE(r.status == 0);
  const Profile p = read_profile(out);
  CHECK(p.manifest.method == "finetune");
  CHECK(p.deltas.size() == 12);  // 4 layers x 3 targets
  const Profile q = read_peft_adapter(peft);
  REQUIRE(q.deltas.size() == p.deltas.size());
  for (const WeightDelta& d : p.deltas) {
    const auto on = q.deltas_on(d.module);
    REQUIRE(on.size() == 1);
    CHECK(on[0]->a.to_f32() == d.a.to_f32());
    CHECK(on[0]->b.to_f32() == d.b.to_f32());
    CHECK(on[0]->scaling == d.scaling);
  }
  std::ifstream log(test::scratch_path("ft.loss.jsonl"));
  int lines = 0;
  std::string line;
  while (std::getline(log, line)) {
    const json j = json::parse(line);
    CHECK(j["step"] == ++lines);
    CHECK(j.contains("loss"));
    CHECK(j.contains("tokens_per_second"));
  }
  CHECK(lines == 4);
  // The profile applies where profiles apply.
  const auto g = run_tiller_cli("generate -m " + fixture("llama_gqa") + " --tokens 1,5,9 -n 4 --temperature 0 --profile " +
                                out.string() + " --json");
  CHECK(g.status == 0);
}

TEST_CASE("cli: finetune --resume continues to the same result as an uninterrupted run") {
  const fs::path data = ids_data("rs.jsonl");
  const fs::path whole = test::scratch_path("rs-whole.safetensors"), part = test::scratch_path("rs-part.safetensors");
  REQUIRE(run_tiller_cli(common(data, whole) + " --steps 6").status == 0);
  const std::string ckpt = test::scratch_path("rs-ckpt").string();
  // Stopped after 4 of 6 steps (a first run of 4 steps is the same run up to there: the schedule
  // differs, so instead run 6 steps with checkpoints and resume from step 4).
  REQUIRE(run_tiller_cli(common(data, part) + " --steps 6 --checkpoint-every 2 --save-total-limit 0 --checkpoint-dir " +
                         ckpt).status == 0);
  fs::remove(part);
  const auto r = run_tiller_cli(common(data, part) + " --steps 6 --resume " + ckpt + "/checkpoint-4.safetensors");
  INFO(r.out);
  REQUIRE(r.status == 0);
  CHECK(r.out.find("resuming after step 4") != std::string::npos);
  const Profile a = read_profile(whole), b = read_profile(part);
  REQUIRE(a.deltas.size() == b.deltas.size());
  for (size_t i = 0; i < a.deltas.size(); i++) {
    CHECK(a.deltas[i].a.to_f32() == b.deltas[i].a.to_f32());
    CHECK(a.deltas[i].b.to_f32() == b.deltas[i].b.to_f32());
  }
  // Another setting, or another model: refused, saying what differs.
  const auto lr = run_tiller_cli(common(data, part) + " --steps 6 --lr 1e-3 --resume " + ckpt);
  CHECK(lr.status != 0);
  CHECK(lr.out.find("other settings") != std::string::npos);
  CHECK(lr.out.find("\"lr\"") != std::string::npos);
  const auto model = run_tiller_cli("finetune -m " + fixture("mistral_swa") + " --data " + data.string() + " --out " +
                                    part.string() + " --threads 1 --no-progress --batch-tokens 40 --seed 3 --steps 6 "
                                    "--resume " + ckpt);
  CHECK(model.status != 0);
  CHECK(model.out.find("made for another model") != std::string::npos);
}

TEST_CASE("cli: finetune stops on a non-finite loss, keeps the last good state and names the step") {
  const fs::path data = ids_data("nan.jsonl"), out = test::scratch_path("nan.safetensors");
  const std::string ckpt = test::scratch_path("nan-ckpt").string();
  const auto r = run_tiller_cli(common(data, out) + " --train full --steps 30 --lr 1e36 --max-grad-norm 0 "
                                "--lr-scheduler constant --checkpoint-dir " + ckpt);
  INFO(r.out);
  CHECK(r.status != 0);
  CHECK(r.out.find("is not finite") != std::string::npos);
  CHECK(r.out.find("training stopped before updating") != std::string::npos);
  CHECK(r.out.find("checkpoint-") != std::string::npos);
  CHECK(!fs::exists(out));
  bool any = false;
  for (const auto& e : fs::directory_iterator(ckpt)) {
    any = true;
    const auto f = SafetensorsFile::open(e.path());
    for (const auto& [name, info] : f->tensors()) {
      const Tensor t = f->view(info);
      for (int64_t i = 0; i < t.numel(); i++) REQUIRE(std::isfinite(t.ptr<float>()[i]));
    }
  }
  CHECK(any);
}

TEST_CASE("cli: training refuses bad input with what was expected") {
  const fs::path data = ids_data("bad.jsonl"), out = test::scratch_path("bad.safetensors");
  const auto target = run_tiller_cli(common(data, out) + " --lora-targets q_proj,c_attn");
  CHECK(target.status != 0);
  CHECK(target.out.find("'c_attn' is not a projection") != std::string::npos);
  const auto kind = run_tiller_cli(common(data, out) + " --train everything");
  CHECK(kind.out.find("expected lora, columns:HEADS.json or full") != std::string::npos);
  const fs::path heads = test::scratch_path("heads.json");
  std::ofstream(heads) << "[[0, 1], [9, 0]]";
  const auto head = run_tiller_cli(common(data, out) + " --train columns:" + heads.string());
  CHECK(head.status != 0);
  CHECK(head.out.find("9") != std::string::npos);
  const fs::path bad_line = test::scratch_path("badline.jsonl");
  std::ofstream(bad_line) << "{\"input_ids\": [1, 2, 3]}\n{\"question\": \"hi\"}\n";
  const auto fmt = run_tiller_cli(common(bad_line, out));
  CHECK(fmt.out.find("badline.jsonl:2") != std::string::npos);
  CHECK(fmt.out.find("\"messages\", \"prompt\" + \"completion\", \"text\"") != std::string::npos);
  const auto text = run_tiller_cli("finetune -m " + fixture("llama_gqa") + " --data " + bad_line.string() + " --out " +
                                   out.string());
  CHECK(text.status != 0);
}

TEST_CASE("cli: full fine-tune --save-model writes a loadable model; its profile is θ_ft − θ_base for steer soteria") {
  const fs::path data = ids_data("full.jsonl"), out = test::scratch_path("full.safetensors"),
                 dir = test::scratch_path("full-model");
  const auto r = run_tiller_cli(common(data, out) + " --train full --steps 2 --lr 1e-3 --save-model " + dir.string());
  INFO(r.out);
  REQUIRE(r.status == 0);
  // The profile's o_proj delta is exactly the saved model's o_proj minus the base's (F32 model).
  const Profile p = read_profile(out);
  const std::string o = "model.layers.2.self_attn.o_proj.weight";
  const std::vector<float> ft = tensor_f32(dir / "model.safetensors", o), base = tensor_f32(fs::path(fixture("llama_gqa")) / "model.safetensors", o);
  const auto on = p.deltas_on({2, Projection::O});
  REQUIRE(on.size() == 1);
  const std::vector<float> d = on[0]->a.to_f32();
  for (size_t i = 0; i < d.size(); i++) CHECK(d[i] == doctest::Approx(ft[i] - base[i]).epsilon(1e-6).scale(1e-6));
  // tiller steer soteria takes it as --harmful-profile, and gives what --harmful DIR gives.
  const fs::path heads = test::scratch_path("full-heads.json"), a = test::scratch_path("sot-a.safetensors"),
                 b = test::scratch_path("sot-b.safetensors");
  std::ofstream(heads) << "[[2, 1], [3, 0]]";
  const std::string base_args = "steer soteria --base " + fixture("llama_gqa") + " --heads " + heads.string() + " --scale 1";
  REQUIRE(run_tiller_cli(base_args + " --harmful-profile " + out.string() + " --out " + a.string()).status == 0);
  REQUIRE(run_tiller_cli(base_args + " --harmful " + dir.string() + " --out " + b.string()).status == 0);
  const Profile pa = read_profile(a), pb = read_profile(b);
  REQUIRE(pa.deltas.size() == pb.deltas.size());
  for (size_t i = 0; i < pa.deltas.size(); i++) {
    const auto x = pa.deltas[i].a.to_f32(), y = pb.deltas[i].a.to_f32();
    for (size_t k = 0; k < x.size(); k++) CHECK(x[k] == doctest::Approx(y[k]).epsilon(1e-5).scale(1e-6));
  }
}

TEST_CASE("cli: distill trains on a language's queries, keeps a held-out part, and refuses queries without English") {
  TILLER_SKIP_UNLESS(test::have_shared(), "../shared (stories260K, a model with a tokenizer) is not here");
  TILLER_SKIP_WITHOUT_TOKENIZERS();
  const std::string model = (test::shared_dir() / "models" / "stories260K").string();
  const fs::path q = test::scratch_path("q.jsonl"), out = test::scratch_path("msd.safetensors");
  {
    std::ofstream f(q);
    for (int i = 0; i < 10; i++)
      f << json{{"id", std::to_string(i)}, {"prompt", "Il etait une fois un chat " + std::to_string(i)},
                {"english", "Once upon a time there was a cat " + std::to_string(i)}}.dump() << "\n";
  }
  const std::string args = "distill -m " + model + " --queries " + q.string() + " --language fr --chat-template none " +
                           "--queries-per-step 4 --max-new-tokens 8 --threads 1 --no-progress --out " + out.string();
  for (const char* variant : {" --steps 2", " --steps 2 --mode off-policy --divergence jsd:0.5 --dpsw off",
                              " --steps 1 --divergence fkl --divergence-top-k 5 --teacher live --train full"}) {
    CAPTURE(variant);
    const auto r = run_tiller_cli(args + variant);
    INFO(r.out);
    REQUIRE(r.status == 0);
    const Profile p = read_profile(out);
    CHECK(p.manifest.method == "msd");
    CHECK(p.manifest.languages == std::vector<std::string>{"fr"});
  }
  std::ifstream held(test::scratch_path("msd.heldout.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(held, line)) {
    const json j = json::parse(line);
    CHECK(j.contains("english"));
    CHECK(j["language"] == "fr");
    n++;
  }
  CHECK(n == 2);  // --holdout 0.2 of 10
  std::ofstream(q) << json{{"id", "a"}, {"prompt", "x"}, {"english", "y"}}.dump() << "\n"
                   << json{{"id", "b"}, {"prompt", "z"}}.dump() << "\n";
  const auto bad = run_tiller_cli(args + " --steps 1");
  CHECK(bad.status != 0);
  CHECK(bad.out.find("query b (fr) has no English version") != std::string::npos);
}
