// Where a model's tensors come from, presented under HF names and shapes: the safetensors of an
// HF folder (Checkpoint) or a GGUF file (models/gguf_model.h). Model::load checks and places every
// tensor the same way whichever it is, so a GGUF file yields the same ModelWeights as a folder.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/mapped_file.h"
#include "engine/tensor.h"

namespace tiller {

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  struct Info {
    std::vector<int64_t> shape;  // HF layout: [out, in] for matrices
    std::string type_name;       // as stored ("BF16", "Q4_K", "IQ2_XXS", "F8_E4M3", ...)
    std::optional<DType> dtype;  // empty when tiller does not read this type
    std::string file;            // for messages: the file (and the stored name, when it differs)
  };
  // The tensor stored under HF name `name`, or nullopt when absent.
  virtual std::optional<Info> info(const std::string& name) const = 0;
  // A CPU view of it (info() said it exists with a readable dtype), valid while storage() lives.
  virtual Tensor view(const std::string& name) = 0;
  // HF names (or stored names, for tensors without one) of every tensor the model does not read
  // from `used`: the loader warns about them.
  virtual std::vector<std::string> unused(const std::vector<std::string>& used) const = 0;
  // What keeps the views alive (mapped files, reordered copies).
  virtual std::vector<std::shared_ptr<const void>> storage() const = 0;
  // The mapped files the views come from, so the model can tell later whether one changed on disk.
  virtual std::vector<std::shared_ptr<const MappedFile>> files() const = 0;
};

// The safetensors of an HF model folder (Checkpoint::open).
std::unique_ptr<WeightSource> open_safetensors_source(const std::filesystem::path& dir);

}  // namespace tiller
