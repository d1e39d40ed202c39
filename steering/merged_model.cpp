// Writing a model folder with a profile merged in.
#include "steering/merged_model.h"

#include <cstring>
#include <fstream>
#include <set>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "steering/profile_delta.h"

namespace tiller {

namespace {

bool is_weight_file(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  return name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json") || name.ends_with(".bin") ||
         name.ends_with(".bin.index.json") || name.ends_with(".pth") || name.ends_with(".gguf");
}

}  // namespace

void write_merged_model(const std::filesystem::path& model_dir, const Profile& profile, const std::filesystem::path& out_dir) {
  namespace fs = std::filesystem;
  if (fs::exists(out_dir / "config.json") || fs::exists(out_dir / "model.safetensors"))
    fail(out_dir.string(), " already holds a model; choose a new folder for the merged model");
  if (fs::exists(out_dir) && fs::equivalent(out_dir, model_dir)) fail("the output folder is the model folder itself");
  const ModelConfig config = load_model_config(model_dir);
  json config_json = read_json_file(model_dir / "config.json");
  const Checkpoint ckpt = Checkpoint::open(model_dir);

  // Biases the profile adds where the config has none: Llama can switch them on, per family.
  bool need_attention_bias = false, need_mlp_bias = false;
  for (const WeightDelta& d : profile.deltas) {
    if (d.kind == DeltaKind::LowRank || d.kind == DeltaKind::Dense || d.kind == DeltaKind::ColumnBlocks) {
      if (d.module.projection == Projection::LmHead && config.tie_word_embeddings)
        fail("the profile changes lm_head, which this model ties to the embedding; a merged folder would re-tie it. "
             "Apply the profile with --profile instead");
      continue;
    }
    const Projection p = d.module.projection;
    const bool mlp = p == Projection::Gate || p == Projection::Up || p == Projection::Down;
    const bool has = mlp ? config.mlp_bias : (p == Projection::O ? config.o_bias : config.qkv_bias);
    if (has) continue;
    if (config.architecture != Architecture::Llama) {
      fail(config.architecture_name, " has no ", mlp ? "MLP" : "attention", " bias in HF transformers, so the profile's ",
           "bias delta on ", module_name(d.module), " cannot be merged into a folder other tools load. Apply the profile "
           "with --profile instead");
    }
    (mlp ? need_mlp_bias : need_attention_bias) = true;
  }
  ModelConfig merged_config = config;
  if (need_attention_bias) {
    merged_config.qkv_bias = merged_config.o_bias = true;
    config_json["attention_bias"] = true;
  }
  if (need_mlp_bias) {
    merged_config.mlp_bias = true;
    config_json["mlp_bias"] = true;
  }

  SafetensorsWriter w;
  std::set<std::string> written;
  for (const WeightSpec& spec : weight_specs(merged_config)) {
    const TensorInfo* info = ckpt.find(spec.name);
    const Tensor src = info ? ckpt.file_of(spec.name).view(*info) : Tensor();
    std::optional<ModuleRef> module;
    const std::string suffix = spec.name.ends_with(".weight") ? ".weight" : spec.name.ends_with(".bias") ? ".bias" : "";
    if (!suffix.empty()) module = parse_module_name(spec.name.substr(0, spec.name.size() - suffix.size()));
    written.insert(spec.name);
    if (!module) {
      if (!info) fail(model_dir.string(), ": missing tensor ", spec.name);
      w.add(spec.name, src);
      continue;
    }
    const auto [out, in] = projection_shape(config, module->projection);
    if (suffix == ".weight") {
      std::vector<float> dw = weight_delta_f32(profile, *module, out, in);
      if (dw.empty()) {
        w.add(spec.name, src);
        continue;
      }
      const DType dtype = is_float(src.dtype) ? src.dtype : DType::BF16;
      auto bytes = std::make_shared<std::vector<uint8_t>>(merged_weight(src, dw, dtype));
      w.add(spec.name, dtype, {out, in}, [bytes](void* dst) { std::memcpy(dst, bytes->data(), bytes->size()); });
      continue;
    }
    std::vector<float> db = bias_delta_f32(profile, *module, out);  // a bias: stored value + Δb, or Δb, or zeros
    const DType dtype = info ? *info->dtype : merged_config.dtype.value_or(DType::F32);
    if (db.empty() && info) {
      w.add(spec.name, src);
      continue;
    }
    std::vector<float> value(static_cast<size_t>(out), 0.0f);
    if (info) to_f32(src.dtype, src.data, value.data(), value.size());
    for (size_t i = 0; i < db.size(); i++) value[i] += db[i];
    auto bytes = std::make_shared<std::vector<uint8_t>>(value.size() * dtype_size(dtype));
    from_f32(dtype, value.data(), bytes->data(), value.size());
    w.add(spec.name, dtype, {out}, [bytes](void* dst) { std::memcpy(dst, bytes->data(), bytes->size()); });
  }
  for (const std::string& name : ckpt.names()) {  // tensors the decoder does not read travel along
    if (!written.count(name)) w.add(name, ckpt.file_of(name).view(*ckpt.find(name)));
  }
  w.set_metadata("format", "pt");
  w.set_metadata("tiller_merged_profile", profile.manifest.to_json(profile.deltas).dump());

  fs::create_directories(out_dir);
  w.write(out_dir / "model.safetensors");
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    if (!entry.is_regular_file() || is_weight_file(entry.path()) || entry.path().filename() == "config.json") continue;
    fs::copy_file(entry.path(), out_dir / entry.path().filename(), fs::copy_options::overwrite_existing);
  }
  std::ofstream(out_dir / "config.json") << config_json.dump(2) << "\n";
}

}  // namespace tiller
