// The safety-space metrics of METHODS §6 over streamed hidden states: per class, the states are
// reduced as they arrive (count, mean, scatter); PCA to k components of the pooled classes, then
// the between-class variance ratio, the Gaussian Bhattacharyya distance and the silhouette.
//
// Conventions (the fixture script tests/fixtures/probe/make_probe_reference.py computes the same
// with numpy / scikit-learn):
//   - PCA is fitted on both classes together (centred on their joint mean), as sklearn's PCA on
//     the stacked states; component signs are fixed so each component's largest |entry| is positive.
//   - Class covariances in PCA space are unbiased (divided by n − 1, numpy's np.cov).
//   - Ridge: when either class covariance is singular (smallest eigenvalue ≤ 1e-10 × the largest
//     of Σ̄), λ = ridge · tr(Σ̄) / k is added to both (so Σ̄ gains λ too); the row reports λ.
//   - The silhouette is Euclidean in the k-dim PCA space over a subsample of at most `cap` items
//     per class (silhouette_sample: a seeded partial Fisher–Yates shuffle); a point alone in its
//     class scores 0, as in scikit-learn.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tiller::eval {

// One class's states at one point (system × language × layer). Rows are held as given until
// there are `hold_rows` of them (default 2·D: cheaper than a D×D double matrix while there are
// few), then folded into a scatter matrix accumulated in double around a shift (the first row).
// Rows marked `keep` (the silhouette's subsample) are kept whole.
class ClassStates {
 public:
  explicit ClassStates(int64_t dim, int64_t hold_rows = -1);
  ~ClassStates();
  ClassStates(ClassStates&&) noexcept;
  ClassStates& operator=(ClassStates&&) noexcept;

  void add(const float* state, bool keep);  // state [D]
  int64_t count() const;
  int64_t dim() const;
  int64_t kept() const;
  size_t bytes() const;  // host memory held

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Which of a class's n items (in arrival order) go into the silhouette's subsample: all when
// n ≤ cap, else cap of them chosen by a partial Fisher–Yates shuffle driven by SplitMix64(seed)
// (j = i + next() mod (n − i)), portable so the fixture script reproduces it. [n] 0/1.
std::vector<uint8_t> silhouette_sample(int64_t n, int64_t cap, uint64_t seed);

struct SeparationOptions {
  int components = 10;          // k: PCA components the metrics use
  double ridge = 1e-3;          // relative ridge for a singular class covariance (see above)
  int64_t dense_limit = 1024;   // D up to this: dense eigendecomposition; above: Lanczos for the top k
};

struct Separation {
  int64_t n_harmful = 0, n_harmless = 0;
  double between_class_ratio = 0;  // R = Σ_c n_c ‖μ_c − μ‖² / Σ_i ‖z_i − μ‖², in [0, 1]
  double bhattacharyya = 0;        // D_B between the two classes' Gaussians
  double silhouette = 0;           // in [−1, 1]
  double ridge = 0;                // λ added to the class covariances (0: none was singular)
  double explained_variance = 0;   // share of the total variance in the k components
  int64_t silhouette_points = 0;   // items the silhouette used
  std::vector<float> pc2;          // [m, 2] the silhouette's items on the first two components
  std::vector<uint8_t> pc2_harmful;  // [m] 1: harmful
};

// The metrics of one point. Needs ≥ 2 items per class, more items than components, and
// k ≤ D (each an Error saying so); throws when the states have no variance at all.
Separation separation(const ClassStates& harmful, const ClassStates& harmless, const SeparationOptions& options);

}  // namespace tiller::eval
