// Applying steering profiles to a model: merged into its weights (one profile, the base model's
// speed), or per row at the projection call site (several profiles in one batch).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/hooks.h"
#include "models/model.h"
#include "steering/profile.h"

namespace tiller {

// Adds the profile's deltas into private copies of the tensors it touches (the rest stays as
// loaded, e.g. memory-mapped): W ← W + ΔW in F32, rounded once to W's dtype; b ← b + Δb.
// Check the profile first (check_profile_fits). Call before the model's first forward.
void merge_profile(Model& model, const Profile& profile);

// W + ΔW computed in F32 and rounded once to `dtype`: the one merge rule (merge_profile and
// tiller steer merge).  w: CPU tensor [out, in] of any dtype to_f32 reads, dw [out·in]
std::vector<uint8_t> merged_weight(const Tensor& w, const std::vector<float>& dw, DType dtype);

// Several profiles applied per row: a row's Batch::adapters entry names its profile (1..n in the
// order added; 0: none). For each projection, the rows of each profile that touches it are
// gathered (index_select), multiplied by that profile's delta (linear) and added back
// (index_add), all through Backend ops so every backend runs them. Column-block deltas read only
// the selected columns of x; low-rank deltas two thin matrices.
class ProfileSet final : public ProjectionDelta {
 public:
  ProfileSet(Backend& backend, const ModelConfig& config);
  ~ProfileSet() override;

  // Places the profile's deltas on the backend (checked by the caller) and returns its adapter id.
  int32_t add(std::string name, std::shared_ptr<const Profile> profile);
  int32_t size() const { return int32_t(entries_.size()); }
  const std::string& name(int32_t adapter) const;
  const Profile& profile(int32_t adapter) const;
  std::optional<int32_t> find(const std::string& name) const;
  size_t device_bytes() const;  // the deltas as placed

  void begin_forward(const ForwardContext& ctx) override;
  void apply(int layer, Projection projection, const Tensor& x, Tensor& y, const ForwardContext& ctx) override;

 private:
  struct Placed;
  struct Entry;
  struct Group {
    int32_t adapter;
    std::vector<int32_t> rows;       // the batch rows of this adapter, ascending
    Tensor rows_device;              // I32 [rows.size()]
    std::vector<int32_t> head_rows;  // its rows among the logit rows (lm_head's x), ascending
    Tensor head_rows_device;         // I32 [head_rows.size()]
  };
  Tensor scratch(int slot, int64_t rows, int64_t width);

  Backend& backend_;
  const ModelConfig& config_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::vector<Group> groups_;  // this forward's rows by adapter
  Buffer rows_buffer_;
  std::vector<Buffer> scratch_;  // [3]: selected x, low-rank middle, delta output
};

}  // namespace tiller
