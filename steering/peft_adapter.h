// PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors), the format HF PEFT
// and vLLM users already have, read as steering profiles of low-rank deltas and written from them.
#pragma once

#include <filesystem>
#include <string>

#include "steering/profile.h"

namespace tiller {

// Reads a LoRA adapter as a profile (method "peft", no fingerprint: shapes are checked when it is
// applied). Refuses what tiller cannot apply exactly: another peft_type, DoRA, fan_in_fan_out,
// trained biases, modules_to_save, targets that are not projections of the decoder.
Profile read_peft_adapter(const std::filesystem::path& dir);

// Writes the profile's low-rank deltas as a PEFT adapter folder (every delta must be low rank).
// `base_model` goes into base_model_name_or_path.
void write_peft_adapter(const Profile& profile, const std::filesystem::path& dir, const std::string& base_model);

}  // namespace tiller
