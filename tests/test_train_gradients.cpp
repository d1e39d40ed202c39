// Whole-model parameter gradients against PyTorch autograd (tests/fixtures/make_train_reference.py,
// float64) on the committed parity fixtures: LoRA on q/v/o (PEFT), o_proj head columns, and every
// weight; a ragged batch of three sequences, token cross-entropy averaged over the batch. Tolerance:
// 1e-4 of the largest gradient (F32), with activations kept and recomputed; on a GPU machine, the same
// on every device backend.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "engine/json_file.h"
#include "engine/safetensors.h"
#include "kernels/cpu/cpu_backend.h"
#include "models/model.h"
#include "test_backends.h"
#include "test_util.h"
#include "train/backward.h"
#include "train/losses.h"
#include "train/trainable.h"

using namespace tiller;

namespace {

struct Reference {
  std::shared_ptr<SafetensorsFile> file;
  json meta;
  std::vector<std::vector<int32_t>> seqs;
  int loss_from = 0;

  explicit Reference(const std::string& name) {
    file = SafetensorsFile::open(test::fixtures_dir() / "train" / ("grads_" + name + ".safetensors"));
    meta = json::parse(file->metadata().at("reference"));
    loss_from = meta["loss_from"];
    for (int i = 0; i < 3; i++) {
      const Tensor t = file->view("tokens." + std::to_string(i));
      seqs.emplace_back(t.ptr<int32_t>(), t.ptr<int32_t>() + t.numel());
    }
  }
  std::vector<float> get(const std::string& key) const {
    const Tensor t = file->view(key);
    REQUIRE(t.dtype == DType::F32);
    return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
  }
};

// One forward + backward of the reference batch; returns the loss.
double run_batch(Trainable& tr, const Reference& ref, bool recompute) {
  Model& model = tr.model();
  int64_t tokens = 0;
  for (const auto& s : ref.seqs) tokens += int64_t(s.size());
  KvCache kv(model.backend(), model.kv_cache_options(tokens + 64, 3));
  Batch batch;
  std::vector<int32_t> targets;
  for (const auto& s : ref.seqs) {
    const SeqId id = kv.create();
    for (size_t p = 0; p < s.size(); p++) {
      const bool loss_row = int(p) >= ref.loss_from - 1 && p + 1 < s.size();
      batch.add(s[p], id, int32_t(p), loss_row);
      if (loss_row) targets.push_back(s[p + 1]);
    }
  }
  const std::vector<float> weights(targets.size(), 1.0f / float(targets.size()));
  TrainingPass pass(tr, recompute);
  Tensor logits = pass.forward(batch, kv);
  const double loss = cross_entropy_loss(model.backend(), logits, targets, weights);
  pass.backward(logits, batch, kv);
  return loss;
}

// max |got - ref| over all tensors relative to max |ref|.
double compare(Trainable& tr, const Reference& ref, const std::string& prefix,
               const std::function<std::string(const std::string&)>& key_of) {
  double err = 0, scale = 0;
  int n = 0;
  for (const Param& p : tr.params()) {
    const std::string key = prefix + key_of(p.name);
    if (!ref.file->find(key)) continue;
    const std::vector<float> want = ref.get(key), got = download_f32(tr.model().backend(), p.grad_t());
    REQUIRE(want.size() == got.size());
    for (size_t i = 0; i < got.size(); i++) {
      err = std::max(err, std::abs(double(got[i]) - double(want[i])));
      scale = std::max(scale, std::abs(double(want[i])));
    }
    n++;
  }
  CHECK(n > 0);
  return err / scale;
}

void set_param(Trainable& tr, const std::string& name, const std::vector<float>& values) {
  for (Param& p : tr.params()) {
    if (p.name != name) continue;
    REQUIRE(int64_t(values.size()) == p.numel());
    tr.model().backend().upload(p.value.data(), values.data(), values.size() * sizeof(float));
    return;
  }
  FAIL("no parameter " << name);
}

using BackendFactory = std::function<std::unique_ptr<Backend>()>;

void check_lora_gradients(const BackendFactory& make_backend) {
  for (const char* name : {"llama_gqa", "mistral_swa", "qwen2_bias_tied", "qwen2_swa"}) {
    for (bool recompute : {false, true}) {
      CAPTURE(name);
      CAPTURE(recompute);
      const Reference ref(name);
      const std::unique_ptr<Backend> be = make_backend();
      auto model = Model::load(test::fixtures_dir() / "models" / name, *be);
      TrainSpec spec;
      spec.lora.rank = ref.meta["lora"]["rank"];
      spec.lora.alpha = ref.meta["lora"]["alpha"];
      spec.lora.targets = {Projection::Q, Projection::V, Projection::O};
      auto tr = make_trainable(*model, spec, 1);
      for (const Param& p : tr->params()) set_param(*tr, p.name, ref.get("lora.init." + p.name));
      const double loss = run_batch(*tr, ref, recompute);
      CHECK(loss == doctest::Approx(double(ref.meta["lora"]["loss"])).epsilon(1e-5));
      const double err = compare(*tr, ref, "lora.grad.", [](const std::string& n) { return n; });
      INFO("max error / max gradient " << err);
      CHECK(err < 1e-4);
    }
  }
}

void check_column_gradients(const BackendFactory& make_backend) {
  for (const char* name : {"llama_gqa", "qwen2_swa"}) {
    for (bool recompute : {false, true}) {
      CAPTURE(name);
      CAPTURE(recompute);
      const Reference ref(name);
      const std::unique_ptr<Backend> be = make_backend();
      auto model = Model::load(test::fixtures_dir() / "models" / name, *be);
      TrainSpec spec;
      spec.kind = TrainKind::Columns;
      for (const auto& h : ref.meta["columns"]["heads"]) spec.heads.emplace_back(h[0], h[1]);
      auto tr = make_trainable(*model, spec, 1);
      auto key = [](const std::string& n) { return n.substr(0, n.size() - std::string(".delta").size()); };
      for (const Param& p : tr->params()) set_param(*tr, p.name, ref.get("columns.init." + key(p.name)));
      const double loss = run_batch(*tr, ref, recompute);
      CHECK(loss == doctest::Approx(double(ref.meta["columns"]["loss"])).epsilon(1e-5));
      const double err = compare(*tr, ref, "columns.grad.", key);
      INFO("max error / max gradient " << err);
      CHECK(err < 1e-4);
    }
  }
}

void check_full_gradients(const BackendFactory& make_backend) {
  for (const char* name : {"llama_gqa", "qwen2_bias_tied"}) {
    for (bool recompute : {false, true}) {
      CAPTURE(name);
      CAPTURE(recompute);
      const Reference ref(name);
      const std::unique_ptr<Backend> be = make_backend();
      auto model = Model::load(test::fixtures_dir() / "models" / name, *be);
      TrainSpec spec;
      spec.kind = TrainKind::Full;
      auto tr = make_trainable(*model, spec, 1);
      const double loss = run_batch(*tr, ref, recompute);
      CHECK(loss == doctest::Approx(double(ref.meta["full"]["loss"])).epsilon(1e-5));
      int matched = 0;
      for (const Param& p : tr->params()) matched += ref.file->find("full.grad." + p.name) != nullptr;
      CHECK(matched == int(tr->params().size()));
      const double err = compare(*tr, ref, "full.grad.", [](const std::string& n) { return n; });
      INFO("max error / max gradient " << err);
      CHECK(err < 1e-4);
    }
  }
}

std::unique_ptr<Backend> cpu_backend() { return std::make_unique<CpuBackend>(2); }

}  // namespace

TEST_CASE("training: LoRA gradients (q/v/o) equal PyTorch autograd + PEFT") { check_lora_gradients(cpu_backend); }

TEST_CASE("training: o_proj head-column gradients equal PyTorch autograd") { check_column_gradients(cpu_backend); }

TEST_CASE("training: full-model gradients (embeddings, norms, biases, tied lm_head) equal PyTorch autograd") {
  check_full_gradients(cpu_backend);
}

TEST_CASE("device backends: whole-model gradients (LoRA, head columns, full) equal PyTorch autograd as on the CPU") {
  const auto devices = test::device_backends();
  TILLER_SKIP_UNLESS(!devices.empty(), test::no_device_reason());
  for (const auto& device : devices) {
    CAPTURE(device.name);
    check_lora_gradients(device.make);
    check_column_gradients(device.make);
    check_full_gradients(device.make);
  }
}
