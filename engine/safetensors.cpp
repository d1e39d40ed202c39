// safetensors reader (mmap, validated) and writer.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/mapping_registry.h"

namespace tiller {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit

// Element sizes of every dtype the format defines, so files with types tiller does not compute
// with are still validated (and refused only when such a tensor is actually used).
std::optional<size_t> format_dtype_size(const std::string& name) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8},     {"I32", 4},     {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4},  {"U16", 2},  {"U8", 1},      {"BOOL", 1},    {"F8_E4M3", 1},
      {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"F6_E2M3", 1}, {"F6_E3M2", 1}, {"F4", 1}};
  auto it = sizes.find(name);
  if (it == sizes.end()) return std::nullopt;
  return it->second;
}

}  // namespace

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->map(path);
  const size_t size = file->size_;
  if (size < 8) {
    fail(where, ": truncated: the file has ", size,
         " bytes, fewer than the 8-byte header length every safetensors file starts with. Re-download it.");
  }

  uint64_t header_len = 0;
  std::memcpy(&header_len, file->base_, 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    fail(where, ": not a safetensors file or truncated: the header claims ", header_len, " bytes but the file has ",
         size - 8, " after the length field (at most ", kMaxHeaderBytes, " allowed).");
  }
  json header;
  try {
    header = json::parse(file->base_ + 8, file->base_ + 8 + header_len);
  } catch (const json::exception& e) {
    fail(where, ": the safetensors header is not valid JSON (", e.what(), "). The file is damaged; re-download it.");
  }
  if (!header.is_object()) fail(where, ": the safetensors header must be a JSON object, found ", header.type_name());

  const size_t data_start = 8 + header_len;
  const size_t data_size = size - data_start;
  for (const auto& item : header.items()) {  // not a structured binding: the lambda below names these (clang 14)
    const std::string& name = item.key();
    const json& entry = item.value();
    if (name == "__metadata__") {
      if (entry.is_object()) {
        for (const auto& [k, v] : entry.items()) {
          if (v.is_string()) file->metadata_[k] = v.get<std::string>();
        }
      }
      continue;
    }
    auto bad = [&](const std::string& what) {
      fail(where, ": tensor \"", name, "\": ", what, " (header entry: ", entry.dump(), ")");
    };
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      bad("expected an object with dtype, shape and data_offsets");
    TensorInfo info;
    info.name = name;
    if (!entry["dtype"].is_string()) bad("dtype must be a string");
    info.dtype_name = entry["dtype"].get<std::string>();
    info.dtype = dtype_from_name(info.dtype_name);
    const auto elem = format_dtype_size(info.dtype_name);
    if (!elem) bad("unknown dtype \"" + info.dtype_name + "\"");
    if (!entry["shape"].is_array()) bad("shape must be a list");
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) bad("shape entries must be non-negative integers");
      info.shape.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
    }
    const auto& offs = entry["data_offsets"];
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      bad("data_offsets must be [begin, end]");
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end) bad("data_offsets begin > end");
    if (end > data_size) {
      fail(where, ": truncated: tensor \"", name, "\" needs bytes [", begin, ", ", end,
           ") of the data section but the file holds only ", data_size,
           " bytes there. The file is incomplete (an interrupted download?); re-download it.");
    }
    if (end - begin != numel * *elem) {
      bad("data_offsets span " + std::to_string(end - begin) + " bytes but " + info.dtype_name + " " +
          info.shape_string() + " needs " + std::to_string(numel * *elem));
    }
    info.offset = data_start + begin;
    info.nbytes = end - begin;
    file->tensors_.emplace(name, std::move(info));
  }
  // Weights are streamed once per token; let the kernel read ahead.
  madvise(const_cast<uint8_t*>(file->base_), size, MADV_WILLNEED);
  file->check_unchanged("reading its header");
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (!info) fail(path_.string(), ": no tensor named \"", name, "\"");
  return view(*info);
}

Tensor SafetensorsFile::view(const TensorInfo& info) const {
  if (!info.dtype || (!is_float(*info.dtype) && *info.dtype != DType::I32 && *info.dtype != DType::I64)) {
    fail(path_.string(), ": tensor \"", info.name, "\" has dtype ", info.dtype_name,
         "; tiller reads F32, F16 and BF16 (quantized or F64 checkpoints must be converted first, e.g. "
         "re-saved with torch_dtype=torch.bfloat16).");
  }
  if (info.shape.size() > size_t(Tensor::kMaxRank))
    fail(path_.string(), ": tensor \"", info.name, "\" has rank ", info.shape.size(), ", at most 4 supported");
  Tensor t;
  t.data = const_cast<uint8_t*>(base_ + info.offset);
  t.dtype = *info.dtype;
  t.rank = int(info.shape.size());
  for (int i = 0; i < t.rank; i++) t.shape[i] = info.shape[i];
  return t;
}

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, Fill fill) {
  TILLER_CHECK(!entries_.count(name), "duplicate tensor ", name);
  entries_.emplace(name, Entry{dtype, std::move(shape), std::move(fill)});
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  TILLER_CHECK(t.device == Device::Cpu);
  std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + t.rank);
  add(name, t.dtype, shape, [t](void* dst) { std::memcpy(dst, t.data, t.nbytes()); });
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  json header = json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  std::vector<size_t> sizes;
  for (const auto& [name, e] : entries_) {
    size_t n = dtype_size(e.dtype);
    for (int64_t d : e.shape) n *= size_t(d);
    header[name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    sizes.push_back(n);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned

  const auto tmp = path.string() + ".partial";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, ": cannot create (", std::strerror(errno), ")");
    const uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    std::vector<uint8_t> buffer;
    size_t i = 0;
    for (const auto& [name, e] : entries_) {
      buffer.resize(sizes[i++]);
      e.fill(buffer.data());
      out.write(reinterpret_cast<const char*>(buffer.data()), std::streamsize(buffer.size()));
    }
    out.flush();
    if (!out) fail(tmp, ": write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("cannot move ", tmp, " to ", path.string(), ": ", ec.message());
}

}  // namespace tiller
