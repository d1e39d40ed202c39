// GGUF, llama.cpp's single-file model format: a memory-mapped reader that validates every field
// of the header, the metadata and the tensor table against the file before anything is used.
//
// Layout (little-endian, versions 2 and 3):
//   "GGUF" u32 version, u64 tensor_count, u64 kv_count
//   kv_count x (string key, u32 value type, value)          string = u64 length + UTF-8 bytes
//   tensor_count x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
//   padding to general.alignment (32 by default), then the data section; offsets are relative
//   to its start and multiples of the alignment.
// ne[0] is the fastest-varying dimension, so a matrix stored as [out, in] row-major (HF layout)
// has ne = {in, out}; TensorInfo.shape is in tiller's order, slowest first.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/mapped_file.h"
#include "engine/tensor.h"

namespace tiller {

struct GgufValue {
  enum class Type : uint32_t { U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };
  Type type = Type::U8;
  // Scalars: integers in `integer` (sign-extended), floats in `real`, bools as 0/1 in `integer`.
  int64_t integer = 0;
  uint64_t uinteger = 0;
  double real = 0;
  std::string_view text;  // String (a view into the mapping)
  // Arrays: the element type and count; numbers are read with at(), strings are in `strings`.
  Type elem_type = Type::U8;
  uint64_t count = 0;
  const uint8_t* elems = nullptr;         // numeric array elements, packed little-endian
  std::vector<std::string_view> strings;  // string arrays

  bool is_integer() const;
  bool is_number() const;
  // Element i of a numeric array as double (exact for every integer up to 2^53 and every float).
  double number_at(uint64_t i) const;
  int64_t integer_at(uint64_t i) const;
};

std::string_view gguf_type_name(GgufValue::Type t);

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::string type_name;       // "Q4_K", "IQ2_XXS", ...
  std::optional<DType> dtype;  // empty when tiller cannot compute with this type
  std::vector<int64_t> shape;  // slowest dimension first (ne reversed)
  size_t offset = 0;           // absolute byte offset in the file
  size_t nbytes = 0;

  std::string shape_string() const;
};

class GgufFile final : public MappedFile {
 public:
  // Maps and validates the file; throws Error naming the file and the field on any problem.
  static std::shared_ptr<GgufFile> open(const std::filesystem::path& path);
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // Typed getters: nullopt when the key is absent; an Error naming the key when it has another type.
  std::optional<uint64_t> get_uint(std::string_view key) const;  // any non-negative integer type
  std::optional<double> get_number(std::string_view key) const;  // any integer or float type
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Arrays: the value when it is an array of the given kind (strings / numbers), else an Error.
  const GgufValue* get_string_array(std::string_view key) const;
  const GgufValue* get_number_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // A CPU view of the tensor's bytes (valid while this file lives); refuses types tiller lacks.
  Tensor view(const GgufTensorInfo& info) const;

 private:
  GgufFile() = default;
  [[noreturn]] void bad_type(std::string_view key, const GgufValue& v, const char* expected) const;

  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Whether `path` is a regular file starting with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace tiller
