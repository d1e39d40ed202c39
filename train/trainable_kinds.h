// The three kinds of Trainable (lora.cpp, columns.cpp, full.cpp); make_trainable picks one.
#pragma once

#include <memory>

#include "train/trainable.h"

namespace tiller {

std::unique_ptr<Trainable> make_lora(Model& base, const TrainSpec& spec, uint64_t seed);
std::unique_ptr<Trainable> make_columns(Model& base, const TrainSpec& spec);
std::unique_ptr<Trainable> make_full(Model& base, const TrainSpec& spec);

}  // namespace tiller
