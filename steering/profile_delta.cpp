// Merged and per-row application of steering profiles.
#include "steering/profile_delta.h"

#include <algorithm>
#include <map>

#include "engine/error.h"

namespace tiller {

// --- merged ------------------------------------------------------------------------------------------

void merge_profile(Model& model, const Profile& profile) {
  const ModelConfig& c = model.config();
  Backend& be = model.backend();
  std::map<std::pair<int, int>, ModuleRef> touched;  // ordered, each module once
  for (const WeightDelta& d : profile.deltas) touched[{d.module.layer, int(d.module.projection)}] = d.module;
  for (const auto& [key, m] : touched) {
    const auto [out, in] = projection_shape(c, m.projection);
    const std::vector<float> dw = weight_delta_f32(profile, m, out, in);
    if (!dw.empty()) {
      const Tensor& w = model.projection_weight(m.layer, m.projection);
      // Quantized weights are widened to F32 by to_f32 and the merged copy kept as BF16.
      const DType dtype = is_float(w.dtype) ? w.dtype : DType::BF16;
      std::vector<uint8_t> raw(w.nbytes());
      be.download(raw.data(), w.data, raw.size());
      Tensor host = w;
      host.data = raw.data();
      host.device = Device::Cpu;
      std::vector<uint8_t> stored = merged_weight(host, dw, dtype);
      model.replace_projection_weight(m.layer, m.projection, Tensor(stored.data(), dtype, {out, in}));
    }
    std::vector<float> db = bias_delta_f32(profile, m, out);
    if (!db.empty()) {
      if (m.projection == Projection::LmHead) fail("a bias delta on lm_head cannot be applied: the head has no bias");
      const Tensor& b = model.projection_bias(m.layer, m.projection);
      if (!b.empty()) {
        std::vector<float> old(static_cast<size_t>(out));
        be.download(old.data(), b.data, old.size() * sizeof(float));
        for (size_t i = 0; i < db.size(); i++) db[i] = old[i] + db[i];
      }
      model.replace_projection_bias(m.layer, m.projection, Tensor(db.data(), DType::F32, {out}));
    }
  }
}

std::vector<uint8_t> merged_weight(const Tensor& w, const std::vector<float>& dw, DType dtype) {
  TILLER_CHECK(int64_t(dw.size()) == w.numel(), "ΔW has ", dw.size(), " values for a weight of ", w.shape_string());
  std::vector<float> merged(dw.size());
  to_f32(w.dtype, w.data, merged.data(), merged.size());
  for (size_t i = 0; i < merged.size(); i++) merged[i] += dw[i];
  std::vector<uint8_t> stored(merged.size() * dtype_size(dtype));
  from_f32(dtype, merged.data(), stored.data(), merged.size());
  return stored;
}

// --- per row -----------------------------------------------------------------------------------------

// One delta as the backend holds it.
struct ProfileSet::Placed {
  DeltaKind kind;
  Tensor a;       // ColumnBlocks [out, k·c] | Dense [out, in] | LowRank A [r, in] | Bias [out] F32
  Tensor b;       // LowRank: scaling · B [out, r] F32
  Tensor blocks;  // ColumnBlocks: I32 [k]
  int64_t width = 0;
};

struct ProfileSet::Entry {
  std::string name;
  std::shared_ptr<const Profile> profile;
  std::vector<std::vector<Placed>> by_module;  // [(L + 1) · 8]: layer l's projection p at (l + 1) · 8 + p
  std::vector<Buffer> owned;
  size_t bytes = 0;
};

namespace {
constexpr int kProjections = 8;
size_t module_index(int layer, Projection p) { return size_t(layer + 1) * kProjections + size_t(p); }
}  // namespace

ProfileSet::ProfileSet(Backend& backend, const ModelConfig& config) : backend_(backend), config_(config) {
  scratch_.resize(3);
}

ProfileSet::~ProfileSet() = default;

int32_t ProfileSet::add(std::string name, std::shared_ptr<const Profile> profile) {
  if (find(name)) fail("two profiles are named '", name, "'");
  auto e = std::make_unique<Entry>();
  e->name = std::move(name);
  e->by_module.resize(module_index(int(config_.n_layers), Projection::Q));
  auto place = [&](const Tensor& host) {
    const Tensor t = backend_.place_weight(host, e->owned);
    e->bytes += host.nbytes();
    return t;
  };
  auto place_copy = [&](const std::vector<float>& v, std::initializer_list<int64_t> shape) {
    e->owned.push_back(backend_.alloc(v.size() * sizeof(float)));
    backend_.upload(e->owned.back().data(), v.data(), v.size() * sizeof(float));
    e->bytes += v.size() * sizeof(float);
    return e->owned.back().as(DType::F32, shape);
  };
  for (const WeightDelta& d : profile->deltas) {
    Placed p{d.kind, {}, {}, {}, 0};
    switch (d.kind) {
      case DeltaKind::ColumnBlocks: {
        p.a = place(d.a.view());
        p.width = d.block_width();
        e->owned.push_back(backend_.alloc(d.blocks.size() * sizeof(int32_t)));
        backend_.upload(e->owned.back().data(), d.blocks.data(), d.blocks.size() * sizeof(int32_t));
        p.blocks = e->owned.back().as(DType::I32, {int64_t(d.blocks.size())});
        break;
      }
      case DeltaKind::Dense: p.a = place(d.a.view()); break;
      case DeltaKind::LowRank: {
        p.a = place(d.a.view());
        std::vector<float> b = d.b.to_f32();
        for (float& v : b) v *= d.scaling;
        p.b = place_copy(b, {d.b.shape[0], d.b.shape[1]});
        break;
      }
      case DeltaKind::Bias: p.a = place_copy(d.a.to_f32(), {d.a.shape[0]}); break;
    }
    e->by_module[module_index(d.module.layer, d.module.projection)].push_back(p);
  }
  e->profile = std::move(profile);
  entries_.push_back(std::move(e));
  return int32_t(entries_.size());
}

const std::string& ProfileSet::name(int32_t adapter) const {
  TILLER_CHECK(adapter >= 1 && adapter <= size(), "adapter ", adapter);
  return entries_[size_t(adapter - 1)]->name;
}

const Profile& ProfileSet::profile(int32_t adapter) const {
  TILLER_CHECK(adapter >= 1 && adapter <= size(), "adapter ", adapter);
  return *entries_[size_t(adapter - 1)]->profile;
}

std::optional<int32_t> ProfileSet::find(const std::string& name) const {
  for (size_t i = 0; i < entries_.size(); i++) {
    if (entries_[i]->name == name) return int32_t(i + 1);
  }
  return std::nullopt;
}

size_t ProfileSet::device_bytes() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e->bytes;
  return n;
}

Tensor ProfileSet::scratch(int slot, int64_t rows, int64_t width) {
  Buffer& b = scratch_[size_t(slot)];
  const size_t need = size_t(rows * width) * sizeof(float);
  if (b.size() < need) b = backend_.alloc(std::max(need, 2 * b.size()));
  return b.as(DType::F32, {rows, width});
}

// Groups the rows by adapter, both as batch rows and as positions among the logit rows (what
// lm_head's x holds), and uploads every group's indices at once.
void ProfileSet::begin_forward(const ForwardContext& ctx) {
  groups_.clear();
  const Batch& batch = ctx.batch;
  std::map<int32_t, std::vector<int32_t>> rows, head_rows;
  for (int64_t t = 0; t < batch.size(); t++) {
    const int32_t a = batch.adapter(t);
    if (a == 0) continue;
    if (a < 0 || a > size()) fail("batch row ", t, " names adapter ", a, " but ", size(), " profiles are loaded");
    rows[a].push_back(int32_t(t));
  }
  const std::vector<int32_t>& logit_rows = ctx.layout.logit_rows;
  for (size_t i = 0; i < logit_rows.size(); i++) {
    const int32_t a = batch.adapter(logit_rows[i]);
    if (a != 0) head_rows[a].push_back(int32_t(i));
  }
  size_t total = 0;
  for (const auto& [a, r] : rows) total += r.size() + head_rows[a].size();
  if (total == 0) return;
  std::vector<int32_t> all;
  all.reserve(total);
  for (const auto& [a, r] : rows) {
    all.insert(all.end(), r.begin(), r.end());
    all.insert(all.end(), head_rows[a].begin(), head_rows[a].end());
  }
  if (rows_buffer_.size() < total * sizeof(int32_t)) rows_buffer_ = backend_.alloc(2 * total * sizeof(int32_t));
  backend_.upload(rows_buffer_.data(), all.data(), total * sizeof(int32_t));
  auto* base = static_cast<int32_t*>(rows_buffer_.data());
  size_t offset = 0;
  for (auto& [a, r] : rows) {
    std::vector<int32_t>& h = head_rows[a];
    const Tensor t(base + offset, DType::I32, {int64_t(r.size())}, backend_.device());
    const Tensor th(base + offset + r.size(), DType::I32, {int64_t(h.size())}, backend_.device());
    offset += r.size() + h.size();
    groups_.push_back({a, std::move(r), t, std::move(h), th});
  }
}

void ProfileSet::apply(int layer, Projection projection, const Tensor& x, Tensor& y, const ForwardContext& ctx) {
  const size_t m = module_index(layer, projection);
  // A staggered forward computes a prefix of the rows: each group's rows in it are a prefix too.
  const int64_t T = x.shape[0], K = x.row_size(), N = y.row_size();
  for (const Group& g : groups_) {
    const std::vector<Placed>& deltas = entries_[size_t(g.adapter - 1)]->by_module[m];
    if (deltas.empty()) continue;
    // lm_head's x holds the logit rows only; the layers' x the batch rows (or a prefix of them).
    const bool head = projection == Projection::LmHead;
    const int64_t n = head ? int64_t(g.head_rows.size())
                           : std::lower_bound(g.rows.begin(), g.rows.end(), int32_t(T)) - g.rows.begin();
    if (n == 0) continue;
    const Tensor& indices = head ? g.head_rows_device : g.rows_device;
    const Tensor rows = n == T ? Tensor() : indices.rows(0, n);  // every row: no gather
    Tensor xg;  // x's rows of this profile, selected once for dense and low-rank deltas
    auto rows_of_x = [&]() -> const Tensor& {
      if (xg.empty()) {
        if (rows.empty()) xg = x;
        else {
          xg = scratch(0, n, K);
          backend_.index_select(x, rows, Tensor(), 0, xg);
        }
      }
      return xg;
    };
    for (const Placed& d : deltas) {
      Tensor out = scratch(2, n, N);
      switch (d.kind) {
        case DeltaKind::ColumnBlocks: {
          Tensor cols = scratch(0, n, d.a.shape[1]);
          xg = Tensor();  // scratch 0 is reused here
          backend_.index_select(x, rows, d.blocks, d.width, cols);
          backend_.linear(cols, d.a, nullptr, out);
          break;
        }
        case DeltaKind::Dense: backend_.linear(rows_of_x(), d.a, nullptr, out); break;
        case DeltaKind::LowRank: {
          const Tensor& xs = rows_of_x();
          Tensor mid = scratch(1, n, d.a.shape[0]);
          backend_.linear(xs, d.a, nullptr, mid);
          backend_.linear(mid, d.b, nullptr, out);
          break;
        }
        case DeltaKind::Bias:
          backend_.index_add(y, rows, Tensor(), d.a);
          continue;
      }
      backend_.index_add(y, rows, out, Tensor());
    }
  }
}

}  // namespace tiller
