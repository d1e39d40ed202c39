// save_trained_model: trained tensors in the base dtype, and the base folder's other files.
#include "train/save_weights.h"

#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/weight_specs.h"

namespace tiller {
namespace fs = std::filesystem;

void save_trained_model(const Trainable& trainable, const fs::path& model_dir, const fs::path& out_dir) {
  if (trainable.spec().kind != TrainKind::Full) fail("--save-model needs --train full");
  if (fs::exists(out_dir / "model.safetensors")) fail("--save-model ", out_dir.string(), " already holds a model");
  fs::create_directories(out_dir);
  const Model& base = trainable.base();
  Backend& be = base.backend();
  SafetensorsWriter w;
  for (const WeightSpec& s : weight_specs(base.config())) {
    const Param* p = trainable.find_param(s.name);
    TILLER_CHECK(p, "no trained tensor ", s.name);
    // Norms and biases stay F32 as the loader widened them; matrices go back to the stored dtype.
    const Tensor& src = s.layer >= 0 ? base.weights().layers[size_t(s.layer)].*(s.layer_field) : base.weights().*(s.model_field);
    const DType dtype = s.is_vector ? DType::F32 : src.dtype;
    w.add(s.name, dtype, s.shape, [&be, p, dtype](void* dst) {
      const std::vector<float> v = download_f32(be, p->value_t());
      from_f32(dtype, v.data(), dst, v.size());
    });
  }
  w.set_metadata("format", "pt");
  w.write(out_dir / "model.safetensors");
  for (const auto& e : fs::directory_iterator(model_dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_regular_file() || n.find(".safetensors") != std::string::npos || n.ends_with(".bin")) continue;
    fs::copy_file(e.path(), out_dir / n, fs::copy_options::overwrite_existing);
  }
}

}  // namespace tiller
