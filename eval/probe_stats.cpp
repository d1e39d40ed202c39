// Streamed class statistics, PCA (Eigen's dense solver, or Spectra's Lanczos for the top k of a
// large D) and the separation metrics. Scatter matrices are never formed for held rows: every
// product with a class's scatter goes through ScatterOp, so a 4096-wide layer with a thousand
// items costs a few matrix-vector products, not a 4096² matrix.
#include "eval/probe_stats.h"

#include <Eigen/Dense>
#include <Spectra/SymEigsSolver.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace tiller::eval {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct ClassStates::Impl {
  int64_t dim = 0, hold_rows = 0;
  int64_t n = 0;
  VectorXd shift;                 // [D] the first row: scatter is accumulated around it
  VectorXd sum_dev;               // [D] Σ (x − shift)
  std::vector<float> held;        // [m, D] rows not yet folded
  std::vector<int64_t> held_keep;  // rows of `held` in the subsample
  MatrixXd m2;                    // [D, D] lower triangle of Σ (x − shift)(x − shift)ᵀ over folded rows
  std::vector<float> kept;        // [q, D] subsample rows copied out of folded rows

  int64_t n_held() const { return int64_t(held.size()) / dim; }

  void fold() {
    const int64_t m = n_held();
    if (m == 0) return;
    for (int64_t r : held_keep) kept.insert(kept.end(), held.begin() + r * dim, held.begin() + (r + 1) * dim);
    held_keep.clear();
    if (m2.size() == 0) m2 = MatrixXd::Zero(dim, dim);
    const MatrixXd dev = Eigen::Map<const RowMatrixXf>(held.data(), m, dim).cast<double>().rowwise() - shift.transpose();
    m2.selfadjointView<Eigen::Lower>().rankUpdate(dev.transpose());
    held.clear();
  }
};

ClassStates::ClassStates(int64_t dim, int64_t hold_rows) : impl_(std::make_unique<Impl>()) {
  TILLER_CHECK(dim > 0);
  impl_->dim = dim;
  impl_->hold_rows = hold_rows < 0 ? 2 * dim : hold_rows;
  impl_->sum_dev = VectorXd::Zero(dim);
}
ClassStates::~ClassStates() = default;
ClassStates::ClassStates(ClassStates&&) noexcept = default;
ClassStates& ClassStates::operator=(ClassStates&&) noexcept = default;

void ClassStates::add(const float* state, bool keep) {
  Impl& s = *impl_;
  const Eigen::Map<const Eigen::VectorXf> x(state, s.dim);
  if (s.n == 0) s.shift = x.cast<double>();
  s.sum_dev += x.cast<double>() - s.shift;
  s.n++;
  if (keep) s.held_keep.push_back(s.n_held());
  s.held.insert(s.held.end(), state, state + s.dim);
  if (s.n_held() >= std::max<int64_t>(s.hold_rows, 1)) s.fold();
}

int64_t ClassStates::count() const { return impl_->n; }
int64_t ClassStates::dim() const { return impl_->dim; }
int64_t ClassStates::kept() const { return int64_t(impl_->kept.size()) / impl_->dim + int64_t(impl_->held_keep.size()); }
size_t ClassStates::bytes() const {
  return (impl_->held.capacity() + impl_->kept.capacity()) * sizeof(float) + size_t(impl_->m2.size()) * sizeof(double);
}

std::vector<uint8_t> silhouette_sample(int64_t n, int64_t cap, uint64_t seed) {
  std::vector<uint8_t> keep(size_t(std::max<int64_t>(n, 0)), 0);
  if (n <= cap) {
    std::fill(keep.begin(), keep.end(), 1);
    return keep;
  }
  uint64_t state = seed;
  auto next = [&state] {  // SplitMix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) order[size_t(i)] = i;
  for (int64_t i = 0; i < cap; i++) {
    const int64_t j = i + int64_t(next() % uint64_t(n - i));
    std::swap(order[size_t(i)], order[size_t(j)]);
    keep[size_t(order[size_t(i)])] = 1;
  }
  return keep;
}

namespace {

// One class, finalised: its scatter S = M2 + Hdᵀ Hd − n d dᵀ, applied without forming it.
struct ClassView {
  int64_t n = 0;
  VectorXd mean;  // [D]
  VectorXd d;     // [D] mean − shift
  MatrixXd hd;    // [m, D] held rows − shift
  const MatrixXd* m2 = nullptr;  // [D, D] lower triangle, or null

  explicit ClassView(const ClassStates::Impl& s) : n(s.n), m2(s.m2.size() ? &s.m2 : nullptr) {
    d = s.sum_dev / double(n);
    mean = s.shift + d;
    hd = Eigen::Map<const RowMatrixXf>(s.held.data(), s.n_held(), s.dim).cast<double>().rowwise() - s.shift.transpose();
  }
  MatrixXd scatter_times(const MatrixXd& x) const {  // S x, x [D, c]
    MatrixXd y = hd.transpose() * (hd * x) - double(n) * d * (d.transpose() * x);
    if (m2) y.noalias() += m2->selfadjointView<Eigen::Lower>() * x;
    return y;
  }
  double scatter_trace() const {
    return (m2 ? m2->diagonal().sum() : 0.0) + hd.squaredNorm() - double(n) * d.squaredNorm();
  }
  MatrixXd scatter_dense() const {
    MatrixXd s = hd.transpose() * hd - double(n) * d * d.transpose();
    if (m2) s += m2->selfadjointView<Eigen::Lower>();
    return s;
  }
};

// The pooled classes' total scatter T = S₁ + S₂ + Σ_c n_c e_c e_cᵀ (e_c = μ_c − μ).
struct TotalScatter {
  const ClassView& a;
  const ClassView& b;
  VectorXd ea, eb;  // [D]

  MatrixXd times(const MatrixXd& x) const {
    return a.scatter_times(x) + b.scatter_times(x) + double(a.n) * ea * (ea.transpose() * x) +
           double(b.n) * eb * (eb.transpose() * x);
  }
  double trace() const {
    return a.scatter_trace() + b.scatter_trace() + double(a.n) * ea.squaredNorm() + double(b.n) * eb.squaredNorm();
  }
  MatrixXd dense() const {
    return a.scatter_dense() + b.scatter_dense() + double(a.n) * ea * ea.transpose() + double(b.n) * eb * eb.transpose();
  }
};

// Spectra's matrix operation: y = T x.
struct TotalScatterOp {
  using Scalar = double;
  const TotalScatter& t;
  Eigen::Index rows() const { return t.ea.size(); }
  Eigen::Index cols() const { return t.ea.size(); }
  void perform_op(const double* x_in, double* y_out) const {
    const Eigen::Map<const VectorXd> x(x_in, rows());
    Eigen::Map<VectorXd>(y_out, rows()) = t.times(x);
  }
};

// The top k eigenvectors of T as columns [D, k], largest first, each signed so its largest
// |entry| is positive.
MatrixXd principal_components(const TotalScatter& t, int k, int64_t dense_limit) {
  const int64_t D = t.ea.size();
  MatrixXd w;
  if (D <= dense_limit || D <= 2 * int64_t(k) + 1) {
    Eigen::SelfAdjointEigenSolver<MatrixXd> es(t.dense());
    if (es.info() != Eigen::Success) fail("PCA: the eigendecomposition of the ", D, "x", D, " covariance failed");
    w = es.eigenvectors().rightCols(k).rowwise().reverse();
  } else {
    TotalScatterOp op{t};
    const Eigen::Index ncv = std::min<Eigen::Index>(D, std::max(2 * k + 1, 24));
    Spectra::SymEigsSolver<TotalScatterOp> eigs(op, k, ncv);
    eigs.init();
    eigs.compute(Spectra::SortRule::LargestAlge, 1000, 1e-12);
    if (eigs.info() != Spectra::CompInfo::Successful)
      fail("PCA: the Lanczos eigensolver did not converge for the top ", k, " components of a ", D,
           "-wide covariance; try fewer --pca components");
    w = eigs.eigenvectors();
  }
  for (Eigen::Index c = 0; c < w.cols(); c++) {
    Eigen::Index at = 0;
    w.col(c).cwiseAbs().maxCoeff(&at);
    if (w(at, c) < 0) w.col(c) = -w.col(c);
  }
  return w;
}

// ln det of a symmetric positive-definite matrix (−inf when it is not).
double log_det(const Eigen::SelfAdjointEigenSolver<MatrixXd>& es) {
  double s = 0;
  for (double v : es.eigenvalues()) s += v > 0 ? std::log(v) : -INFINITY;
  return s;
}

// Mean silhouette of the rows of z [m, k] with labels [m] (two classes), Euclidean.
double silhouette_score(const MatrixXd& z, const std::vector<uint8_t>& label) {
  const int64_t m = z.rows();
  int64_t n1 = 0;
  for (uint8_t l : label) n1 += l;
  const int64_t size[2] = {m - n1, n1};
  double total = 0;
  for (int64_t i = 0; i < m; i++) {
    double sum[2] = {0, 0};
    for (int64_t j = 0; j < m; j++) {
      if (j != i) sum[label[size_t(j)]] += (z.row(i) - z.row(j)).norm();
    }
    const int own = label[size_t(i)];
    if (size[own] <= 1) continue;  // alone in its class: 0
    const double a = sum[own] / double(size[own] - 1), b = sum[1 - own] / double(size[1 - own]);
    const double denom = std::max(a, b);
    if (denom > 0) total += (b - a) / denom;
  }
  return total / double(m);
}

// The subsample rows of one class [q, D] (copied out of folded rows, then still held ones).
MatrixXd kept_rows(const ClassStates::Impl& s) {
  const int64_t q = int64_t(s.kept.size()) / s.dim, h = int64_t(s.held_keep.size());
  MatrixXd x(q + h, s.dim);
  x.topRows(q) = Eigen::Map<const RowMatrixXf>(s.kept.data(), q, s.dim).cast<double>();
  for (int64_t r = 0; r < h; r++)
    x.row(q + r) = Eigen::Map<const Eigen::VectorXf>(s.held.data() + s.held_keep[size_t(r)] * s.dim, s.dim).cast<double>();
  return x;
}

}  // namespace

Separation separation(const ClassStates& harmful, const ClassStates& harmless, const SeparationOptions& opt) {
  const ClassStates::Impl& h = harmful.impl();
  const ClassStates::Impl& g = harmless.impl();
  TILLER_CHECK(h.dim == g.dim, "the classes' states differ in width");
  const int64_t D = h.dim, N = h.n + g.n;
  const int k = opt.components;
  if (h.n < 2 || g.n < 2)
    fail("separation needs at least 2 items in each class; found ", h.n, " harmful and ", g.n, " harmless");
  if (k < 1 || k > D) fail("--pca ", k, " components: expected between 1 and the hidden size ", D);
  if (N <= k)
    fail("--pca ", k, " components need more than ", k, " items; found ", N, " (", h.n, " harmful, ", g.n,
         " harmless): lower --pca or give more items");

  const ClassView a(h), b(g);
  const VectorXd mu = (double(a.n) * a.mean + double(b.n) * b.mean) / double(N);
  const TotalScatter total{a, b, a.mean - mu, b.mean - mu};
  const double total_trace = total.trace();
  if (!(total_trace > 0)) fail("the states have no variance (every item's state is the same), so nothing separates");

  const MatrixXd w = principal_components(total, k, opt.dense_limit);  // [D, k]
  Separation out;
  out.n_harmful = a.n;
  out.n_harmless = b.n;
  const double in_k = (w.transpose() * total.times(w)).trace();
  out.explained_variance = in_k / total_trace;
  const VectorXd pa = w.transpose() * total.ea, pb = w.transpose() * total.eb;  // class means in PCA space [k]
  out.between_class_ratio = (double(a.n) * pa.squaredNorm() + double(b.n) * pb.squaredNorm()) / in_k;

  // Bhattacharyya between N(pa, Σa) and N(pb, Σb) in PCA space.
  MatrixXd sa = w.transpose() * a.scatter_times(w) / double(a.n - 1);  // [k, k]
  MatrixXd sb = w.transpose() * b.scatter_times(w) / double(b.n - 1);
  sa = (sa + sa.transpose()) / 2;
  sb = (sb + sb.transpose()) / 2;
  MatrixXd mean_cov = (sa + sb) / 2;
  const double top = Eigen::SelfAdjointEigenSolver<MatrixXd>(mean_cov, Eigen::EigenvaluesOnly).eigenvalues().maxCoeff();
  const double floor = 1e-10 * top;
  const bool singular = Eigen::SelfAdjointEigenSolver<MatrixXd>(sa, Eigen::EigenvaluesOnly).eigenvalues().minCoeff() <= floor ||
                        Eigen::SelfAdjointEigenSolver<MatrixXd>(sb, Eigen::EigenvaluesOnly).eigenvalues().minCoeff() <= floor;
  if (singular) {
    out.ridge = opt.ridge * mean_cov.trace() / double(k);
    sa += out.ridge * MatrixXd::Identity(k, k);
    sb += out.ridge * MatrixXd::Identity(k, k);
    mean_cov += out.ridge * MatrixXd::Identity(k, k);
  }
  const Eigen::SelfAdjointEigenSolver<MatrixXd> ea(sa), eb(sb), em(mean_cov);
  const VectorXd dmu = pa - pb;
  const VectorXd coords = em.eigenvectors().transpose() * dmu;
  const double mahalanobis = (coords.array().square() / em.eigenvalues().array()).sum();
  out.bhattacharyya = mahalanobis / 8 + 0.5 * (log_det(em) - 0.5 * (log_det(ea) + log_det(eb)));

  // Silhouette over the subsample, in the same PCA space.
  const MatrixXd xa = kept_rows(h), xb = kept_rows(g);
  MatrixXd z(xa.rows() + xb.rows(), k);
  z.topRows(xa.rows()) = (xa.rowwise() - mu.transpose()) * w;
  z.bottomRows(xb.rows()) = (xb.rowwise() - mu.transpose()) * w;
  std::vector<uint8_t> label(size_t(z.rows()), 0);
  std::fill(label.begin(), label.begin() + xa.rows(), 1);
  out.silhouette_points = z.rows();
  if (xa.rows() < 1 || xb.rows() < 1) fail("the silhouette's subsample lacks a class (", xa.rows(), " harmful, ", xb.rows(), " harmless)");
  out.silhouette = silhouette_score(z, label);
  out.pc2.resize(size_t(z.rows()) * 2);
  for (Eigen::Index r = 0; r < z.rows(); r++) {
    out.pc2[size_t(r) * 2] = float(z(r, 0));
    out.pc2[size_t(r) * 2 + 1] = k > 1 ? float(z(r, 1)) : 0.0f;
  }
  out.pc2_harmful = std::move(label);
  return out;
}

}  // namespace tiller::eval
