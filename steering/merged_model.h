// `tiller steer merge`: a complete HF model folder with a profile's deltas merged into the
// weights, for users of other tools (HF transformers, vLLM, llama.cpp's converter).
#pragma once

#include <filesystem>

#include "steering/profile.h"

namespace tiller {

// Writes out_dir/model.safetensors (every tensor of model_dir: the touched ones merged with the
// rule of merged_weight(), the rest copied byte for byte) and copies config.json, the tokenizer
// and generation files beside it. A bias delta where the config has no bias turns the bias on
// (Llama's attention_bias / mlp_bias, with zero biases elsewhere); architectures without that
// switch are refused. Check the profile against the model first (check_profile_fits).
void write_merged_model(const std::filesystem::path& model_dir, const Profile& profile, const std::filesystem::path& out_dir);

}  // namespace tiller
