// Finding and opening a model folder's safetensors files.
#include "engine/checkpoint.h"

#include <algorithm>
#include <set>

#include "engine/error.h"
#include "engine/json_file.h"

namespace tiller {
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_matching(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

[[noreturn]] void no_weights(const fs::path& dir) {
  const auto bins = files_matching(dir, ".bin");
  const auto ggufs = files_matching(dir, ".gguf");
  if (!bins.empty()) {
    fail(dir.string(), ": found PyTorch weights (", bins.front().filename().string(),
         ") but no .safetensors. tiller reads safetensors only (pickle files can run code). Convert with:\n"
         "  python -c \"from transformers import AutoModelForCausalLM as M; "
         "M.from_pretrained('", dir.string(), "').save_pretrained('", dir.string(), "', safe_serialization=True)\"");
  }
  if (!ggufs.empty()) {
    fail(dir.string(), ": found GGUF weights but no .safetensors. Pass the GGUF file itself: --model ",
         (dir / ggufs.front().filename()).string());
  }
  fail(dir.string(), ": no model weights. Expected model.safetensors or model.safetensors.index.json with its shards.");
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  if (!fs::is_directory(dir)) fail(dir.string(), ": not a directory. Pass the folder of an HF model (config.json, *.safetensors).");
  std::vector<fs::path> paths;
  const auto index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json j = read_json_file(index);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail(index.string(), ": expected an object with a \"weight_map\" {tensor name: shard file}");
    std::set<std::string> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail(index.string(), ": weight_map[\"", name, "\"] must be a file name");
      const auto f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")  // never leave the model folder
        fail(index.string(), ": weight_map[\"", name, "\"] = \"", f, "\" is not a plain file name");
      shards.insert(f);
    }
    for (const auto& f : shards) {
      if (!fs::exists(dir / f))
        fail(index.string(), " lists shard \"", f, "\", which is missing from ", dir.string(),
             ". Download every shard the index names.");
      paths.push_back(dir / f);
    }
  } else if (fs::exists(dir / "model.safetensors")) {
    paths.push_back(dir / "model.safetensors");
  } else {
    paths = files_matching(dir, ".safetensors");
    if (paths.empty()) no_weights(dir);
  }

  Checkpoint c;
  for (const auto& p : paths) {
    c.files_.push_back(SafetensorsFile::open(p));
    for (const auto& [name, info] : c.files_.back()->tensors()) {
      auto [it, fresh] = c.where_.emplace(name, c.files_.size() - 1);
      if (!fresh)
        fail(dir.string(), ": tensor \"", name, "\" appears in both ", c.files_[it->second]->path().filename().string(),
             " and ", p.filename().string());
    }
  }
  return c;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : files_[it->second]->find(name);
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  TILLER_CHECK(it != where_.end(), "no tensor ", name);
  return *files_[it->second];
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : where_) out.push_back(name);
  return out;
}

}  // namespace tiller
