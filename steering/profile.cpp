// Steering profile files: reading with every tensor checked, writing, fitting a model, densifying.
#include "steering/profile.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "steering/peft_adapter.h"

namespace tiller {

const char* delta_kind_name(DeltaKind kind) {
  switch (kind) {
    case DeltaKind::ColumnBlocks: return "column blocks";
    case DeltaKind::Dense: return "dense";
    case DeltaKind::LowRank: return "low rank";
    case DeltaKind::Bias: return "bias";
  }
  return "?";
}

// --- HostTensor ------------------------------------------------------------------------------------

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return shape.empty() ? 0 : n;
}

size_t HostTensor::nbytes() const { return empty() ? 0 : size_t(numel()) * dtype_size(dtype); }

Tensor HostTensor::view() const {
  Tensor t;
  t.data = const_cast<void*>(data.get());
  t.dtype = dtype;
  t.rank = int(shape.size());
  TILLER_CHECK(t.rank <= Tensor::kMaxRank);
  for (int i = 0; i < t.rank; i++) t.shape[size_t(i)] = shape[size_t(i)];
  return t;
}

std::vector<float> HostTensor::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  tiller::to_f32(dtype, data.get(), out.data(), out.size());
  return out;
}

std::string HostTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

HostTensor HostTensor::from_f32(const std::vector<float>& values, std::vector<int64_t> shape, DType dtype) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  TILLER_CHECK(t.numel() == int64_t(values.size()) && is_float(dtype));
  auto bytes = std::make_shared<std::vector<uint8_t>>(size_t(t.numel()) * dtype_size(dtype));
  tiller::from_f32(dtype, values.data(), bytes->data(), values.size());
  t.data = std::shared_ptr<const void>(bytes, bytes->data());
  return t;
}

// --- manifest ----------------------------------------------------------------------------------------

json ProfileManifest::to_json(const std::vector<WeightDelta>& deltas) const {
  json j = extra.is_object() ? extra : json::object();
  j["format_version"] = format_version;
  j["method"] = method;
  j["languages"] = languages;
  j["base_model"] = {{"fingerprint", base_fingerprint}, {"name", base_name}, {"architecture", base_architecture}};
  j["sources"] = sources;
  if (!heads.empty()) {
    json h = json::array();
    for (const auto& [l, hd] : heads) h.push_back({l, hd});
    j["heads"] = h;
  }
  if (scale) j["scale"] = *scale;
  json lora = json::object();
  for (const WeightDelta& d : deltas) {
    if (d.kind == DeltaKind::LowRank)
      lora[module_name(d.module)] = {{"rank", d.a.shape[0]}, {"scaling", d.scaling}};
  }
  if (!lora.empty()) j["lora"] = lora;
  j["description"] = description;
  j["created_by"] = created_by;
  return j;
}

namespace {

ProfileManifest parse_manifest(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail(where, ": the \"", kProfileMetadataKey, "\" manifest is not valid JSON (", e.what(), ")");
  }
  if (!j.is_object()) fail(where, ": the \"", kProfileMetadataKey, "\" manifest must be a JSON object");
  ProfileManifest m;
  const json& version = j.value("format_version", json());
  if (!version.is_number_integer()) fail(where, ": the manifest has no integer \"format_version\"");
  m.format_version = version.get<int>();
  if (m.format_version < 1 || m.format_version > kProfileFormatVersion)
    fail(where, ": profile format version ", m.format_version, " is not supported (this tiller reads version ",
         kProfileFormatVersion, "); update tiller");
  m.method = json_optional_string(j, "method", where + ": manifest");
  if (m.method.empty()) fail(where, ": the manifest has no \"method\"");
  if (auto it = j.find("languages"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail(where, ": manifest field \"languages\" must be a list of strings");
    for (const json& l : *it) {
      if (!l.is_string()) fail(where, ": manifest field \"languages\" must be a list of strings");
      m.languages.push_back(l.get<std::string>());
    }
  }
  const json base = j.value("base_model", json::object());
  if (!base.is_object()) fail(where, ": manifest field \"base_model\" must be an object");
  m.base_fingerprint = json_optional_string(base, "fingerprint", where + ": manifest field base_model");
  if (m.base_fingerprint.empty())
    fail(where, ": the manifest names no base model fingerprint (base_model.fingerprint); it cannot be checked "
         "against a model");
  m.base_name = json_optional_string(base, "name", where + ": manifest field base_model");
  m.base_architecture = json_optional_string(base, "architecture", where + ": manifest field base_model");
  if (auto it = j.find("sources"); it != j.end() && it->is_object()) m.sources = *it;
  if (auto it = j.find("heads"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail(where, ": manifest field \"heads\" must be a list of [layer, head] pairs");
    for (const json& h : *it) {
      if (!h.is_array() || h.size() != 2 || !h[0].is_number_integer() || !h[1].is_number_integer())
        fail(where, ": manifest field \"heads\" must be a list of [layer, head] pairs, found ", h.dump());
      m.heads.emplace_back(h[0].get<int32_t>(), h[1].get<int32_t>());
    }
  }
  if (auto it = j.find("scale"); it != j.end() && it->is_number()) m.scale = it->get<double>();
  m.description = json_optional_string(j, "description", where + ": manifest");
  m.created_by = json_optional_string(j, "created_by", where + ": manifest");
  for (const char* known : {"format_version", "method", "languages", "base_model", "sources", "heads", "scale",
                            "description", "created_by"})
    j.erase(known);
  m.extra = j;  // "lora" is read from here by the tensor pass
  return m;
}

HostTensor host_view(const std::shared_ptr<SafetensorsFile>& file, const TensorInfo& info) {
  HostTensor t;
  t.dtype = *info.dtype;
  t.shape = info.shape;
  const Tensor v = file->view(info);
  t.data = std::shared_ptr<const void>(file, v.data);
  return t;
}

struct Suffix {
  const char* text;
  enum Part { Columns, Blocks, Dense, LoraA, LoraB, Bias } part;
};
constexpr Suffix kSuffixes[] = {
    {".weight.delta_columns", Suffix::Columns}, {".weight.delta_column_blocks", Suffix::Blocks},
    {".weight.delta", Suffix::Dense},          {".lora_A.weight", Suffix::LoraA},
    {".lora_B.weight", Suffix::LoraB},         {".bias.delta", Suffix::Bias},
};

}  // namespace

// --- reading -----------------------------------------------------------------------------------------

Profile read_profile(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    if (fs::exists(path / "adapter_config.json")) return read_peft_adapter(path);
    fail(path.string(), " is a folder without adapter_config.json: expected a steering profile (.safetensors, made by "
         "tiller steer / finetune / distill) or a PEFT LoRA adapter folder");
  }
  if (!fs::exists(path)) fail(path.string(), ": no such profile file");
  const auto file = SafetensorsFile::open(path);
  const std::string where = path.string();
  auto meta = file->metadata().find(kProfileMetadataKey);
  if (meta == file->metadata().end()) {
    fail(where, ": not a steering profile (its safetensors metadata has no \"", kProfileMetadataKey,
         "\" manifest). Profiles are made by tiller steer soteria, finetune or distill; a PEFT adapter is read "
         "from its folder");
  }
  Profile p;
  p.source = where;
  p.manifest = parse_manifest(meta->second, where);
  const json lora = p.manifest.extra.value("lora", json::object());

  struct Parts {
    const TensorInfo *columns = nullptr, *blocks = nullptr, *dense = nullptr, *lora_a = nullptr, *lora_b = nullptr,
                     *bias = nullptr;
  };
  std::map<std::string, Parts> modules;
  for (const auto& [name, info] : file->tensors()) {
    const Suffix* suffix = nullptr;
    for (const Suffix& s : kSuffixes) {
      if (name.ends_with(s.text) && (!suffix || std::strlen(s.text) > std::strlen(suffix->text))) suffix = &s;
    }
    if (!suffix) {
      fail(where, ": tensor \"", name, "\" is not a delta (names end in .weight.delta, .weight.delta_columns, "
           ".weight.delta_column_blocks, .lora_A.weight, .lora_B.weight or .bias.delta; see docs/profile-format.md)");
    }
    const std::string module = name.substr(0, name.size() - std::strlen(suffix->text));
    if (!parse_module_name(module))
      fail(where, ": tensor \"", name, "\" names \"", module, "\", which is not a projection of a Llama, Mistral or "
           "Qwen2 decoder (model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, lm_head)");
    const bool index = suffix->part == Suffix::Blocks;
    if (index ? info.dtype != DType::I32 : (!info.dtype || !is_float(*info.dtype)))
      fail(where, ": tensor \"", name, "\" has dtype ", info.dtype_name, "; expected ", index ? "I32" : "F32, F16 or BF16");
    const size_t rank = suffix->part == Suffix::Blocks || suffix->part == Suffix::Bias ? 1 : 2;
    if (info.shape.size() != rank || std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end())
      fail(where, ": tensor \"", name, "\" has shape ", info.shape_string(), "; expected a non-empty tensor of rank ", rank);
    Parts& parts = modules[module];
    const TensorInfo** slot[] = {&parts.columns, &parts.blocks, &parts.dense, &parts.lora_a, &parts.lora_b, &parts.bias};
    *slot[suffix->part] = &info;
  }

  for (const auto& [module, parts] : modules) {
    const ModuleRef ref = *parse_module_name(module);
    if (parts.columns || parts.blocks) {
      if (!parts.columns || !parts.blocks)
        fail(where, ": ", module, " has ", parts.columns ? ".weight.delta_columns without .weight.delta_column_blocks"
                                                          : ".weight.delta_column_blocks without .weight.delta_columns");
      WeightDelta d{DeltaKind::ColumnBlocks, ref, host_view(file, *parts.columns), {}, {}, 1.0f};
      const Tensor b = file->view(*parts.blocks);
      d.blocks.assign(b.ptr<int32_t>(), b.ptr<int32_t>() + b.numel());
      if (d.a.shape[1] % int64_t(d.blocks.size()) != 0)
        fail(where, ": ", module, ".weight.delta_columns has ", d.a.shape[1], " columns, not a multiple of its ",
             d.blocks.size(), " blocks");
      std::set<int32_t> seen;
      for (int32_t j : d.blocks) {
        if (j < 0 || !seen.insert(j).second)
          fail(where, ": ", module, ".weight.delta_column_blocks lists block ", j, " (blocks must be distinct and >= 0)");
      }
      p.deltas.push_back(std::move(d));
    }
    if (parts.dense) p.deltas.push_back({DeltaKind::Dense, ref, host_view(file, *parts.dense), {}, {}, 1.0f});
    if (parts.lora_a || parts.lora_b) {
      if (!parts.lora_a || !parts.lora_b)
        fail(where, ": ", module, " has ", parts.lora_a ? "lora_A without lora_B" : "lora_B without lora_A");
      WeightDelta d{DeltaKind::LowRank, ref, host_view(file, *parts.lora_a), host_view(file, *parts.lora_b), {}, 1.0f};
      if (d.a.shape[0] != d.b.shape[1])
        fail(where, ": ", module, " has lora_A ", d.a.shape_string(), " and lora_B ", d.b.shape_string(),
             "; their ranks differ");
      const json entry = lora.value(module, json());
      if (!entry.is_object() || !entry.value("scaling", json()).is_number())
        fail(where, ": the manifest's \"lora\" object has no numeric \"scaling\" for ", module);
      d.scaling = entry["scaling"].get<float>();
      p.deltas.push_back(std::move(d));
    }
    if (parts.bias) p.deltas.push_back({DeltaKind::Bias, ref, host_view(file, *parts.bias), {}, {}, 1.0f});
  }
  p.manifest.extra.erase("lora");  // rewritten from the deltas
  if (p.deltas.empty()) fail(where, ": the profile holds no deltas");
  return p;
}

// --- writing -----------------------------------------------------------------------------------------

void write_profile(const Profile& p, const std::filesystem::path& path) {
  SafetensorsWriter w;
  auto add = [&](const std::string& name, const HostTensor& t) {
    w.add(name, t.dtype, t.shape, [t](void* dst) { std::memcpy(dst, t.data.get(), t.nbytes()); });
  };
  std::set<std::string> names;
  for (const WeightDelta& d : p.deltas) {
    const std::string m = module_name(d.module);
    auto unique = [&](const std::string& name) {
      if (!names.insert(name).second) fail("profile: two ", delta_kind_name(d.kind), " deltas on ", m, "; combine them first");
      return name;
    };
    switch (d.kind) {
      case DeltaKind::ColumnBlocks: {
        add(unique(m + ".weight.delta_columns"), d.a);
        auto blocks = std::make_shared<std::vector<int32_t>>(d.blocks);
        add(m + ".weight.delta_column_blocks", HostTensor{DType::I32, {int64_t(blocks->size())},
                                                           std::shared_ptr<const void>(blocks, blocks->data())});
        break;
      }
      case DeltaKind::Dense: add(unique(m + ".weight.delta"), d.a); break;
      case DeltaKind::LowRank:
        add(unique(m + ".lora_A.weight"), d.a);
        add(m + ".lora_B.weight", d.b);
        break;
      case DeltaKind::Bias: add(unique(m + ".bias.delta"), d.a); break;
    }
  }
  w.set_metadata(kProfileMetadataKey, p.manifest.to_json(p.deltas).dump());
  w.set_metadata("format", "pt");  // what torch's safetensors writes; some readers look for it
  w.write(path);
}

// --- fitting a model ---------------------------------------------------------------------------------

void check_profile_fits(const Profile& p, const ModelConfig& config, const std::string& fingerprint,
                        bool allow_mismatch, const std::function<void(const std::string&)>& warn) {
  const std::string& where = p.source.empty() ? std::string("profile") : p.source;
  for (const WeightDelta& d : p.deltas) {
    const std::string m = module_name(d.module);
    if (d.module.layer >= config.n_layers)
      fail(where, ": a ", delta_kind_name(d.kind), " delta on ", m, " but the model has ", config.n_layers,
           " layers; the profile was made for another model");
    const auto [out, in] = projection_shape(config, d.module.projection);
    auto mismatch = [&](const std::string& what, const std::string& found, const std::string& expected) {
      fail(where, ": ", what, " of ", m, " is ", found, " but the model's ", projection_name(d.module.projection), " needs ",
           expected, "; the profile was made for a model of another shape");
    };
    const std::string dims = "[" + std::to_string(out) + ", " + std::to_string(in) + "]";
    switch (d.kind) {
      case DeltaKind::ColumnBlocks: {
        const int64_t c = d.block_width();
        if (d.a.shape[0] != out || in % c != 0)
          mismatch("the column-block delta", d.a.shape_string() + " (blocks of " + std::to_string(c) + " columns)",
                   std::to_string(out) + " rows and blocks dividing " + std::to_string(in) + " columns");
        for (int32_t j : d.blocks) {
          if (int64_t(j) >= in / c)
            fail(where, ": ", m, " column block ", j, " is outside the model's ", in / c, " blocks of ", c, " columns",
                 d.module.projection == Projection::O ? " (heads)" : "");
        }
        break;
      }
      case DeltaKind::Dense:
        if (d.a.shape != std::vector<int64_t>{out, in}) mismatch("the dense delta", d.a.shape_string(), dims);
        break;
      case DeltaKind::LowRank:
        if (d.a.shape[1] != in || d.b.shape[0] != out)
          mismatch("the low-rank delta", "A " + d.a.shape_string() + ", B " + d.b.shape_string(),
                   "A [r, " + std::to_string(in) + "], B [" + std::to_string(out) + ", r]");
        break;
      case DeltaKind::Bias:
        if (d.a.shape != std::vector<int64_t>{out}) mismatch("the bias delta", d.a.shape_string(), "[" + std::to_string(out) + "]");
        break;
    }
  }
  const ProfileManifest& m = p.manifest;
  if (m.base_fingerprint.empty()) {
    if (warn) warn(where + ": no base-model fingerprint (a PEFT adapter); only shapes were checked");
    return;
  }
  if (m.base_fingerprint != fingerprint) {
    const std::string made_for = (m.base_name.empty() ? std::string("a model") : "'" + m.base_name + "'") +
                                 " (fingerprint " + m.base_fingerprint + ")";
    if (!allow_mismatch)
      fail(where, " was made for ", made_for, ", not for this model (fingerprint ", fingerprint,
           "). Use the model it was made for, or pass --allow-fingerprint-mismatch to apply it anyway");
    if (warn) warn(where + " was made for " + made_for + ", not for this model (" + fingerprint + "); applied anyway");
  }
}

// --- densifying --------------------------------------------------------------------------------------

std::vector<float> weight_delta_f32(const Profile& p, ModuleRef module, int64_t out, int64_t in) {
  std::vector<float> dw;
  for (const WeightDelta* d : p.deltas_on(module)) {
    if (d->kind == DeltaKind::Bias) continue;
    if (dw.empty()) dw.assign(size_t(out * in), 0.0f);
    const std::vector<float> a = d->a.to_f32();
    switch (d->kind) {
      case DeltaKind::ColumnBlocks: {
        const int64_t c = d->block_width(), k = int64_t(d->blocks.size());
        for (int64_t i = 0; i < out; i++)
          for (int64_t j = 0; j < k; j++)
            for (int64_t e = 0; e < c; e++) dw[size_t(i * in + d->blocks[size_t(j)] * c + e)] += a[size_t(i * k * c + j * c + e)];
        break;
      }
      case DeltaKind::Dense:
        for (size_t i = 0; i < dw.size(); i++) dw[i] += a[i];
        break;
      case DeltaKind::LowRank: {  // scaling · B [out, r] · A [r, in], as PEFT merges (B @ A) * scaling
        const std::vector<float> b = d->b.to_f32();
        const int64_t r = d->a.shape[0];
        std::vector<float> row(static_cast<size_t>(in));
        for (int64_t i = 0; i < out; i++) {
          std::fill(row.begin(), row.end(), 0.0f);
          for (int64_t k = 0; k < r; k++) {
            const float bik = b[size_t(i * r + k)];
            for (int64_t j = 0; j < in; j++) row[size_t(j)] += bik * a[size_t(k * in + j)];
          }
          for (int64_t j = 0; j < in; j++) dw[size_t(i * in + j)] += row[size_t(j)] * d->scaling;
        }
        break;
      }
      case DeltaKind::Bias: break;
    }
  }
  return dw;
}

std::vector<float> bias_delta_f32(const Profile& p, ModuleRef module, int64_t out) {
  std::vector<float> db;
  for (const WeightDelta* d : p.deltas_on(module)) {
    if (d->kind != DeltaKind::Bias) continue;
    if (db.empty()) db.assign(size_t(out), 0.0f);
    const std::vector<float> a = d->a.to_f32();
    for (size_t i = 0; i < db.size(); i++) db[i] += a[i];
  }
  return db;
}

// --- Profile -----------------------------------------------------------------------------------------

size_t Profile::nbytes() const {
  size_t n = 0;
  for (const WeightDelta& d : deltas) n += d.nbytes();
  return n;
}

std::vector<const WeightDelta*> Profile::deltas_on(ModuleRef module) const {
  std::vector<const WeightDelta*> out;
  for (const WeightDelta& d : deltas) {
    if (d.module == module) out.push_back(&d);
  }
  return out;
}

int Profile::min_layer() const {
  int first = INT_MAX;
  for (const WeightDelta& d : deltas) first = std::min(first, d.module.layer);
  return first;
}

std::string describe_profile(const Profile& p) {
  const ProfileManifest& m = p.manifest;
  std::ostringstream os;
  auto mib = [](size_t b) { return double(b) / (1024.0 * 1024.0); };
  os << "profile      " << (p.source.empty() ? "(in memory)" : p.source) << "\n";
  os << "method       " << m.method << " (format version " << m.format_version << ")\n";
  std::string langs;
  for (const auto& l : m.languages) langs += (langs.empty() ? "" : ", ") + l;
  os << "languages    " << (langs.empty() ? "-" : langs) << "\n";
  os << "base model   " << (m.base_name.empty() ? "-" : m.base_name)
     << (m.base_architecture.empty() ? "" : " (" + m.base_architecture + ")") << "\n";
  os << "fingerprint  " << (m.base_fingerprint.empty() ? "none (shapes are checked only)" : m.base_fingerprint) << "\n";
  for (auto it = m.sources.begin(); it != m.sources.end(); ++it) {
    os << "source       " << it.key() << ": " << it.value().value("name", std::string("-")) << " ("
       << it.value().value("fingerprint", std::string("?")) << ")\n";
  }
  if (m.scale) os << "scale        " << *m.scale << "\n";
  if (!m.description.empty()) os << "description  " << m.description << "\n";
  if (!m.created_by.empty()) os << "created by   " << m.created_by << "\n";
  if (!m.heads.empty()) {
    std::map<int32_t, std::vector<int32_t>> by_layer;
    for (const auto& [l, h] : m.heads) by_layer[l].push_back(h);
    os << "heads        " << m.heads.size() << " in " << by_layer.size() << " layers\n";
    for (auto& [l, hs] : by_layer) {
      std::sort(hs.begin(), hs.end());
      os << "  layer " << l << ":";
      for (int32_t h : hs) os << " " << h;
      os << "\n";
    }
  }
  os << "deltas       " << p.deltas.size() << ", " << mib(p.nbytes()) << " MiB\n";
  for (const WeightDelta& d : p.deltas) {
    os << "  " << module_name(d.module) << "  " << delta_kind_name(d.kind) << " " << dtype_name(d.a.dtype) << " "
       << d.a.shape_string();
    if (d.kind == DeltaKind::LowRank) os << " x " << d.b.shape_string() << " scaling " << d.scaling;
    if (d.kind == DeltaKind::ColumnBlocks) os << " (" << d.blocks.size() << " blocks of " << d.block_width() << ")";
    os << "\n";
  }
  return os.str();
}

}  // namespace tiller
