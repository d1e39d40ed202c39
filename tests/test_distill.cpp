// Multilingual self-distillation against PyTorch (tests/fixtures/make_train_reference.py steps):
// the divergences, DPSW weights, loss and the student logits' gradient on fixed logits; the
// teacher's greedy responses sampled by the engine; and ten AdamW steps of each divergence with
// DPSW on, from the same initial LoRA, equal torch's.
#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/json_file.h"
#include "engine/safetensors.h"
#include "kernels/cpu/cpu_backend.h"
#include "test_util.h"
#include "train/distill.h"

using namespace tiller;

namespace {

template <typename T>
std::vector<T> get(const SafetensorsFile& f, const std::string& key) {
  const Tensor t = f.view(key);
  return std::vector<T>(t.ptr<T>(), t.ptr<T>() + t.numel());
}

DistillLossOptions loss_options(const json& c) {
  DistillLossOptions o;
  const std::string d = c["divergence"];
  parse_divergence(d == "jsd" ? "jsd:" + std::to_string(double(c.value("beta", 0.5))) : d, o);
  o.top_k = c.value("top_k", 0);
  o.dpsw = c.value("dpsw", true);
  o.teacher_confident = c.value("teacher", std::string("confident")) == "confident";
  o.dpsw_k = c.value("dpsw_k", 20);
  o.student_on_teacher_argmax = c.value("student_token", std::string("sampled")) == "teacher-argmax";
  return o;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < got.size(); i++) {
    err = std::max(err, std::abs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return err / scale;
}

}  // namespace

TEST_CASE("distill: divergences, DPSW weights, loss and gradient on fixed logits equal PyTorch's") {
  const auto f = SafetensorsFile::open(test::fixtures_dir() / "train" / "distill_loss.safetensors");
  const json meta = json::parse(f->metadata().at("reference"));
  const std::vector<float> zs = get<float>(*f, "student"), zt = get<float>(*f, "teacher");
  const std::vector<int32_t> tokens = get<int32_t>(*f, "tokens");
  const int64_t R = int64_t(tokens.size()), V = int64_t(zs.size()) / R;
  for (const json& c : meta["cases"]) {
    const std::string name = c["name"];
    CAPTURE(name);
    std::vector<float> grad(zs.size());
    const TokenTerms t = distill_token_terms(zs, zt, tokens, V, loss_options(c), grad);
    const std::vector<float> d = get<float>(*f, name + ".divergence"), w = get<float>(*f, name + ".weight");
    double sw = 0, swd = 0;
    for (int64_t r = 0; r < R; r++) {
      CHECK(t.divergence[size_t(r)] == doctest::Approx(d[size_t(r)]).epsilon(1e-6));
      CHECK(t.weight[size_t(r)] == doctest::Approx(w[size_t(r)]).epsilon(1e-6));
      sw += t.weight[size_t(r)];
      swd += t.weight[size_t(r)] * t.divergence[size_t(r)];
    }
    CHECK(swd / sw == doctest::Approx(double(meta[name]["loss"])).epsilon(1e-6));
    for (float& g : grad) g = float(g / sw);
    CHECK(rel_err(grad, get<float>(*f, name + ".grad")) < 1e-5);
  }
}

TEST_CASE("distill: ten AdamW steps of each divergence with DPSW equal PyTorch's; greedy teacher responses") {
  const auto ref = SafetensorsFile::open(test::fixtures_dir() / "train" / "steps_distill.safetensors");
  const json meta = json::parse(ref->metadata().at("reference"));
  CpuBackend be(2);
  auto model = Model::load(test::fixtures_dir() / "models" / "llama_gqa", be);
  std::vector<DistillExample> examples;
  for (int i = 0; i < 4; i++) {
    DistillExample e;
    e.student_prompt = get<int32_t>(*ref, "query." + std::to_string(i) + ".student");
    e.teacher_prompt = get<int32_t>(*ref, "query." + std::to_string(i) + ".teacher");
    e.response = get<int32_t>(*ref, "query." + std::to_string(i) + ".response");
    examples.push_back(e);
  }
  {  // The engine's own off-policy sampling (greedy, 8 tokens) gives HF generate's responses.
    SampleOptions so;
    so.max_new_tokens = 8;
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& e : examples) prompts.push_back(e.teacher_prompt);
    const std::vector<uint64_t> seeds(4, 1);
    const auto got = sample_continuations(*model, nullptr, prompts, so, seeds);
    for (size_t i = 0; i < 4; i++) CHECK(got[i] == examples[i].response);
  }
  const json& opt = meta["opt"];
  for (const auto& [name, c] : meta["cases"].items()) {
    CAPTURE(name);
    TrainSpec spec;
    spec.lora.rank = meta["lora"]["rank"];
    spec.lora.alpha = meta["lora"]["alpha"];
    spec.lora.targets = {Projection::Q, Projection::V, Projection::O};
    auto tr = make_trainable(*model, spec, 1);
    for (Param& p : tr->params()) {
      const std::vector<float> v = get<float>(*ref, "init." + p.name);
      be.upload(p.value.data(), v.data(), v.size() * sizeof(float));
    }
    DistillOptions o;
    o.on_policy = false;
    o.loss = loss_options(c);
    o.micro_batch_tokens = 30;  // two micro-batches: Σ w is taken over the step
    TrainerOptions to;
    to.optim.lr = opt["lr"];
    to.optim.beta1 = opt["betas"][0];
    to.optim.beta2 = opt["betas"][1];
    to.optim.eps = opt["eps"];
    to.optim.weight_decay = opt["weight_decay"];
    to.optim.warmup_steps = opt["warmup"];
    to.optim.max_grad_norm = opt["max_grad_norm"];
    to.steps = opt["steps"];
    to.progress = false;
    const auto log = std::filesystem::temp_directory_path() / "tiller_test_steps_distill.jsonl";
    to.loss_log = log;
    Trainer trainer(*tr, to);
    const std::vector<size_t> all = {0, 1, 2, 3};
    trainer.run([&](int64_t step, TrainingPass& pass) { return distill_step(*tr, pass, examples, all, o, 0); });
    std::ifstream in(log);
    std::string line;
    size_t s = 0;
    for (; std::getline(in, line); s++) {
      const json row = json::parse(line);
      CAPTURE(s);
      CHECK(double(row["loss"]) == doctest::Approx(double(c["losses"][s])).epsilon(1e-5));
    }
    CHECK(s == c["losses"].size());
    double err = 0, scale = 0;
    for (const Param& p : tr->params()) {
      const std::vector<float> init = get<float>(*ref, "init." + p.name), want = get<float>(*ref, name + ".final." + p.name);
      const std::vector<float> got = download_f32(be, p.value_t());
      for (size_t i = 0; i < got.size(); i++) {
        err = std::max(err, std::abs(double(got[i]) - double(want[i])));
        scale = std::max(scale, std::abs(double(want[i]) - double(init[i])));
      }
    }
    INFO("max parameter error / max change " << err / scale << " (PyTorch's own F32: " << double(c["f32_vs_f64"]) << ")");
    CHECK(err / scale < std::max(4 * double(c["f32_vs_f64"]), 2e-3));
  }
}
