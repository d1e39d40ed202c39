// safetensors files: a memory-mapped reader that validates the header against the file, and a
// streaming writer (random-init models, steering profiles, attribution scores).
//
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets},
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/mapped_file.h"
#include "engine/tensor.h"

namespace tiller {

struct TensorInfo {
  std::string name;
  std::string dtype_name;       // as written ("BF16", "F8_E4M3", ...)
  std::optional<DType> dtype;   // empty when tiller does not read this dtype
  std::vector<int64_t> shape;
  size_t offset = 0;            // absolute byte offset in the file
  size_t nbytes = 0;

  std::string shape_string() const;
};

class SafetensorsFile final : public MappedFile {
 public:
  // Maps the file and validates every tensor entry; throws Error naming the file on any problem
  // (truncation, a header that is not JSON, offsets outside the data section, size mismatches).
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;

  // A CPU view of the tensor's bytes in the mapping (valid while this file lives). Throws when
  // the tensor is absent or its dtype is not one tiller reads.
  Tensor view(const std::string& name) const;
  Tensor view(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes a safetensors file tensor by tensor, so a multi-GB model never has to be in memory.
class SafetensorsWriter {
 public:
  // fill(dst) writes the tensor's nbytes into dst.
  using Fill = std::function<void(void* dst)>;

  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, Fill fill);
  void add(const std::string& name, const Tensor& cpu_tensor);  // copies from a CPU tensor
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Tensors are stored in name order, as torch's safetensors does. Writes to a temporary file
  // and renames it into place, so a failure never leaves a truncated file behind.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    Fill fill;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tiller
