// Model::load: the HF tensor-name table (weight_specs.h) -> ModelWeights, every tensor checked.
//
// Large matrices are used in place from the mapped files (the CPU backend reads BF16 directly;
// a device backend copies them once); norms and biases, a few KB each, become F32.
#include <cstdio>
#include <set>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "models/model.h"
#include "models/weight_specs.h"

namespace tiller {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Checks that `spec` is in the checkpoint with the right shape and a dtype tiller computes with.
const TensorInfo& find_checked(const Checkpoint& ckpt, const WeightSpec& spec, const std::filesystem::path& dir) {
  const TensorInfo* info = ckpt.find(spec.name);
  if (!info) {
    const bool head = spec.name == "lm_head.weight";
    fail("missing tensor \"", spec.name, "\" (expected shape ", shape_str(spec.shape), ") in the weights of ",
         dir.string(), head ? ". config.json says tie_word_embeddings is false, so the output matrix must be stored; "
                              "set \"tie_word_embeddings\": true if the model shares the embedding."
                            : ". The weights do not match config.json, or a shard is incomplete.");
  }
  const std::string file = ckpt.file_of(spec.name).path().string();
  if (info->shape != spec.shape) {
    fail(file, ": tensor \"", spec.name, "\" has shape ", info->shape_string(), " but config.json implies ",
         shape_str(spec.shape), ". The weights and config.json disagree.");
  }
  if (!info->dtype || !is_float(*info->dtype)) {
    fail(file, ": tensor \"", spec.name, "\" has dtype ", info->dtype_name,
         "; tiller reads F32, F16 and BF16 weights. Re-save the model in bfloat16 or float32.");
  }
  return *info;
}

// Tensors HF checkpoints sometimes carry that the model does not use.
bool ignorable(const std::string& name) { return name.find("rotary_emb.inv_freq") != std::string::npos; }

}  // namespace

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, Backend& backend) {
  const ModelConfig config = load_model_config(dir);
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::vector<Buffer> owned;
  ModelWeights w;
  w.layers.resize(size_t(config.n_layers));
  std::set<std::string> used;

  for (const WeightSpec& spec : weight_specs(config)) {
    const TensorInfo& info = find_checked(ckpt, spec, dir);
    const Tensor src = ckpt.file_of(spec.name).view(info);
    Tensor placed;
    if (spec.is_vector) {
      std::vector<float> host(static_cast<size_t>(src.numel()));
      to_f32(src.dtype, src.data, host.data(), host.size());
      owned.push_back(backend.alloc(host.size() * sizeof(float)));
      backend.upload(owned.back().data(), host.data(), host.size() * sizeof(float));
      placed = owned.back().as(DType::F32, {src.numel()});
    } else {
      placed = backend.place_weight(src, owned);
    }
    if (spec.layer >= 0) w.layers[size_t(spec.layer)].*spec.layer_field = placed;
    else w.*spec.model_field = placed;
    used.insert(spec.name);
  }
  // Tied: HF uses the embedding as the output matrix even when lm_head.weight is also stored.
  if (config.tie_word_embeddings) {
    w.lm_head = w.embed;
    used.insert("lm_head.weight");
  }

  std::vector<std::string> unused;
  for (const auto& name : ckpt.names()) {
    if (!used.count(name) && !ignorable(name)) unused.push_back(name);
  }
  if (!unused.empty()) {
    std::fprintf(stderr, "tiller: warning: %zu tensor(s) in %s are not used by %s (first: %s)\n", unused.size(),
                 dir.string().c_str(), config.architecture_name.c_str(), unused.front().c_str());
  }
  auto model = std::make_unique<Model>(config, backend, std::move(w), std::move(owned), ckpt.files());
  model->check_files_unchanged("loading");  // what was copied or will be read came from the file as opened
  return model;
}

void Model::check_files_unchanged(const std::string& while_doing) const {
  for (const auto& f : files_) f->check_unchanged(while_doing);
}

}  // namespace tiller
