// Writing, finding and loading training checkpoints.
#include "train/train_checkpoint.h"

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace tiller {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMetaKey = "tiller_train_checkpoint";
constexpr int kVersion = 1;

// Checkpoints of `dir` by step.
std::map<int64_t, fs::path> checkpoints_in(const fs::path& dir) {
  std::map<int64_t, fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) != 0 || e.path().extension() != ".safetensors") continue;
    try {
      out[std::stoll(n.substr(11))] = e.path();
    } catch (const std::exception&) {
    }
  }
  return out;
}

}  // namespace

fs::path write_checkpoint(Backend& backend, const std::vector<Param>& params, const CheckpointInfo& info,
                          const fs::path& dir, int keep) {
  fs::create_directories(dir);
  SafetensorsWriter w;
  for (const Param& p : params) {
    const std::pair<const char*, const Buffer*> parts[] = {{"", &p.value}, {".exp_avg", &p.m}, {".exp_avg_sq", &p.v}};
    for (const auto& [suffix, buf] : parts) {
      const Buffer* b = buf;
      const Param* pp = &p;
      w.add(p.name + suffix, DType::F32, p.shape,
            [&backend, b, pp](void* dst) { backend.download(dst, b->data(), size_t(pp->numel()) * sizeof(float)); });
    }
  }
  const json meta = {{"format_version", kVersion},
                     {"step", info.step},
                     {"model_fingerprint", info.model_fingerprint},
                     {"settings", info.settings}};
  w.set_metadata(kMetaKey, meta.dump());
  const fs::path path = dir / ("checkpoint-" + std::to_string(info.step) + ".safetensors");
  w.write(path);
  if (keep > 0) {
    auto all = checkpoints_in(dir);
    while (int(all.size()) > keep) {
      fs::remove(all.begin()->second);
      all.erase(all.begin());
    }
  }
  return path;
}

fs::path latest_checkpoint(const fs::path& dir) {
  const auto all = checkpoints_in(dir);
  return all.empty() ? fs::path() : all.rbegin()->second;
}

int64_t load_checkpoint(Backend& backend, std::vector<Param>& params, const fs::path& path_in,
                        const std::string& model_fingerprint, const json& settings) {
  fs::path path = path_in;
  if (fs::is_directory(path)) {
    path = latest_checkpoint(path_in);
    if (path.empty()) fail("--resume ", path_in.string(), ": the folder holds no checkpoint-<step>.safetensors");
  }
  const auto file = SafetensorsFile::open(path);
  const auto it = file->metadata().find(kMetaKey);
  if (it == file->metadata().end())
    fail("--resume ", path.string(), ": not a tiller training checkpoint (no \"", kMetaKey, "\" metadata)");
  const json meta = json::parse(it->second);
  if (meta.value("format_version", 0) != kVersion)
    fail("--resume ", path.string(), ": checkpoint format ", meta.value("format_version", 0), " (this tiller reads ",
         kVersion, ")");
  const std::string fp = meta.value("model_fingerprint", "");
  if (fp != model_fingerprint)
    fail("--resume ", path.string(), ": the checkpoint was made for another model (fingerprint ", fp,
         "); this model is ", model_fingerprint, ". Resume with the model it was trained from.");
  const json& saved = meta["settings"];
  std::vector<std::string> differ;
  for (const auto& [k, v] : settings.items()) {
    if (!saved.contains(k) || saved[k] != v)
      differ.push_back(k + ": checkpoint " + (saved.contains(k) ? saved[k].dump() : "(absent)") + ", now " + v.dump());
  }
  for (const auto& [k, v] : saved.items()) {
    if (!settings.contains(k)) differ.push_back(k + ": checkpoint " + v.dump() + ", now (absent)");
  }
  if (!differ.empty()) {
    std::string msg;
    for (const auto& d : differ) msg += "\n  " + d;
    fail("--resume ", path.string(), ": the checkpoint was made with other settings; resume with the same ones "
         "(or start a new run):", msg);
  }
  size_t expected = 0;
  for (Param& p : params) {
    for (const auto& [suffix, buf] : {std::pair<const char*, Buffer*>{"", &p.value}, {".exp_avg", &p.m},
                                      {".exp_avg_sq", &p.v}}) {
      const std::string name = p.name + suffix;
      const TensorInfo* info = file->find(name);
      if (!info || info->dtype != DType::F32 || info->shape != p.shape)
        fail("--resume ", path.string(), ": tensor ", name, info ? " has another shape or dtype" : " is missing");
      const Tensor t = file->view(*info);
      backend.upload(buf->data(), t.data, t.nbytes());
      expected++;
    }
  }
  if (file->tensors().size() != expected)
    fail("--resume ", path.string(), ": the checkpoint holds ", file->tensors().size(), " tensors; this run trains ",
         expected / 3, " (", expected, " with their moments)");
  return meta.value("step", int64_t(0));
}

}  // namespace tiller
