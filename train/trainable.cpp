// make_trainable: the kind --train asked for.
#include "train/trainable.h"

#include "engine/error.h"
#include "train/trainable_kinds.h"

namespace tiller {

const Param* Trainable::find_param(const std::string& name) const {
  for (const Param& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::unique_ptr<Trainable> make_trainable(Model& base, const TrainSpec& spec, uint64_t seed) {
  switch (spec.kind) {
    case TrainKind::Lora: return make_lora(base, spec, seed);
    case TrainKind::Columns: return make_columns(base, spec);
    case TrainKind::Full: return make_full(base, spec);
  }
  fail("make_trainable: unknown kind");
}

}  // namespace tiller
