// tiller steer soteria / show / merge and --profile end to end, against the HF references of
// tests/fixtures/steering: the merged folder's weights equal HF's steered model bit for bit, and
// tiller's logits on it (and on the base with --profile) match HF's within the F32 tolerance.
#include <cmath>
#include <cstring>
#include <fstream>

#include "cli_run.h"
#include "engine/json_file.h"
#include "engine/npy.h"
#include "engine/safetensors.h"
#include "steering/profile.h"
#include "steering_fixtures.h"
#include "test_util.h"

using namespace tiller;
using namespace tiller::test::steering;
namespace fs = std::filesystem;

namespace {

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

std::string tokens_arg(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); i++) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

// tiller logits --all for prompt i, compared with the reference logits; returns the worst ratio.
double logits_vs(const std::string& model_args, int i, const Tensor& ref) {
  const fs::path out = test::scratch_path("logits" + std::to_string(i) + ".npy");
  const auto r = test::run_tiller_cli("logits " + model_args + " --tokens " + tokens_arg(prompt(i)) + " --all --out " + q(out));
  REQUIRE_MESSAGE(r.status == 0, r.out);
  const std::vector<float> got = read_npy(out).data;
  fs::remove(out);
  REQUIRE(int64_t(got.size()) == ref.numel());
  double worst = 0;
  for (size_t k = 0; k < got.size(); k++) {
    const double v = ref.ptr<float>()[k];
    worst = std::max(worst, std::abs(got[k] - v) / (1e-4 * (1 + std::abs(v))));
  }
  return worst;
}

}  // namespace

TEST_CASE("cli: steer soteria -> show -> merge, and --profile, reproduce HF's steered model") {
  const fs::path profile = test::scratch_path("cli-soteria.safetensors"), merged = test::scratch_path("cli-merged");
  auto r = test::run_tiller_cli("steer soteria --base " + q(base_dir()) + " --harmful " + q(steering_dir() / "llama_gqa_harmful") +
                                " --heads " + q(steering_dir() / "heads.json") + " --scale 1.35 --language bn --out " + q(profile));
  REQUIRE_MESSAGE(r.status == 0, r.out);
  CHECK(r.out.find("16 heads in 4 layers") != std::string::npos);

  r = test::run_tiller_cli("steer show " + q(profile) + " --model " + q(base_dir()));
  REQUIRE_MESSAGE(r.status == 0, r.out);
  CHECK(r.out.find("method       soteria") != std::string::npos);
  CHECK(r.out.find("languages    bn") != std::string::npos);
  CHECK(r.out.find("layer 0: 4 5 6 7") != std::string::npos);
  CHECK(r.out.find("fits ") != std::string::npos);

  r = test::run_tiller_cli("steer merge --model " + q(base_dir()) + " --profile " + q(profile) + " --out " + q(merged));
  REQUIRE_MESSAGE(r.status == 0, r.out);
  const auto ref = SafetensorsFile::open(steering_dir() / "soteria.safetensors");
  const auto out = SafetensorsFile::open(merged / "model.safetensors");
  const auto base = SafetensorsFile::open(base_dir() / "model.safetensors");
  for (const auto& [name, info] : base->tensors()) {
    CAPTURE(name);
    const Tensor got = out->view(name);
    const Tensor want = name.find("o_proj") != std::string::npos ? ref->view(name) : base->view(info);
    REQUIRE(got.nbytes() == want.nbytes());
    CHECK(std::memcmp(got.data, want.data, want.nbytes()) == 0);
  }
  CHECK(fs::exists(merged / "config.json"));
  CHECK(fs::exists(merged / "generation_config.json"));
  CHECK(out->metadata().count("tiller_merged_profile") == 1);

  for (int i = 0; i < 3; i++) {
    CAPTURE(i);
    const Tensor want = ref->view("prompt." + std::to_string(i) + ".logits");
    CHECK(logits_vs("--model " + q(merged), i, want) <= 1.0);
    CHECK(logits_vs("--model " + q(base_dir()) + " --profile " + q(profile), i, want) <= 1.0);
  }

  r = test::run_tiller_cli("steer merge --model " + q(base_dir()) + " --profile " + q(profile) + " --out " + q(merged));
  CHECK(r.status == 1);
  CHECK(r.out.find("already holds a model") != std::string::npos);
  fs::remove_all(merged);
  fs::remove(profile);
}

TEST_CASE("cli: --harmful-profile takes theta_ft - theta_base from a fine-tune's delta") {
  // The PEFT adapter as the fine-tune: the profile must be -S x (scaling B A) on the heads' columns.
  const fs::path profile = test::scratch_path("cli-from-delta.safetensors");
  auto r = test::run_tiller_cli("steer soteria --base " + q(base_dir()) + " --harmful-profile " + q(steering_dir() / "peft_lora") +
                                " --heads " + q(steering_dir() / "heads.json") + " --scale 2.5 --out " + q(profile));
  REQUIRE_MESSAGE(r.status == 0, r.out);
  const Profile got = read_profile(profile), lora = peft_profile();
  REQUIRE(got.deltas.size() == 4);
  for (const WeightDelta& d : got.deltas) {
    const std::vector<float> dw = weight_delta_f32(lora, d.module, 64, 128);
    const std::vector<float> cols = d.a.to_f32();
    const int64_t k = int64_t(d.blocks.size());
    double worst = 0;
    for (int64_t i = 0; i < 64; i++)
      for (int64_t j = 0; j < k; j++)
        for (int64_t e = 0; e < 16; e++)
          worst = std::max(worst, double(std::abs(cols[size_t((i * k + j) * 16 + e)] +
                                                   2.5f * dw[size_t(i * 128 + d.blocks[size_t(j)] * 16 + e)])));
    CHECK(worst <= 1e-6);
  }
  fs::remove(profile);
}

TEST_CASE("cli: --profile errors, and batch lines choosing profiles") {
  const fs::path profile = test::scratch_path("cli-p.safetensors");
  write_profile(dense_bias_profile(), profile);
  auto r = test::run_tiller_cli("generate --model " + q(base_dir()) + " --tokens 1,2,3 -n 2 --profile a=" + profile.string());
  CHECK(r.status == 2);
  CHECK(r.out.find("give --profile FILE") != std::string::npos);
  r = test::run_tiller_cli("generate --model " + q(test::fixtures_dir() / "models" / "llama_gqa_bf16") + " --tokens 1,2,3 -n 2 --profile " +
                           q(profile));
  CHECK(r.status == 1);
  CHECK(r.out.find("--allow-fingerprint-mismatch") != std::string::npos);
  r = test::run_tiller_cli("generate --model " + q(base_dir()) + " --tokens 1,2,3 -n 2 --profile " + q(base_dir() / "model.safetensors"));
  CHECK(r.status == 1);
  CHECK(r.out.find("not a steering profile") != std::string::npos);

  const fs::path in = test::scratch_path("batch-in.jsonl"), out = test::scratch_path("batch-out.jsonl");
  std::ofstream(in) << R"({"id": 1, "prompt": [1, 5, 9], "max_tokens": 3, "profile": "v"})" << "\n"
                    << R"({"id": 2, "prompt": [1, 5, 9], "max_tokens": 3})" << "\n"
                    << R"({"id": 3, "prompt": [1, 5, 9], "max_tokens": 3, "profile": "nope"})" << "\n";
  r = test::run_tiller_cli("batch --model " + q(base_dir()) + " --profile v=" + profile.string() + " -i " + q(in) + " -o " + q(out) +
                           " -q --threads 1");
  CHECK(r.status == 0);
  CHECK(r.out.find("line 3") == std::string::npos);  // reported as batch.jsonl:3
  CHECK(r.out.find(":3: The profile 'nope' does not exist") != std::string::npos);
  std::ifstream f(out);
  std::string l1, l2;
  std::getline(f, l1);
  std::getline(f, l2);
  CHECK(json::parse(l1)["profile"] == "v");
  CHECK(!json::parse(l2).contains("profile"));
  fs::remove(in);
  fs::remove(out);
  fs::remove(profile);
}
