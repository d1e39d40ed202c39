// GGUF reader: every read is bounds-checked against the mapping, so a truncated or hostile file
// is refused with the field that is wrong, never read past its end.
#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "engine/error.h"

namespace tiller {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr size_t kMaxDims = 4;

// Every ggml type the format defines (ggml.h), with its block size and bytes per block, so a file
// holding types tiller does not compute with is still validated, and refused by name only when
// such a tensor is used. Ids ggml removed (4, 5, 31-33, 36-38) and newer ones are unknown.
struct GgmlType {
  const char* name;
  int64_t block;
  size_t bytes;
  std::optional<DType> dtype;
};

const GgmlType* ggml_type(uint32_t id) {
  static const std::map<uint32_t, GgmlType> types = {
      {0, {"F32", 1, 4, DType::F32}},         {1, {"F16", 1, 2, DType::F16}},
      {2, {"Q4_0", 32, 18, DType::Q4_0}},     {3, {"Q4_1", 32, 20, DType::Q4_1}},
      {6, {"Q5_0", 32, 22, DType::Q5_0}},     {7, {"Q5_1", 32, 24, DType::Q5_1}},
      {8, {"Q8_0", 32, 34, DType::Q8_0}},     {9, {"Q8_1", 32, 40, {}}},
      {10, {"Q2_K", 256, 84, DType::Q2_K}},   {11, {"Q3_K", 256, 110, DType::Q3_K}},
      {12, {"Q4_K", 256, 144, DType::Q4_K}},  {13, {"Q5_K", 256, 176, DType::Q5_K}},
      {14, {"Q6_K", 256, 210, DType::Q6_K}},  {15, {"Q8_K", 256, 292, {}}},
      {16, {"IQ2_XXS", 256, 66, {}}},         {17, {"IQ2_XS", 256, 74, {}}},
      {18, {"IQ3_XXS", 256, 98, {}}},         {19, {"IQ1_S", 256, 50, {}}},
      {20, {"IQ4_NL", 32, 18, {}}},           {21, {"IQ3_S", 256, 110, {}}},
      {22, {"IQ2_S", 256, 82, {}}},           {23, {"IQ4_XS", 256, 136, {}}},
      {24, {"I8", 1, 1, {}}},                 {25, {"I16", 1, 2, {}}},
      {26, {"I32", 1, 4, DType::I32}},        {27, {"I64", 1, 8, DType::I64}},
      {28, {"F64", 1, 8, {}}},                {29, {"IQ1_M", 256, 56, {}}},
      {30, {"BF16", 1, 2, DType::BF16}},      {34, {"TQ1_0", 256, 54, {}}},
      {35, {"TQ2_0", 256, 66, {}}},           {39, {"MXFP4", 32, 17, {}}},
      {40, {"NVFP4", 64, 36, {}}},            {41, {"Q1_0", 128, 18, {}}},
  };
  auto it = types.find(id);
  return it == types.end() ? nullptr : &it->second;
}

size_t scalar_size(GgufValue::Type t) {
  using T = GgufValue::Type;
  switch (t) {
    case T::U8: case T::I8: case T::Bool: return 1;
    case T::U16: case T::I16: return 2;
    case T::U32: case T::I32: case T::F32: return 4;
    case T::U64: case T::I64: case T::F64: return 8;
    case T::String: case T::Array: return 0;
  }
  return 0;
}

// Reads a scalar of type t at p (unaligned, little-endian) into v's integer/real fields.
void decode_scalar(GgufValue::Type t, const uint8_t* p, GgufValue& v) {
  using T = GgufValue::Type;
  auto load = [p](auto x) {
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  switch (t) {
    case T::U8: v.uinteger = load(uint8_t{}); v.integer = int64_t(v.uinteger); break;
    case T::I8: v.integer = load(int8_t{}); break;
    case T::U16: v.uinteger = load(uint16_t{}); v.integer = int64_t(v.uinteger); break;
    case T::I16: v.integer = load(int16_t{}); break;
    case T::U32: v.uinteger = load(uint32_t{}); v.integer = int64_t(v.uinteger); break;
    case T::I32: v.integer = load(int32_t{}); break;
    case T::U64: v.uinteger = load(uint64_t{}); v.integer = int64_t(v.uinteger); break;
    case T::I64: v.integer = load(int64_t{}); break;
    case T::Bool: v.integer = load(uint8_t{}) != 0; break;
    case T::F32: v.real = load(float{}); break;
    case T::F64: v.real = load(double{}); break;
    case T::String: case T::Array: break;
  }
  if (t == T::I8 || t == T::I16 || t == T::I32 || t == T::I64) v.uinteger = uint64_t(v.integer);
  if (t != T::F32 && t != T::F64) v.real = (t == T::U64) ? double(v.uinteger) : double(v.integer);
}

// A cursor over the mapping: every read checks that the bytes exist.
class Reader {
 public:
  Reader(const uint8_t* base, size_t size, const std::string& where) : base_(base), size_(size), where_(where) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  const uint8_t* take(size_t n, const std::string& what) {
    if (n > remaining())
      fail(where_, ": truncated: ", what, " needs ", n, " bytes at offset ", pos_, " but the file has ", remaining(),
           " left (", size_, " in all). The file is incomplete or damaged; re-download it.");
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  std::string_view string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " (length)");
    if (n > remaining())
      fail(where_, ": ", what, " claims ", n, " bytes at offset ", pos_, " but only ", remaining(),
           " remain. The file is truncated or damaged.");
    return {reinterpret_cast<const char*>(take(size_t(n), what)), size_t(n)};
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& where_;
};

GgufValue::Type value_type(uint32_t raw, const std::string& where, const std::string& key) {
  if (raw > uint32_t(GgufValue::Type::F64))
    fail(where, ": metadata \"", key, "\" has value type ", raw, ", which GGUF does not define (0..12)");
  return GgufValue::Type(raw);
}

GgufValue read_value(Reader& r, GgufValue::Type type, const std::string& where, const std::string& key) {
  using T = GgufValue::Type;
  GgufValue v;
  v.type = type;
  const std::string what = "metadata \"" + key + "\"";
  if (type == T::String) {
    v.text = r.string(what);
  } else if (type == T::Array) {
    v.elem_type = value_type(r.read<uint32_t>(what + " (array type)"), where, key);
    v.count = r.read<uint64_t>(what + " (array length)");
    if (v.elem_type == T::Array) fail(where, ": ", what, " is an array of arrays, which tiller does not read");
    if (v.elem_type == T::String) {
      // Each string takes at least its 8-byte length: a bound before reserving memory.
      if (v.count > r.remaining() / 8)
        fail(where, ": ", what, " claims ", v.count, " strings but only ", r.remaining(), " bytes remain");
      v.strings.reserve(size_t(v.count));
      for (uint64_t i = 0; i < v.count; i++) v.strings.push_back(r.string(what + "[" + std::to_string(i) + "]"));
    } else {
      const size_t es = scalar_size(v.elem_type);
      if (v.count > r.remaining() / es)
        fail(where, ": ", what, " claims ", v.count, " elements of ", es, " bytes but only ", r.remaining(),
             " bytes remain. The file is truncated or damaged.");
      v.elems = r.take(size_t(v.count) * es, what);
    }
  } else {
    decode_scalar(type, r.take(scalar_size(type), what), v);
  }
  return v;
}

}  // namespace

bool GgufValue::is_integer() const {
  return type != Type::F32 && type != Type::F64 && type != Type::String && type != Type::Array && type != Type::Bool;
}
bool GgufValue::is_number() const { return is_integer() || type == Type::F32 || type == Type::F64; }

double GgufValue::number_at(uint64_t i) const {
  TILLER_CHECK(type == Type::Array && elems && i < count);
  GgufValue e;
  decode_scalar(elem_type, elems + i * scalar_size(elem_type), e);
  return e.real;
}

int64_t GgufValue::integer_at(uint64_t i) const {
  TILLER_CHECK(type == Type::Array && elems && i < count);
  GgufValue e;
  decode_scalar(elem_type, elems + i * scalar_size(elem_type), e);
  return e.integer;
}

std::string_view gguf_type_name(GgufValue::Type t) {
  static const char* names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                "bool",  "string", "array",  "uint64", "int64", "float64"};
  return names[size_t(t)];
}

std::string GgufTensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

std::shared_ptr<GgufFile> GgufFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::shared_ptr<GgufFile> file(new GgufFile());
  file->map(path);
  const size_t size = file->size_;
  if (size < 24) fail(where, ": truncated: ", size, " bytes, fewer than the 24-byte GGUF header. Re-download the file.");

  Reader r(file->base_, size, where);
  if (r.read<uint32_t>("magic") != kMagic) fail(where, ": not a GGUF file (it does not start with \"GGUF\")");
  file->version_ = r.read<uint32_t>("version");
  if (file->version_ == 1)
    fail(where, ": GGUF version 1 (2023) is not supported; convert the model again with a current llama.cpp");
  if (file->version_ != 2 && file->version_ != 3) {
    const bool swapped = (file->version_ & 0xffff) == 0 && file->version_ >> 24 <= 3;
    fail(where, ": GGUF version ", file->version_, swapped ? " (a big-endian file?)" : "",
         " is not supported; tiller reads little-endian GGUF versions 2 and 3");
  }
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Each entry takes at least 13 (metadata) or 28 (tensor) bytes: bounds before any allocation.
  if (n_kv > r.remaining() / 13 || n_tensors > r.remaining() / 28)
    fail(where, ": truncated or damaged: the header claims ", n_kv, " metadata entries and ", n_tensors,
         " tensors, more than the file's ", size, " bytes can hold. Re-download it.");

  for (uint64_t i = 0; i < n_kv; i++) {
    const std::string key(r.string("metadata key " + std::to_string(i)));
    const GgufValue::Type type = value_type(r.read<uint32_t>("metadata \"" + key + "\" type"), where, key);
    GgufValue v = read_value(r, type, where, key);
    if (!file->kv_.emplace(key, std::move(v)).second) fail(where, ": metadata key \"", key, "\" appears twice");
  }
  if (const GgufValue* a = file->find("general.alignment")) {
    if (a->type != GgufValue::Type::U32) file->bad_type("general.alignment", *a, "uint32");
    if (a->uinteger == 0 || (a->uinteger & (a->uinteger - 1)) != 0)
      fail(where, ": general.alignment ", a->uinteger, " is not a power of two");
    file->alignment_ = size_t(a->uinteger);
  }

  std::vector<std::pair<uint64_t, uint64_t>> spans;  // relative [offset, end) per tensor
  for (uint64_t i = 0; i < n_tensors; i++) {
    GgufTensorInfo t;
    t.name = std::string(r.string("tensor name " + std::to_string(i)));
    const std::string what = "tensor \"" + t.name + "\"";
    const uint32_t n_dims = r.read<uint32_t>(what + " (rank)");
    if (n_dims == 0 || n_dims > kMaxDims) fail(where, ": ", what, " has ", n_dims, " dimensions; GGUF allows 1 to 4");
    std::vector<int64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
      const uint64_t e = r.read<uint64_t>(what + " (shape)");
      if (e == 0 || e > uint64_t(INT64_MAX) / numel)
        fail(where, ": ", what, " has dimension ", d, " = ", e, ", which is zero or overflows the element count");
      numel *= e;
      ne[d] = int64_t(e);
    }
    t.ggml_type = r.read<uint32_t>(what + " (type)");
    const GgmlType* gt = ggml_type(t.ggml_type);
    if (!gt)
      fail(where, ": ", what, " has ggml type ", t.ggml_type,
           ", which tiller does not know (a newer llama.cpp type?). Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
           "Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.");
    t.type_name = gt->name;
    t.dtype = gt->dtype;
    if (ne[0] % gt->block != 0)
      fail(where, ": ", what, " has rows of ", ne[0], " values, not a multiple of the ", gt->name, " block of ",
           gt->block);
    const uint64_t rel = r.read<uint64_t>(what + " (offset)");
    if (rel % file->alignment_ != 0)
      fail(where, ": ", what, " starts at data offset ", rel, ", not a multiple of the alignment ", file->alignment_);
    t.nbytes = size_t(numel / uint64_t(gt->block)) * gt->bytes;
    t.shape.assign(ne.rbegin(), ne.rend());
    t.offset = size_t(rel);  // made absolute once the data section's start is known
    spans.emplace_back(rel, rel + t.nbytes);
    if (!file->tensor_index_.emplace(t.name, file->tensors_.size()).second)
      fail(where, ": tensor \"", t.name, "\" appears twice");
    file->tensors_.push_back(std::move(t));
  }
  const size_t data_start = (r.pos() + file->alignment_ - 1) / file->alignment_ * file->alignment_;
  const size_t data_size = data_start <= size ? size - data_start : 0;
  for (size_t i = 0; i < file->tensors_.size(); i++) {
    GgufTensorInfo& t = file->tensors_[i];
    if (spans[i].first > data_size || t.nbytes > data_size - spans[i].first)
      fail(where, ": truncated: tensor \"", t.name, "\" (", t.type_name, " ", t.shape_string(), ") needs bytes [",
           spans[i].first, ", ", spans[i].first + t.nbytes, ") of the data section, which holds ", data_size,
           ". The file is incomplete (an interrupted download?); re-download it.");
    t.offset = data_start + spans[i].first;
  }
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a].first < spans[b].first; });
  for (size_t i = 1; i < order.size(); i++) {
    if (spans[order[i]].first < spans[order[i - 1]].second)
      fail(where, ": tensors \"", file->tensors_[order[i - 1]].name, "\" and \"", file->tensors_[order[i]].name,
           "\" overlap in the data section. The file is damaged.");
  }
  // Weights are streamed once per token; let the kernel read ahead.
  madvise(const_cast<uint8_t*>(file->base_), size, MADV_WILLNEED);
  return file;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

void GgufFile::bad_type(std::string_view key, const GgufValue& v, const char* expected) const {
  std::string found(gguf_type_name(v.type));
  if (v.type == GgufValue::Type::Array) found += " of " + std::string(gguf_type_name(v.elem_type));
  fail(path_.string(), ": metadata \"", key, "\" must be ", expected, ", found ", found);
}

std::optional<uint64_t> GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer() || (v->integer < 0 && v->type != GgufValue::Type::U64))
    bad_type(key, *v, "a non-negative integer");
  return v->uinteger;
}

std::optional<double> GgufFile::get_number(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad_type(key, *v, "a number");
  return v->real;
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValue::Type::Bool) bad_type(key, *v, "a bool");
  return v->integer != 0;
}

std::optional<std::string> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValue::Type::String) bad_type(key, *v, "a string");
  return std::string(v->text);
}

const GgufValue* GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v && (v->type != GgufValue::Type::Array || v->elem_type != GgufValue::Type::String))
    bad_type(key, *v, "an array of strings");
  return v;
}

const GgufValue* GgufFile::get_number_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v && (v->type != GgufValue::Type::Array || v->elem_type == GgufValue::Type::String ||
            v->elem_type == GgufValue::Type::Bool))
    bad_type(key, *v, "an array of numbers");
  return v;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::view(const GgufTensorInfo& info) const {
  if (!info.dtype)
    fail(path_.string(), ": tensor \"", info.name, "\" has type ", info.type_name,
         ", which tiller does not run. Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K to Q6_K; "
         "requantize the model to one of those (llama-quantize).");
  Tensor t;
  t.data = const_cast<uint8_t*>(base_ + info.offset);
  t.dtype = *info.dtype;
  t.rank = int(info.shape.size());
  for (int i = 0; i < t.rank; i++) t.shape[i] = info.shape[i];
  return t;
}

}  // namespace tiller
