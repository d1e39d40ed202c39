// Model::load: the HF tensor-name table (weight_specs.h) -> ModelWeights, every tensor checked,
// from whichever WeightSource the path holds (an HF folder's safetensors or a GGUF file).
//
// Large matrices are used in place from the mapped files (the CPU backend reads BF16 and the
// quantized types its kernels know directly; a device backend copies them once); norms and
// biases, a few KB each, become F32.
#include <cstdio>
#include <map>
#include <set>

#include "engine/checkpoint.h"
#include "engine/error.h"
#include "engine/gguf.h"
#include "models/gguf_model.h"
#include "models/model.h"
#include "models/weight_source.h"
#include "models/weight_specs.h"

namespace tiller {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

class SafetensorsSource final : public WeightSource {
 public:
  explicit SafetensorsSource(const std::filesystem::path& dir) : ckpt_(Checkpoint::open(dir)) {}

  std::optional<Info> info(const std::string& name) const override {
    const TensorInfo* t = ckpt_.find(name);
    if (!t) return std::nullopt;
    return Info{t->shape, t->dtype_name, t->dtype, ckpt_.file_of(name).path().string()};
  }
  Tensor view(const std::string& name) override { return ckpt_.file_of(name).view(*ckpt_.find(name)); }
  std::vector<std::string> unused(const std::vector<std::string>& used) const override {
    const std::set<std::string> u(used.begin(), used.end());
    std::vector<std::string> out;
    for (const auto& name : ckpt_.names()) {
      // Tensors HF checkpoints sometimes carry that the model does not use.
      if (!u.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos) out.push_back(name);
    }
    return out;
  }
  std::vector<std::shared_ptr<const void>> storage() const override {
    return {ckpt_.files().begin(), ckpt_.files().end()};
  }
  std::vector<std::shared_ptr<const MappedFile>> files() const override {
    return {ckpt_.files().begin(), ckpt_.files().end()};
  }

 private:
  Checkpoint ckpt_;
};

// Checks that `spec` is in the source with the right shape and a type tiller computes with.
WeightSource::Info find_checked(const WeightSource& src, const WeightSpec& spec, const std::string& where,
                                const char* config_name) {
  const std::optional<WeightSource::Info> info = src.info(spec.name);
  if (!info) {
    const bool head = spec.name == "lm_head.weight";
    fail("missing tensor \"", spec.name, "\" (expected shape ", shape_str(spec.shape), ") in the weights of ", where,
         head ? ". The config says the output matrix is not tied to the embedding, so it must be stored."
              : std::string(". The weights do not match ") + config_name + ", or a shard is incomplete.");
  }
  if (info->shape != spec.shape) {
    fail(info->file, ": tensor \"", spec.name, "\" has shape ", shape_str(info->shape), " but ", config_name,
         " implies ", shape_str(spec.shape), ". The weights and the config disagree.");
  }
  const bool readable = info->dtype && (is_float(*info->dtype) || (is_quantized(*info->dtype) && !spec.is_vector));
  if (!readable) {
    fail(info->file, ": tensor \"", spec.name, "\" has dtype ", info->type_name,
         "; tiller reads F32, F16 and BF16 weights (and GGUF's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K to Q6_K for "
         "matrices). Re-save the model in bfloat16 or float32, or requantize it to one of those types.");
  }
  return *info;
}

// `src` converted to `type` in host memory owned by `storage` (the backend then places it).
Tensor converted(const Tensor& src, DType type, std::vector<std::shared_ptr<const void>>& storage) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(dtype_bytes(type, src.numel()));
  convert(src.dtype, src.data, type, bytes->data(), src.numel());
  storage.push_back(bytes);
  Tensor t = src;
  t.data = bytes->data();
  t.dtype = type;
  return t;
}

}  // namespace

std::unique_ptr<WeightSource> open_safetensors_source(const std::filesystem::path& dir) {
  return std::make_unique<SafetensorsSource>(dir);
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, Backend& backend, const LoadOptions& options) {
  const bool gguf = is_gguf_file(path);
  std::shared_ptr<GgufFile> gguf_file = gguf ? GgufFile::open(path) : nullptr;
  const ModelConfig config = gguf ? gguf_model_config(*gguf_file) : load_model_config(path);
  std::unique_ptr<WeightSource> src = gguf ? open_gguf_source(gguf_file, config) : open_safetensors_source(path);
  const char* config_name = gguf ? "the GGUF metadata" : "config.json";

  std::vector<Buffer> owned;
  std::vector<std::shared_ptr<const void>> storage;  // converted copies, then the source's own
  ModelWeights w;
  w.layers.resize(size_t(config.n_layers));
  std::vector<std::string> used;
  std::map<std::string, int> converted_types;  // "Q5_K -> BF16": count

  for (const WeightSpec& spec : weight_specs(config)) {
    const WeightSource::Info info = find_checked(*src, spec, path.string(), config_name);
    Tensor host = src->view(spec.name);
    Tensor placed;
    if (spec.is_vector) {
      std::vector<float> f32(static_cast<size_t>(host.numel()));
      to_f32(host.dtype, host.data, f32.data(), f32.size());
      owned.push_back(backend.alloc(f32.size() * sizeof(float)));
      backend.upload(owned.back().data(), f32.data(), f32.size() * sizeof(float));
      placed = owned.back().as(DType::F32, {host.numel()});
    } else {
      if (options.weight_dtype && host.dtype != *options.weight_dtype) host = converted(host, *options.weight_dtype, storage);
      placed = backend.place_weight(host, owned);
      if (placed.dtype != info.dtype.value())
        converted_types[info.type_name + " to " + std::string(dtype_name(placed.dtype))]++;
    }
    if (spec.layer >= 0) w.layers[size_t(spec.layer)].*spec.layer_field = placed;
    else w.*spec.model_field = placed;
    used.push_back(spec.name);
  }
  // Tied: HF uses the embedding as the output matrix even when lm_head.weight is also stored.
  if (config.tie_word_embeddings) {
    w.lm_head = w.embed;
    used.push_back("lm_head.weight");
  }

  if (!options.quiet) {
    for (const auto& [what, n] : converted_types) {
      std::fprintf(stderr, "tiller: %s: %d weight tensor(s) converted from %s at load (%s)\n", path.string().c_str(),
                   n, what.c_str(), options.weight_dtype ? "as asked" : "no kernel reads that type directly on this backend");
    }
  }
  const std::vector<std::string> unused = src->unused(used);
  if (!unused.empty()) {
    std::fprintf(stderr, "tiller: warning: %zu tensor(s) in %s are not used by %s (first: %s)\n", unused.size(),
                 path.string().c_str(), config.architecture_name.c_str(), unused.front().c_str());
  }
  for (auto& s : src->storage()) storage.push_back(std::move(s));
  auto model = std::make_unique<Model>(config, backend, std::move(w), std::move(owned), std::move(storage), src->files());
  model->check_files_unchanged("loading");  // what was copied or will be read came from the file as opened
  return model;
}

void Model::check_files_unchanged(const std::string& while_doing) const {
  for (const auto& f : files_) f->check_unchanged(while_doing);
}

}  // namespace tiller
