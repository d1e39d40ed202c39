// The steering reference fixtures (tests/fixtures/steering, made by make_steering_fixtures.py)
// as profiles of the llama_gqa parity fixture, for the steering, scheduler and server tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "kernels/backends.h"
#include "steering/model_fingerprint.h"
#include "steering/peft_adapter.h"
#include "steering/soteria.h"
#include "test_util.h"

namespace tiller::test::steering {

inline std::filesystem::path base_dir() { return fixtures_dir() / "models" / "llama_gqa"; }
inline std::filesystem::path steering_dir() { return fixtures_dir() / "steering"; }

inline std::vector<int32_t> prompt(int i) {
  const auto ref = SafetensorsFile::open(base_dir() / "reference.safetensors");
  const Tensor t = ref->view("prompt." + std::to_string(i) + ".tokens");
  return {t.ptr<int32_t>(), t.ptr<int32_t>() + t.numel()};
}

// Soteria's profile from the fixture pair: scale 1.35 (the reference's), 16 heads (heads.json).
inline Profile soteria_fixture_profile(double scale = 1.35) {
  auto backend = make_backend("cpu", 1);
  const auto base = Model::load(base_dir(), *backend);
  const auto harmful = Model::load(steering_dir() / "llama_gqa_harmful", *backend);
  SoteriaOptions o;
  o.heads = read_head_list(steering_dir() / "heads.json", 4, 8);
  o.scale = scale;
  o.languages = {"xx"};
  o.base_name = "llama_gqa";
  return build_soteria_profile(*base, *harmful, o);
}

// The dense and bias deltas of dense_bias.safetensors (times `factor`) as a profile of the base.
inline Profile dense_bias_profile(float factor = 1.0f) {
  const auto file = SafetensorsFile::open(steering_dir() / "dense_bias.safetensors");
  auto host = [&](const std::string& name) {
    const Tensor t = file->view(name);
    std::vector<float> v(t.ptr<float>(), t.ptr<float>() + t.numel());
    for (float& x : v) x *= factor;
    std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + t.rank);
    return HostTensor::from_f32(v, shape, DType::F32);
  };
  auto backend = make_backend("cpu", 1);
  const auto base = Model::load(base_dir(), *backend);
  Profile p;
  p.manifest.method = "test";
  p.manifest.base_fingerprint = model_fingerprint(*base);
  p.deltas.push_back({DeltaKind::Dense, {1, Projection::Q}, host("model.layers.1.self_attn.q_proj.weight.delta"), {}, {}, 1.0f});
  p.deltas.push_back({DeltaKind::Bias, {2, Projection::Down}, host("model.layers.2.mlp.down_proj.bias.delta"), {}, {}, 1.0f});
  return p;
}


// The PEFT adapter, its scaling times `factor`.
inline Profile peft_profile(float factor = 1.0f) {
  Profile p = read_peft_adapter(steering_dir() / "peft_lora");
  for (WeightDelta& d : p.deltas) d.scaling *= factor;
  return p;
}

}  // namespace tiller::test::steering
