// A fully trained model as an HF model folder: every trained tensor rounded once to the base
// model's dtype, beside copies of the base folder's config, generation and tokenizer files.
#pragma once

#include <filesystem>

#include "train/trainable.h"

namespace tiller {

// Needs full training (every weight a trained tensor); writes out_dir/model.safetensors.
void save_trained_model(const Trainable& trainable, const std::filesystem::path& model_dir,
                        const std::filesystem::path& out_dir);

}  // namespace tiller
