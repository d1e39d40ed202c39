// Steering profiles against independent references (tests/fixtures/make_steering_fixtures.py):
// Soteria's arithmetic applied by HF transformers, a PEFT LoRA adapter run by PEFT, and a dense
// and a bias delta applied by torch. Every profile runs merged and per row, on every backend of
// test::model_backends(), within the F32 parity tolerance |Δ| <= 1e-4·(1 + |ref|).
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "steering/model_fingerprint.h"
#include "steering/peft_adapter.h"
#include "steering/profile_delta.h"
#include "steering/soteria.h"
#include "test_backends.h"
#include "cli_run.h"
#include "steering_fixtures.h"
#include "test_util.h"

using namespace tiller;
using namespace tiller::test::steering;

namespace {

// Every position's logits of one prompt, its rows tagged with `adapter`.  [T, V]
std::vector<float> logits(Model& model, const std::vector<int32_t>& ids, ProjectionDelta* delta = nullptr,
                          int32_t adapter = 0) {
  KvCache kv(model.backend(), model.kv_cache_options(int64_t(ids.size())));
  const SeqId seq = kv.create();
  Batch batch;
  for (size_t i = 0; i < ids.size(); i++) batch.add(ids[i], seq, int32_t(i), true, adapter);
  ForwardOptions fo;
  fo.delta = delta;
  return test::download_f32(model.backend(), model.forward(batch, kv, fo));
}

// Worst |Δ| / (1e-4 · (1 + |ref|)); at most 1 passes.
double worst_ratio(const std::vector<float>& got, const Tensor& ref) {
  REQUIRE(int64_t(got.size()) == ref.numel());
  double worst = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double r = ref.ptr<float>()[i];
    if (!std::isfinite(got[i])) return INFINITY;
    worst = std::max(worst, std::abs(got[i] - r) / (1e-4 * (1 + std::abs(r))));
  }
  return worst;
}


// The references: logits "prefix.prompt.i.logits" in `file`. Checks the profile merged and per row,
// and that it moved the logits far beyond the tolerance (so the test can fail).
void check_profile_against(const Profile& profile, const std::string& file, const std::string& prefix = "") {
  const auto ref = SafetensorsFile::open(steering_dir() / file);
  for (const test::BackendCase& bc : test::model_backends()) {
    CAPTURE(bc.name);
    auto backend = bc.make();
    auto merged = Model::load(base_dir(), *backend);
    check_profile_fits(profile, merged->config(), model_fingerprint(*merged), false, {});
    merge_profile(*merged, profile);
    auto plain = Model::load(base_dir(), *backend);
    ProfileSet set(*backend, plain->config());
    const int32_t id = set.add("p", std::make_shared<Profile>(profile));
    for (int i = 0; i < 3; i++) {
      CAPTURE(i);
      const Tensor r = ref->view(prefix + "prompt." + std::to_string(i) + ".logits");
      const double m = worst_ratio(logits(*merged, prompt(i)), r), row = worst_ratio(logits(*plain, prompt(i), &set, id), r);
      const double base = worst_ratio(logits(*plain, prompt(i)), r);
      INFO("merged " << m << ", per row " << row << ", unsteered base " << base << " (x tolerance)");
      CHECK(m <= 1.0);
      CHECK(row <= 1.0);
      CHECK(base >= 100.0);
    }
  }
}

}  // namespace

TEST_CASE("steering: Soteria's profile equals HF's steered model (weights bit for bit, logits merged and per row)") {
  const Profile p = soteria_fixture_profile();
  REQUIRE(p.deltas.size() == 4);  // one column-block delta per layer, only o_proj
  const auto ref = SafetensorsFile::open(steering_dir() / "soteria.safetensors");
  auto backend = make_backend("cpu", 1);
  auto model = Model::load(base_dir(), *backend);
  merge_profile(*model, p);
  for (int l = 0; l < 4; l++) {
    const Tensor r = ref->view("model.layers." + std::to_string(l) + ".self_attn.o_proj.weight");
    const Tensor& w = model->projection_weight(l, Projection::O);
    CHECK(std::memcmp(w.data, r.data, r.nbytes()) == 0);
  }
  check_profile_against(p, "soteria.safetensors");
}

TEST_CASE("steering: profile files round-trip, and the manifest records what made them") {
  const Profile p = soteria_fixture_profile();
  const auto path = test::scratch_path("soteria.safetensors");
  write_profile(p, path);
  const Profile q = read_profile(path);
  CHECK(q.manifest.method == "soteria");
  CHECK(q.manifest.languages == std::vector<std::string>{"xx"});
  CHECK(q.manifest.scale.value_or(0) == doctest::Approx(1.35));
  CHECK(q.manifest.heads == p.manifest.heads);
  CHECK(q.manifest.base_fingerprint == p.manifest.base_fingerprint);
  CHECK(q.manifest.sources["harmful"]["fingerprint"].get<std::string>().rfind("tiller-fp1:", 0) == 0);
  REQUIRE(q.deltas.size() == p.deltas.size());
  for (size_t i = 0; i < p.deltas.size(); i++) {
    CHECK(q.deltas[i].module == p.deltas[i].module);
    CHECK(q.deltas[i].blocks == p.deltas[i].blocks);
    CHECK(std::memcmp(q.deltas[i].a.data.get(), p.deltas[i].a.data.get(), p.deltas[i].a.nbytes()) == 0);
  }
  // Only the selected heads' columns are stored: half of o_proj for half of the heads.
  CHECK(q.nbytes() == size_t(16 * 16 * 64 * 4 + 16 * 4));
  const std::string shown = describe_profile(q);
  CHECK(shown.find("layer 2: 0 2 3 4 5") != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("steering: a PEFT LoRA adapter gives PEFT's logits (merged and per row)") {
  const Profile p = peft_profile();
  CHECK(p.deltas.size() == 16);  // q, v, o, down in 4 layers
  for (const WeightDelta& d : p.deltas) {
    CHECK(d.kind == DeltaKind::LowRank);
    CHECK(d.scaling == doctest::Approx(d.module.projection == Projection::Down ? 1.5 : 2.0));  // alpha / r
  }
  check_profile_against(p, "peft_lora.safetensors");
  check_profile_against(p, "peft_lora.safetensors", "merged.");  // merge_and_unload agrees too
}

TEST_CASE("steering: PEFT adapters round-trip through tiller's writer") {
  const Profile p = peft_profile();
  const auto dir = test::scratch_path("peft_out");
  write_peft_adapter(p, dir, "llama_gqa");
  const Profile q = read_peft_adapter(dir);
  REQUIRE(q.deltas.size() == p.deltas.size());
  for (size_t i = 0; i < p.deltas.size(); i++) {
    CHECK(q.deltas[i].module == p.deltas[i].module);
    CHECK(q.deltas[i].scaling == doctest::Approx(p.deltas[i].scaling));
    CHECK(std::memcmp(q.deltas[i].b.data.get(), p.deltas[i].b.data.get(), p.deltas[i].b.nbytes()) == 0);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("steering: dense and bias deltas equal torch's weight edit and residual steering vector") {
  check_profile_against(dense_bias_profile(), "dense_bias.safetensors");
}

TEST_CASE("steering: one batch of base and three profiles equals each run alone") {
  const std::vector<Profile> profiles = {soteria_fixture_profile(), peft_profile(),
                                         dense_bias_profile()};
  for (const std::string fixture : {"llama_gqa", "llama_gqa_bf16"}) {
    CAPTURE(fixture);
    const bool bf16 = fixture == "llama_gqa_bf16";
    for (const test::BackendCase& bc : test::model_backends()) {
      CAPTURE(bc.name);
      auto backend = bc.make();
      auto model = Model::load(test::fixtures_dir() / "models" / fixture, *backend);
      ProfileSet set(*backend, model->config());
      for (size_t i = 0; i < profiles.size(); i++) set.add("p" + std::to_string(i), std::make_shared<Profile>(profiles[i]));
      // Each prompt alone, with adapter a = 0..3, then all of them interleaved in one forward: decode-like
      // rows of four sequences, prompt i under adapter (i + a) % 4.
      std::vector<std::vector<int32_t>> ids = {prompt(0), prompt(1), prompt(2), prompt(1)};
      KvCache kv(*backend, model->kv_cache_options(64, 4));
      std::vector<SeqId> seqs;
      for (int s = 0; s < 4; s++) seqs.push_back(kv.create());
      Batch batch;
      size_t longest = 0;
      for (const auto& v : ids) longest = std::max(longest, v.size());
      for (size_t t = 0; t < longest; t++)
        for (int s = 0; s < 4; s++)
          if (t < ids[size_t(s)].size()) batch.add(ids[size_t(s)][t], seqs[size_t(s)], int32_t(t), true, s);
      ForwardOptions fo;
      fo.delta = &set;
      const std::vector<float> mixed = test::download_f32(*backend, model->forward(batch, kv, fo));
      const int64_t V = model->config().vocab_size;
      for (int s = 0; s < 4; s++) {
        CAPTURE(s);
        const std::vector<float> alone = logits(*model, ids[size_t(s)], &set, s);
        double num = 0, den = 0, worst = 0;
        int64_t row = 0, t_of_s = 0;
        for (size_t t = 0; t < longest; t++)
          for (int q = 0; q < 4; q++) {
            if (t >= ids[size_t(q)].size()) continue;
            if (q == s) {
              for (int64_t v = 0; v < V; v++) {
                const double a = mixed[size_t(row * V + v)], b = alone[size_t(t_of_s * V + v)];
                num += (a - b) * (a - b);
                den += b * b;
                worst = std::max(worst, std::abs(a - b) / (1e-4 * (1 + std::abs(b))));
              }
              t_of_s++;
            }
            row++;
          }
        INFO("worst " << worst << " x F32 tolerance, NSE " << num / den);
        if (bf16) CHECK(num / den <= 5e-4);
        else CHECK(worst <= 1.0);
      }
    }
  }
}

TEST_CASE("steering: an lm_head delta reaches only its own rows' logits (prefill, logits of last rows only)") {
  // lm_head's input holds the logit rows, not the batch rows: a profile's head delta must be placed
  // by logit row. Two prompts in one prefill, the profile's first, logits of each one's last token.
  Profile profile = dense_bias_profile();
  const auto cpu = make_backend("cpu", 1);
  const ModelConfig config = Model::load(base_dir(), *cpu)->config();
  const int64_t V = config.vocab_size, D = config.hidden_size;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> head(size_t(V * D));
  for (float& v : head) v = normal(rng);
  profile.deltas.push_back({DeltaKind::Dense, ModuleRef{}, HostTensor::from_f32(head, {V, D}, DType::F32), {}, {}, 1.0f});
  for (const test::BackendCase& bc : test::model_backends()) {
    CAPTURE(bc.name);
    auto backend = bc.make();
    auto model = Model::load(base_dir(), *backend);
    ProfileSet set(*backend, model->config());
    set.add("head", std::make_shared<Profile>(profile));
    const std::vector<std::vector<int32_t>> ids = {prompt(0), prompt(1)};
    const int32_t adapters[2] = {1, 0};
    KvCache kv(*backend, model->kv_cache_options(64, 2));
    Batch batch;
    for (int s = 0; s < 2; s++) {
      const SeqId seq = kv.create();
      for (size_t t = 0; t < ids[size_t(s)].size(); t++)
        batch.add(ids[size_t(s)][t], seq, int32_t(t), t + 1 == ids[size_t(s)].size(), adapters[s]);
    }
    ForwardOptions fo;
    fo.delta = &set;
    const std::vector<float> mixed = test::download_f32(*backend, model->forward(batch, kv, fo));
    REQUIRE(int64_t(mixed.size()) == 2 * V);
    for (int s = 0; s < 2; s++) {
      CAPTURE(s);
      const std::vector<float> alone = logits(*model, ids[size_t(s)], &set, adapters[s]);
      const std::vector<float> without = logits(*model, ids[size_t(s)], &set, 1 - adapters[s]);
      const size_t last = (ids[size_t(s)].size() - 1) * size_t(V);
      double worst = 0, apart = 0;
      for (int64_t v = 0; v < V; v++) {
        const double a = mixed[size_t(s * V + v)], b = alone[last + size_t(v)], c = without[last + size_t(v)];
        worst = std::max(worst, std::abs(a - b) / (1e-4 * (1 + std::abs(b))));
        apart = std::max(apart, std::abs(c - b) / (1e-4 * (1 + std::abs(b))));
      }
      CHECK(worst <= 1.0);
      CHECK(apart > 100.0);  // the delta matters: the other system's logits are far outside the tolerance
    }
  }
}

TEST_CASE("steering: a staggered forward applies a profile only to the rows that have joined") {
  // The attribution path: rows join at later layers; a delta on layer 0 must not touch them.
  const Profile p = soteria_fixture_profile();
  auto backend = make_backend("cpu", 1);
  auto model = Model::load(base_dir(), *backend);
  ProfileSet set(*backend, model->config());
  set.add("p", std::make_shared<Profile>(p));
  const std::vector<int32_t> ids = prompt(1);
  const std::vector<float> whole = logits(*model, ids, &set, 1);
  // The same prompt, its last token resumed at layer 2 from the steered stream entering layer 2.
  const int64_t T = int64_t(ids.size()), D = model->config().hidden_size, V = model->config().vocab_size;
  KvCache kv(*backend, model->kv_cache_options(T));
  const SeqId seq = kv.create();
  Batch head;
  for (int64_t i = 0; i < T - 1; i++) head.add(ids[size_t(i)], seq, int32_t(i), false, 1);
  ForwardOptions fo;
  fo.delta = &set;
  model->forward(head, kv, fo);
  Batch last;
  last.add(ids.back(), seq, int32_t(T - 1), true, 1);
  std::vector<float> stream(static_cast<size_t>(D));
  Tensor stream_t(stream.data(), DType::F32, {1, D});
  KvCache kv2(*backend, model->kv_cache_options(T));
  const SeqId seq2 = kv2.create();
  Batch full;
  for (int64_t i = 0; i < T; i++) full.add(ids[size_t(i)], seq2, int32_t(i), false, 1);
  std::vector<float> streams(size_t(T * D));
  Tensor streams_t(streams.data(), DType::F32, {T, D});
  ForwardOptions upto = fo;
  upto.end_layer = 2;
  upto.output_residual = &streams_t;
  model->forward(full, kv2, upto);
  std::copy(streams.end() - D, streams.end(), stream.begin());
  const int32_t join[] = {2};
  ForwardOptions rest = fo;
  rest.input_residual = &stream_t;
  rest.row_first_layer = join;
  const std::vector<float> resumed = test::download_f32(*backend, model->forward(last, kv, rest));
  double worst = 0;
  for (int64_t v = 0; v < V; v++) {
    const double b = whole[size_t((T - 1) * V + v)];
    worst = std::max(worst, std::abs(resumed[size_t(v)] - b) / (1e-4 * (1 + std::abs(b))));
  }
  CHECK(worst <= 1.0);
}

TEST_CASE("steering: bad input is refused with what was expected and what to do") {
  auto backend = make_backend("cpu", 1);
  const auto base = Model::load(base_dir(), *backend);
  const std::string fp = model_fingerprint(*base);
  const Profile p = soteria_fixture_profile();

  SUBCASE("a profile made for another model") {
    auto other = Model::load(test::fixtures_dir() / "models" / "llama_gqa_bf16", *backend);
    CHECK_THROWS_WITH(check_profile_fits(p, other->config(), model_fingerprint(*other), false, {}),
                      doctest::Contains("was made for 'llama_gqa'"));
    std::string warned;
    check_profile_fits(p, other->config(), model_fingerprint(*other), true, [&](const std::string& m) { warned = m; });
    CHECK(warned.find("applied anyway") != std::string::npos);
  }
  SUBCASE("a profile for a model of another shape") {
    auto qwen = Model::load(test::fixtures_dir() / "models" / "qwen2_bias_tied", *backend);
    CHECK_THROWS_WITH(check_profile_fits(p, qwen->config(), model_fingerprint(*qwen), true, {}),
                      doctest::Contains("outside the model's 4 blocks of 16 columns (heads)"));
  }
  SUBCASE("base and harmful models of different shapes") {
    auto qwen = Model::load(test::fixtures_dir() / "models" / "qwen2_bias_tied", *backend);
    SoteriaOptions o;
    o.heads = {{0, 1}};
    CHECK_THROWS_WITH(build_soteria_profile(*base, *qwen, o), doctest::Contains("must share architecture and shapes"));
  }
  SUBCASE("heads outside the model") {
    const auto path = test::scratch_path("heads.json");
    std::ofstream(path) << "[[0, 1], [3, 8], [4, 0]]";
    CHECK_THROWS_WITH(read_head_list(path, 4, 8), doctest::Contains("outside the model's 4 layers x 8 heads"));
    std::vector<std::string> warnings;
    const HeadList kept = read_head_list(path, 4, 8, true, [&](const std::string& m) { warnings.push_back(m); });
    CHECK(kept.size() == 1);
    CHECK(warnings.size() == 2);
    std::filesystem::remove(path);
  }
  SUBCASE("a truncated profile file") {
    const auto good = test::scratch_path("good.safetensors"), cut = test::scratch_path("cut.safetensors");
    write_profile(p, good);
    std::filesystem::copy_file(good, cut);
    std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 100);
    CHECK_THROWS_WITH(read_profile(cut), doctest::Contains("cut.safetensors"));
    std::filesystem::remove(good);
    std::filesystem::remove(cut);
  }
  SUBCASE("a safetensors file that is not a profile") {
    CHECK_THROWS_WITH(read_profile(base_dir() / "model.safetensors"), doctest::Contains("not a steering profile"));
  }
  SUBCASE("a PEFT adapter for modules the model does not have") {
    const auto dir = test::scratch_path("peft_bad");
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(steering_dir() / "peft_lora" / "adapter_config.json", dir / "adapter_config.json");
    std::vector<float> a(4 * 64, 0.5f), b(64 * 4, 0.25f);
    SafetensorsWriter w;
    w.add("base_model.model.model.layers.0.self_attn.rotary.lora_A.weight", Tensor(a.data(), DType::F32, {4, 64}));
    w.add("base_model.model.model.layers.0.self_attn.rotary.lora_B.weight", Tensor(b.data(), DType::F32, {64, 4}));
    w.write(dir / "adapter_model.safetensors");
    CHECK_THROWS_WITH(read_profile(dir), doctest::Contains("not a projection this model has"));
    SafetensorsWriter w9;  // a layer the 4-layer model lacks
    w9.add("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", Tensor(a.data(), DType::F32, {4, 64}));
    w9.add("base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", Tensor(b.data(), DType::F32, {64, 4}));
    w9.write(dir / "adapter_model.safetensors");
    const Profile lora9 = read_profile(dir);
    CHECK_THROWS_WITH(check_profile_fits(lora9, base->config(), fp, false, {}), doctest::Contains("has 4 layers"));
    std::filesystem::remove_all(dir);
  }
  SUBCASE("an adapter_config.json whose peft_type or bias is not a string (found by fuzzing)") {
    const auto dir = test::scratch_path("peft_types");
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(steering_dir() / "peft_lora" / "adapter_model.safetensors", dir / "adapter_model.safetensors");
    nlohmann::json cfg = read_json_file(steering_dir() / "peft_lora" / "adapter_config.json");
    for (const auto& [key, value] : {std::pair<const char*, nlohmann::json>{"peft_type", nullptr}, {"peft_type", 3},
                                     {"bias", nlohmann::json::array()}}) {
      CAPTURE(key);
      nlohmann::json bad = cfg;
      bad[key] = value;
      std::ofstream(dir / "adapter_config.json") << bad.dump();
      CHECK_THROWS_WITH(read_profile(dir), doctest::Contains(std::string(key) == "peft_type" && value.is_null()
                                                                  ? "tiller applies LORA adapters only"
                                                                  : "expected a string or null"));
    }
    std::filesystem::remove_all(dir);
  }
}
