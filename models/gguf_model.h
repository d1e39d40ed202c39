// GGUF files as tiller models: the config from the metadata llama.cpp writes for the llama
// (Llama, Mistral) and qwen2 architectures, and the tensors under HF names and layout, so the
// loader builds the same ModelWeights as from an HF folder.
//
// llama.cpp's converter stores the q and k projections of llama models with each head's rows
// interleaved (HF rows i and i + d/2 become 2i and 2i + 1, its rotary pairing); the source
// reorders them back. Llama-3 rope scaling travels as the rope_freqs tensor (per-frequency
// divisors), linear scaling as metadata.
#pragma once

#include <memory>

#include "engine/gguf.h"
#include "models/model_config.h"
#include "models/weight_source.h"

namespace tiller {

// Throws Error naming the file and key on a missing or unsupported setting, an unsupported
// architecture, or a vocabulary that disagrees with the embedding.
ModelConfig gguf_model_config(const GgufFile& file);

// Sampling defaults from general.sampling.* (llama.cpp's keys), else HF's defaults (greedy).
GenerationDefaults gguf_generation_defaults(const GgufFile& file);

std::unique_ptr<WeightSource> open_gguf_source(std::shared_ptr<GgufFile> file, const ModelConfig& config);

// The GGUF name of an HF tensor name ("model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight"),
// empty when the name has none.
std::string gguf_tensor_name(const std::string& hf_name);

}  // namespace tiller
