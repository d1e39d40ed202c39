// Training checkpoints: every trained tensor with its AdamW moments, the number of optimizer steps
// done, and the settings a resumed run must share (the model's fingerprint, what is trained, the
// data, the hyper-parameters). One safetensors file per checkpoint: <dir>/checkpoint-<step>.safetensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/json_file.h"
#include "train/param.h"

namespace tiller {

struct CheckpointInfo {
  int64_t step = 0;               // optimizer steps done
  std::string model_fingerprint;
  json settings = json::object();
};

// Writes params (value, exp_avg, exp_avg_sq) and `info`; then removes the oldest checkpoints of
// `dir` beyond `keep` (0: keep all). Returns the file written.
std::filesystem::path write_checkpoint(Backend& backend, const std::vector<Param>& params, const CheckpointInfo& info,
                                       const std::filesystem::path& dir, int keep);

// The newest checkpoint in `dir` (by step), or an empty path.
std::filesystem::path latest_checkpoint(const std::filesystem::path& dir);

// Loads a checkpoint into params after checking it belongs to this run: the same model
// (fingerprint) and settings, and exactly these tensors. Each refusal names what differs.
// `path` is a checkpoint file or a folder (its newest). Returns the step it was taken at.
int64_t load_checkpoint(Backend& backend, std::vector<Param>& params, const std::filesystem::path& path,
                        const std::string& model_fingerprint, const json& settings);

}  // namespace tiller
