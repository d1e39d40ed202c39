// Building Soteria profiles from two models, or from a fine-tune's delta.
#include "steering/soteria.h"

#include <map>
#include <sstream>

#include "engine/error.h"
#include "models/weight_specs.h"
#include "steering/model_fingerprint.h"

namespace tiller {

namespace {

std::vector<float> download_f32(const Model& model, const Tensor& t) {
  std::vector<uint8_t> raw(t.nbytes());
  model.backend().download(raw.data(), t.data, raw.size());
  std::vector<float> out(size_t(t.numel()));
  to_f32(t.dtype, raw.data(), out.data(), out.size());
  return out;
}

// Names the first difference between two configs that matters to the weights, or "".
std::string config_difference(const ModelConfig& a, const ModelConfig& b) {
  if (a.architecture_name != b.architecture_name) return "architecture " + a.architecture_name + " vs " + b.architecture_name;
  const auto sa = weight_specs(a), sb = weight_specs(b);
  for (size_t i = 0; i < std::min(sa.size(), sb.size()); i++) {
    if (sa[i].name != sb[i].name) return "tensor " + sa[i].name + " vs " + sb[i].name;
    if (sa[i].shape != sb[i].shape) {
      std::ostringstream os;
      os << "tensor " << sa[i].name << " has shape [";
      for (size_t k = 0; k < sa[i].shape.size(); k++) os << (k ? ", " : "") << sa[i].shape[k];
      os << "] in the base and [";
      for (size_t k = 0; k < sb[i].shape.size(); k++) os << (k ? ", " : "") << sb[i].shape[k];
      os << "] in the harmful model";
      return os.str();
    }
  }
  if (sa.size() != sb.size()) return "the models have " + std::to_string(sa.size()) + " and " + std::to_string(sb.size()) + " tensors";
  if (a.head_dim != b.head_dim || a.n_heads != b.n_heads) return "head layout (num_attention_heads, head_dim)";
  return "";
}

Profile soteria_profile(const Model& base, const SoteriaOptions& o,
                        const std::function<std::vector<float>(int layer)>& harm_direction) {
  const ModelConfig& c = base.config();
  const int64_t D = c.hidden_size, d = c.head_dim, Q = c.q_dim();
  for (const auto& [l, h] : o.heads) {
    if (l < 0 || l >= c.n_layers || h < 0 || h >= c.n_heads)
      fail("head [", l, ", ", h, "] is outside the model's ", c.n_layers, " layers x ", c.n_heads, " heads");
  }
  if (o.heads.empty()) fail("the head list is empty: a Soteria profile needs at least one head");
  std::map<int32_t, std::vector<int32_t>> by_layer;
  for (const auto& [l, h] : o.heads) by_layer[l].push_back(h);

  Profile p;
  ProfileManifest& m = p.manifest;
  m.method = "soteria";
  m.languages = o.languages;
  m.base_fingerprint = model_fingerprint(base);
  m.base_name = o.base_name;
  m.base_architecture = c.architecture_name;
  m.heads = o.heads;
  m.scale = o.scale;
  m.created_by = o.created_by;
  std::ostringstream desc;
  desc << "Soteria: W_O -= " << o.scale << " * (W_O,harmful - W_O,base) on the o_proj columns of " << o.heads.size()
       << " heads in " << by_layer.size() << " layers";
  m.description = desc.str();
  const DType dtype = o.dtype.value_or(is_float(base.weight_dtype()) ? base.weight_dtype() : DType::F32);
  for (auto& [l, heads] : by_layer) {
    std::sort(heads.begin(), heads.end());
    const std::vector<float> dir = harm_direction(l);  // [D, H·d]: θ_ft − θ_base of this layer's o_proj
    const int64_t k = int64_t(heads.size());
    std::vector<float> cols(size_t(D * k * d));
    for (int64_t i = 0; i < D; i++)
      for (int64_t j = 0; j < k; j++)
        for (int64_t e = 0; e < d; e++) {
          // −(s · diff): the same rounding as θ_base − s · diff, so the merge equals Soteria's.
          const float diff = dir[size_t(i * Q + heads[size_t(j)] * d + e)];
          cols[size_t((i * k + j) * d + e)] = -(float(o.scale) * diff);
        }
    WeightDelta delta;
    delta.kind = DeltaKind::ColumnBlocks;
    delta.module = {l, Projection::O};
    delta.a = HostTensor::from_f32(cols, {D, k * d}, dtype);
    delta.blocks = heads;
    p.deltas.push_back(std::move(delta));
  }
  return p;
}

}  // namespace

Profile build_soteria_profile(const Model& base, const Model& harmful, const SoteriaOptions& o) {
  const std::string diff = config_difference(base.config(), harmful.config());
  if (!diff.empty())
    fail("the base and harmful models must share architecture and shapes: ", diff,
         ". Soteria subtracts a fine-tune of the base model itself");
  Profile p = soteria_profile(base, o, [&](int l) {
    std::vector<float> ft = download_f32(harmful, harmful.projection_weight(l, Projection::O));
    const std::vector<float> b = download_f32(base, base.projection_weight(l, Projection::O));
    for (size_t i = 0; i < ft.size(); i++) ft[i] -= b[i];
    return ft;
  });
  p.manifest.sources["harmful"] = {{"fingerprint", model_fingerprint(harmful)}, {"name", o.harmful_name}};
  return p;
}

Profile build_soteria_profile(const Model& base, const Profile& harmful_delta, const SoteriaOptions& o) {
  const ModelConfig& c = base.config();
  Profile p = soteria_profile(base, o, [&](int l) {
    std::vector<float> dw = weight_delta_f32(harmful_delta, {l, Projection::O}, c.hidden_size, c.q_dim());
    if (dw.empty()) dw.assign(size_t(c.hidden_size * c.q_dim()), 0.0f);  // the fine-tune left this layer alone
    return dw;
  });
  p.manifest.sources["harmful"] = {{"profile", harmful_delta.source}, {"method", harmful_delta.manifest.method},
                                   {"name", o.harmful_name}};
  return p;
}

}  // namespace tiller
