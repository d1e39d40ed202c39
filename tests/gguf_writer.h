// A GGUF writer for tests: well-formed files (HF fixture models converted as llama.cpp's converter
// converts them, tokenizers as its vocabulary writer stores them) and deliberately broken ones.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"

namespace tiller::test {

class GgufWriter {
 public:
  enum Type : uint32_t { U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64 };

  void u32(const std::string& key, uint32_t v) { scalar(key, U32, &v, 4); }
  void f32(const std::string& key, float v) { scalar(key, F32, &v, 4); }
  void boolean(const std::string& key, bool v) {
    const uint8_t b = v;
    scalar(key, Bool, &b, 1);
  }
  void str(const std::string& key, const std::string& v) {
    Bytes b;
    b.u32(String);
    b.str(v);
    kv_.push_back({key, b.data});
  }
  void strs(const std::string& key, const std::vector<std::string>& v) {
    Bytes b;
    b.u32(Array), b.u32(String), b.u64(v.size());
    for (const auto& s : v) b.str(s);
    kv_.push_back({key, b.data});
  }
  template <class T>
  void array(const std::string& key, Type elem, const std::vector<T>& v) {
    Bytes b;
    b.u32(Array), b.u32(elem), b.u64(v.size());
    b.raw(v.data(), v.size() * sizeof(T));
    kv_.push_back({key, b.data});
  }
  // A value with any type id and payload (for files that break the format).
  void raw_kv(const std::string& key, uint32_t type, const std::vector<uint8_t>& payload) {
    Bytes b;
    b.u32(type);
    b.raw(payload.data(), payload.size());
    kv_.push_back({key, b.data});
  }

  // `shape` in tiller's order (slowest first); `ggml_type` is the file's type id.
  void tensor(const std::string& name, uint32_t ggml_type, std::vector<int64_t> shape, std::vector<uint8_t> data,
              std::optional<uint64_t> forced_offset = std::nullopt) {
    tensors_.push_back({name, ggml_type, std::move(shape), std::move(data), forced_offset});
  }
  void tensor_f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    std::vector<uint8_t> d(v.size() * 4);
    std::memcpy(d.data(), v.data(), d.size());
    tensor(name, 0, std::move(shape), std::move(d));
  }

  std::vector<uint8_t> bytes() const {
    Bytes b;
    b.raw("GGUF", 4);
    b.u32(3);
    b.u64(tensors_.size());
    b.u64(kv_.size());
    for (const auto& [key, value] : kv_) {
      b.str(key);
      b.raw(value.data(), value.size());
    }
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const Tensor& t : tensors_) {
      b.str(t.name);
      b.u32(uint32_t(t.shape.size()));
      for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) b.u64(uint64_t(*it));
      b.u32(t.type);
      offsets.push_back(offset);
      b.u64(t.forced_offset.value_or(offset));
      offset += (t.data.size() + 31) / 32 * 32;
    }
    b.data.resize((b.data.size() + 31) / 32 * 32, 0);
    for (size_t i = 0; i < tensors_.size(); i++) {
      b.data.resize(b.data.size() + (tensors_[i].data.size() + 31) / 32 * 32, 0);
      std::memcpy(b.data.data() + b.data.size() - (tensors_[i].data.size() + 31) / 32 * 32, tensors_[i].data.data(),
                  tensors_[i].data.size());
    }
    return b.data;
  }

  void write(const std::filesystem::path& path) const { write_bytes(path, bytes()); }
  static void write_bytes(const std::filesystem::path& path, const std::vector<uint8_t>& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    if (!out) fail("cannot write ", path.string());
  }

 private:
  struct Bytes {
    std::vector<uint8_t> data;
    void raw(const void* p, size_t n) {
      const auto* c = static_cast<const uint8_t*>(p);
      data.insert(data.end(), c, c + n);
    }
    void u32(uint32_t v) { raw(&v, 4); }
    void u64(uint64_t v) { raw(&v, 8); }
    void str(const std::string& s) {
      u64(s.size());
      raw(s.data(), s.size());
    }
  };
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
    std::optional<uint64_t> forced_offset;
  };
  void scalar(const std::string& key, Type t, const void* v, size_t n) {
    Bytes b;
    b.u32(t);
    b.raw(v, n);
    kv_.push_back({key, b.data});
  }

  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;
  std::vector<Tensor> tensors_;
};

// Q8_0 as ggml quantizes it (d = max|x| / 127, q = round(x / d)), for quantized round trips.
inline std::vector<uint8_t> quantize_q8_0(const float* x, int64_t n) {
  std::vector<uint8_t> out;
  for (int64_t b = 0; b < n / 32; b++) {
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = f32_to_f16(d);
    out.push_back(uint8_t(dh & 0xff)), out.push_back(uint8_t(dh >> 8));
    for (int i = 0; i < 32; i++) out.push_back(uint8_t(int8_t(std::round(x[b * 32 + i] * id))));
  }
  return out;
}

}  // namespace tiller::test
