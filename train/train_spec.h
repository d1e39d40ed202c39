// What `--train` trains: LoRA adapters on chosen projections, the o_proj columns of chosen heads
// (a Soteria-shaped delta), or every weight.
//
//   lora                  LoRA with rank / alpha / dropout / targets (PEFT's names and defaults)
//   columns:HEADS.json    the o_proj columns of the heads in a [[layer, head], …] list
//   full                  every weight (small models: parameters and AdamW state are F32)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "engine/hooks.h"
#include "models/model_config.h"

namespace tiller {

enum class TrainKind { Lora, Columns, Full };

struct LoraSpec {
  int64_t rank = 8;     // PEFT LoraConfig defaults: r 8, lora_alpha 8, dropout 0, q_proj + v_proj
  double alpha = 8.0;
  double dropout = 0.0;
  std::vector<Projection> targets = {Projection::Q, Projection::V};
  double scaling() const { return alpha / double(rank); }
};

struct TrainSpec {
  TrainKind kind = TrainKind::Lora;
  LoraSpec lora;
  std::filesystem::path heads_file;                 // columns
  std::vector<std::pair<int32_t, int32_t>> heads;   // columns: (layer, head), in file order

  std::string describe() const;  // "lora r=8 alpha=8 dropout=0 targets=q_proj,v_proj", for manifests and checks
};

// Parses "lora" | "columns:FILE" | "full"; the head list is read and checked against `config`.
TrainSpec parse_train_spec(const std::string& text, const ModelConfig& config);

// "q_proj,v_proj" or "all-linear" (every projection of the decoder layers, as PEFT) -> targets.
// Refuses a name the model has no projection of, listing the ones it has.
std::vector<Projection> parse_lora_targets(const std::string& text);

const char* train_kind_name(TrainKind kind);

}  // namespace tiller
