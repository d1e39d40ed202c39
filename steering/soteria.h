// Soteria's steering profile (METHODS §3): subtract the harm direction θ_ft − θ_base, scaled,
// from the o_proj columns of a language's heads only:
//
//   for (l, h) in heads:  W_O^(l)[:, h·d:(h+1)·d] −= s · (W_O,ft^(l) − W_O,base^(l))[:, h·d:(h+1)·d]
//
// stored as one column-block delta per layer ([D, k·d] with the k head indices beside it).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "models/model.h"
#include "steering/profile.h"

namespace tiller {

struct SoteriaOptions {
  HeadList heads;                      // (layer, head), checked against the model
  double scale = 1.0;                  // s: any real number
  std::vector<std::string> languages;  // what the manifest records
  std::optional<DType> dtype;          // of the stored delta; default: the base model's weight dtype
  std::string base_name, harmful_name;
  std::string created_by;
};

// θ_ft given as a second model of the same architecture and shapes (refused otherwise, naming
// the first tensor or setting that differs).
Profile build_soteria_profile(const Model& base, const Model& harmful, const SoteriaOptions& options);

// θ_ft − θ_base given as a profile of the base model (a finetune's dense or LoRA delta).
Profile build_soteria_profile(const Model& base, const Profile& harmful_delta, const SoteriaOptions& options);

}  // namespace tiller
