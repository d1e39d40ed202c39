// Shared checks of the steering-profile targets.
#include "fuzz/steering_checks.h"

#include <cmath>
#include <cstring>

#include "engine/json_file.h"
#include "fuzz/fuzz_target.h"

namespace tiller::fuzz {

const ModelConfig& tiny_steering_config() {
  static const ModelConfig config = parse_model_config(
      parse_json_text(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 4, "vocab_size": 32, "max_position_embeddings": 64, "rms_norm_eps": 1e-5})",
                      "tiny config"),
      "tiny config");
  return config;
}

namespace {

bool same_tensor(const HostTensor& a, const HostTensor& b) {
  if (a.empty() || b.empty()) return a.empty() == b.empty();
  return a.dtype == b.dtype && a.shape == b.shape && std::memcmp(a.data.get(), b.data.get(), a.nbytes()) == 0;
}

void check_same_deltas(const Profile& a, const Profile& b) {
  fuzz_check(a.deltas.size() == b.deltas.size(), "a profile read back has as many deltas");
  for (const WeightDelta& d : a.deltas) {
    bool found = false;
    for (const WeightDelta* e : b.deltas_on(d.module)) {
      if (e->kind != d.kind) continue;
      found = true;
      fuzz_check(same_tensor(d.a, e->a) && same_tensor(d.b, e->b) && d.blocks == e->blocks,
                 "a delta read back has the same tensors");
      fuzz_check(d.scaling == e->scaling || (std::isnan(d.scaling) && std::isnan(e->scaling)) ||
                     std::abs(d.scaling - e->scaling) <= 1e-6f * std::abs(d.scaling),
                 "a low-rank delta read back has the same scaling");
    }
    fuzz_check(found, "every delta is read back");
  }
}

}  // namespace

void check_profile(const Profile& p, const std::function<Profile(const Profile&)>& reread) {
  fuzz_check(!p.deltas.empty(), "an accepted profile has deltas");
  (void)describe_profile(p);
  const ModelConfig& config = tiny_steering_config();
  if (accepted([&] { check_profile_fits(p, config, p.manifest.base_fingerprint, false, {}); })) {
    for (const WeightDelta& d : p.deltas) {
      const auto [out, in] = projection_shape(config, d.module.projection);
      if (d.kind == DeltaKind::Bias) {
        fuzz_check(int64_t(bias_delta_f32(p, d.module, out).size()) == out, "a bias delta densifies to [out]");
      } else {
        fuzz_check(int64_t(weight_delta_f32(p, d.module, out, in).size()) == out * in, "a delta densifies to [out, in]");
      }
    }
  }
  Profile again;
  if (accepted([&] { again = reread(p); })) check_same_deltas(p, again);
}

}  // namespace tiller::fuzz
