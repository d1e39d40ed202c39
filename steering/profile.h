// Steering profiles: sparse weight deltas for one base model, keyed by HF names, with a manifest
// saying what made them and for which model (docs/profile-format.md).
//
// Four kinds of delta share the format: column blocks of a projection (Soteria's o_proj heads),
// dense deltas, low-rank deltas (LoRA) and bias deltas (residual steering vectors). A profile is
// read from its safetensors file, or from a PEFT LoRA adapter folder; applying it (merged into the
// weights or per row) is steering/profile_delta.h.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/json_file.h"
#include "engine/tensor.h"
#include "models/model_config.h"
#include "models/weight_specs.h"
#include "steering/head_selection.h"

namespace tiller {

inline constexpr const char* kProfileMetadataKey = "tiller_profile";
inline constexpr int kProfileFormatVersion = 1;

enum class DeltaKind : uint8_t { ColumnBlocks, Dense, LowRank, Bias };
const char* delta_kind_name(DeltaKind kind);  // "column blocks", "dense", "low rank", "bias"

// A tensor in host memory: a view into a mapped file, or bytes it owns.
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::shared_ptr<const void> data;  // keeps the mapping or the owned bytes alive

  int64_t numel() const;
  size_t nbytes() const;
  bool empty() const { return !data; }
  Tensor view() const;  // a CPU Tensor over the bytes
  std::vector<float> to_f32() const;
  std::string shape_string() const;
  // `values` [shape] stored as `dtype` (rounded to nearest even).
  static HostTensor from_f32(const std::vector<float>& values, std::vector<int64_t> shape, DType dtype);
};

struct WeightDelta {
  DeltaKind kind = DeltaKind::Dense;
  ModuleRef module;
  HostTensor a;                 // ColumnBlocks [out, k·c] | Dense [out, in] | LowRank A [r, in] | Bias [out]
  HostTensor b;                 // LowRank B [out, r]
  std::vector<int32_t> blocks;  // ColumnBlocks: block j covers columns j·c … (j+1)·c − 1
  float scaling = 1.0f;         // LowRank: ΔW = scaling · B · A

  int64_t block_width() const { return blocks.empty() ? 0 : a.shape[1] / int64_t(blocks.size()); }
  size_t nbytes() const { return a.nbytes() + b.nbytes() + blocks.size() * sizeof(int32_t); }
};

struct ProfileManifest {
  int format_version = kProfileFormatVersion;
  std::string method;                  // "soteria", "lora", "peft", "finetune", "msd", ...
  std::vector<std::string> languages;  // the languages it is meant for (may be empty)
  std::string base_fingerprint;        // model_fingerprint() of the model it was made for; empty: PEFT
  std::string base_name, base_architecture;
  json sources = json::object();       // other models it was made from: {"harmful": {"fingerprint", "name"}}
  HeadList heads;                      // Soteria's heads (layer, head)
  std::optional<double> scale;
  std::string description, created_by;
  json extra = json::object();         // keys this version does not interpret, kept as read

  json to_json(const std::vector<struct WeightDelta>& deltas) const;
};

struct Profile {
  std::string source;  // the file or folder it was read from (empty when built in memory)
  ProfileManifest manifest;
  std::vector<WeightDelta> deltas;

  size_t nbytes() const;
  std::vector<const WeightDelta*> deltas_on(ModuleRef module) const;
  int min_layer() const;  // the first layer a delta touches (-1: lm_head only; INT_MAX: none)
};

// Reads a profile file (safetensors with a tiller_profile manifest) or a PEFT LoRA adapter
// folder; every tensor's name, dtype and shape is checked against the format.
Profile read_profile(const std::filesystem::path& path);
// Writes the profile as one safetensors file (written to a temporary name and renamed).
void write_profile(const Profile& profile, const std::filesystem::path& path);

// Refuses a profile whose deltas do not fit `config` (a module the model lacks, a shape that
// differs), or that was made for another model (`fingerprint`, from model_fingerprint()), naming
// the model it was made for. With allow_fingerprint_mismatch the last is a warning instead.
void check_profile_fits(const Profile& profile, const ModelConfig& config, const std::string& fingerprint,
                        bool allow_fingerprint_mismatch, const std::function<void(const std::string&)>& warn);

// ΔW of one projection as F32 [out, in], the sum of every delta on its weight (empty: none).
std::vector<float> weight_delta_f32(const Profile& profile, ModuleRef module, int64_t out, int64_t in);
// Δb of one projection as F32 [out] (empty: none).
std::vector<float> bias_delta_f32(const Profile& profile, ModuleRef module, int64_t out);

// The manifest, per-layer heads and sizes, as `tiller steer show` prints them.
std::string describe_profile(const Profile& profile);

}  // namespace tiller
