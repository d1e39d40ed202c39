// The one decoder forward, over the Backend interface.
#include "models/model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_map>

#include "engine/error.h"
#include "models/rope.h"
#include "models/weight_specs.h"

namespace tiller {
namespace {
int64_t next_model_id() {
  static std::atomic<int64_t> next{1};
  return next++;
}
}  // namespace

// Activation buffers, grown to the largest batch seen.
struct Model::Workspace {
  const int64_t id = next_model_id();  // graph keys: never the same for two models' weights
  int64_t rows = 0, logit_rows = 0;
  Buffer x, h, q, k, v, z, o, gate, up, down, final_h, logits;
  BatchLayout joined;  // a staggered forward's rows that have joined so far: a prefix of layout_
};

Model::Model(const ModelConfig& config, Backend& backend, ModelWeights weights, std::vector<Buffer> owned,
             std::vector<std::shared_ptr<const void>> storage, std::vector<std::shared_ptr<const MappedFile>> files)
    : config_(config), backend_(backend), weights_(std::move(weights)), owned_(std::move(owned)),
      storage_(std::move(storage)), files_(std::move(files)), ws_(std::make_unique<Workspace>()) {
  const std::vector<float> inv_freq = rope_inv_freq(config_);
  inv_freq_buffer_ = backend_.alloc(inv_freq.size() * sizeof(float));
  backend_.upload(inv_freq_buffer_.data(), inv_freq.data(), inv_freq.size() * sizeof(float));
  inv_freq_ = inv_freq_buffer_.as(DType::F32, {int64_t(inv_freq.size())});
  attn_scale_ = float(1.0 / std::sqrt(double(config_.head_dim)));
}

Model::~Model() = default;

KvCacheOptions Model::kv_cache_options(int64_t tokens, int64_t n_sequences, int64_t block_size) const {
  KvCacheOptions o;
  o.n_layers = config_.n_layers;
  o.n_kv_heads = config_.n_kv_heads;
  o.head_dim = config_.head_dim;
  o.dtype = kv_dtype();
  o.block_size = block_size;
  o.n_blocks = std::max<int64_t>(1, n_sequences * ((tokens + block_size - 1) / block_size));
  return o;
}

// Checks the batch against the cache, appends every sequence's rows to it, and fills layout_.
void Model::build_layout(const Batch& batch, KvCache& kv) {
  const int64_t T = batch.size();
  if (T == 0) fail("forward: empty batch");
  if (int64_t(batch.seqs.size()) != T || int64_t(batch.positions.size()) != T || int64_t(batch.logits.size()) != T ||
      (!batch.adapters.empty() && int64_t(batch.adapters.size()) != T))
    fail("forward: batch fields have different lengths");

  // Sequences in order of first appearance; each one's rows must continue its cache in order.
  std::unordered_map<SeqId, int32_t> index;
  std::vector<SeqId> seqs;
  std::vector<int64_t> next_pos, n_new;
  BatchLayout& L = layout_;
  L.row_seq.resize(size_t(T));
  for (int64_t t = 0; t < T; t++) {
    const SeqId s = batch.seqs[size_t(t)];
    auto [it, fresh] = index.emplace(s, int32_t(seqs.size()));
    if (fresh) {
      if (!kv.contains(s)) fail("forward: row ", t, " names sequence ", s, ", which the KV cache does not hold");
      seqs.push_back(s);
      next_pos.push_back(kv.length(s));
      n_new.push_back(0);
    }
    const int32_t si = it->second;
    if (batch.positions[size_t(t)] != next_pos[size_t(si)]) {
      fail("forward: row ", t, " of sequence ", s, " has position ", batch.positions[size_t(t)], "; expected ",
           next_pos[size_t(si)], " (rows of a sequence continue its cached length, in order)");
    }
    const int32_t tok = batch.tokens[size_t(t)];
    if (tok < 0 || tok >= config_.vocab_size)
      fail("forward: token id ", tok, " in row ", t, " is outside the vocabulary [0, ", config_.vocab_size, ")");
    if (next_pos[size_t(si)] >= config_.max_position_embeddings) {
      fail("forward: sequence ", s, " would reach position ", next_pos[size_t(si)], " but the model's context is ",
           config_.max_position_embeddings, " tokens (max_position_embeddings)");
    }
    next_pos[size_t(si)]++;
    n_new[size_t(si)]++;
    L.row_seq[size_t(t)] = si;
  }
  int64_t needed = 0;
  for (size_t i = 0; i < seqs.size(); i++) needed += kv.blocks_needed(seqs[i], n_new[i]);
  if (needed > kv.free_blocks()) {
    fail("KV cache full: this batch needs ", needed, " more blocks of ", kv.block_size(), " tokens but ",
         kv.free_blocks(), " of ", kv.n_blocks(), " are free. Use a larger context (--ctx) or fewer sequences.");
  }
  for (size_t i = 0; i < seqs.size(); i++) kv.append(seqs[i], n_new[i]);

  L.tokens.assign(batch.tokens.begin(), batch.tokens.end());
  L.positions.assign(batch.positions.begin(), batch.positions.end());
  L.slots.resize(size_t(T));
  for (int64_t t = 0; t < T; t++) L.slots[size_t(t)] = kv.slot(batch.seqs[size_t(t)], batch.positions[size_t(t)]);
  L.n_seqs = int32_t(seqs.size());
  L.max_blocks = 0;
  L.max_kv_len = 0;
  for (SeqId s : seqs) {
    L.max_blocks = std::max(L.max_blocks, int32_t(kv.block_table(s).size()));
    L.max_kv_len = std::max(L.max_kv_len, int32_t(kv.length(s)));
  }
  L.block_tables.assign(size_t(L.n_seqs) * size_t(L.max_blocks), -1);
  L.kv_lens.resize(size_t(L.n_seqs));
  for (size_t i = 0; i < seqs.size(); i++) {
    const auto& table = kv.block_table(seqs[i]);
    std::copy(table.begin(), table.end(), L.block_tables.begin() + long(i * size_t(L.max_blocks)));
    L.kv_lens[i] = int32_t(kv.length(seqs[i]));
  }
  L.logit_rows.clear();
  for (int64_t t = 0; t < T; t++) {
    if (batch.logits[size_t(t)]) L.logit_rows.push_back(int32_t(t));
  }
  backend_.upload_layout(L);
}

const Tensor& Model::projection_weight(int layer, Projection p) const {
  if (p == Projection::LmHead) return weights_.lm_head;
  TILLER_CHECK(layer >= 0 && layer < config_.n_layers, "layer ", layer);
  return weights_.layers[size_t(layer)].*projection_weight_field(p);
}

const Tensor& Model::projection_bias(int layer, Projection p) const {
  static const Tensor none;
  if (p == Projection::LmHead) return none;
  TILLER_CHECK(layer >= 0 && layer < config_.n_layers, "layer ", layer);
  return weights_.layers[size_t(layer)].*projection_bias_field(p);
}

void Model::replace_projection_weight(int layer, Projection p, const Tensor& host) {
  const Tensor& old = projection_weight(layer, p);
  TILLER_CHECK(host.device == Device::Cpu && host.rank == 2 && host.shape == old.shape, "replacing ",
               module_name({layer, p}), " ", old.shape_string(), " with ", host.shape_string());
  owned_.push_back(backend_.alloc(host.nbytes()));
  backend_.upload(owned_.back().data(), host.data, host.nbytes());
  const Tensor placed = owned_.back().as(host.dtype, {host.shape[0], host.shape[1]});
  if (p == Projection::LmHead) weights_.lm_head = placed;  // unties a tied head: the embedding stays
  else weights_.layers[size_t(layer)].*projection_weight_field(p) = placed;
}

void Model::replace_projection_bias(int layer, Projection p, const Tensor& host) {
  const auto [out, in] = projection_shape(config_, p);
  TILLER_CHECK(p != Projection::LmHead && host.device == Device::Cpu && host.dtype == DType::F32 && host.numel() == out,
               "replacing the bias of ", module_name({layer, p}), " with ", dtype_name(host.dtype), " ", host.shape_string());
  owned_.push_back(backend_.alloc(host.nbytes()));
  backend_.upload(owned_.back().data(), host.data, host.nbytes());
  weights_.layers[size_t(layer)].*projection_bias_field(p) = owned_.back().as(DType::F32, {out});
}

void Model::ensure_workspace(int64_t rows, int64_t logit_rows) {
  Workspace& w = *ws_;
  auto grow = [&](Buffer& b, int64_t n_rows, int64_t width) {
    const size_t need = size_t(n_rows * width) * sizeof(float);
    if (b.size() < need) b = backend_.alloc(need);
  };
  if (rows > w.rows) {
    const int64_t r = std::max(rows, 2 * w.rows);  // amortise growth
    const ModelConfig& c = config_;
    grow(w.x, r, c.hidden_size);
    grow(w.h, r, c.hidden_size);
    grow(w.q, r, c.q_dim());
    grow(w.k, r, c.kv_dim());
    grow(w.v, r, c.kv_dim());
    grow(w.z, r, c.q_dim());
    grow(w.o, r, c.hidden_size);
    grow(w.gate, r, c.intermediate_size);
    grow(w.up, r, c.intermediate_size);
    grow(w.down, r, c.hidden_size);
    w.rows = r;
  }
  if (logit_rows > w.logit_rows) {
    const int64_t r = std::max(logit_rows, 2 * w.logit_rows);
    grow(w.final_h, r, config_.hidden_size);
    grow(w.logits, r, config_.vocab_size);
    w.logit_rows = r;
  }
}

void Model::project(int layer, const Tensor& x, std::initializer_list<ProjectionOut> outs, const ForwardContext& ctx,
                    const ForwardOptions& options) {
  if (outs.size() == 1) {
    const ProjectionOut& p = *outs.begin();
    backend_.linear(x, p.w, p.bias.empty() ? nullptr : &p.bias, p.y);
  } else {
    std::vector<Backend::LinearJob> jobs;
    for (const ProjectionOut& p : outs) jobs.push_back({&p.w, p.bias.empty() ? nullptr : &p.bias, &p.y});
    backend_.linear_many(x, jobs);
  }
  if (options.delta) {
    for (const ProjectionOut& p : outs) options.delta->apply(layer, p.projection, x, p.y, ctx);
  }
}

void Model::run_layer(int l, KvCache& kv, const ForwardContext& ctx, const ForwardOptions& opt) {
  const ModelConfig& c = config_;
  const LayerWeights& W = weights_.layers[size_t(l)];
  Workspace& ws = *ws_;
  const int64_t T = ctx.layout.n_rows(), D = c.hidden_size, F = c.intermediate_size;
  const float eps = float(c.rms_norm_eps);

  Tensor x = ws.x.as(DType::F32, {T, D});  // residual stream
  Tensor h = ws.h.as(DType::F32, {T, D});
  Tensor q = ws.q.as(DType::F32, {T, c.n_heads, c.head_dim});
  Tensor k = ws.k.as(DType::F32, {T, c.n_kv_heads, c.head_dim});
  Tensor v = ws.v.as(DType::F32, {T, c.n_kv_heads, c.head_dim});
  Tensor z = ws.z.as(DType::F32, {T, c.n_heads, c.head_dim});
  Tensor o = ws.o.as(DType::F32, {T, D});
  Tensor gate = ws.gate.as(DType::F32, {T, F});
  Tensor up = ws.up.as(DType::F32, {T, F});
  Tensor down = ws.down.as(DType::F32, {T, D});
  Tensor q2 = q.reshaped({T, c.q_dim()}), k2 = k.reshaped({T, c.kv_dim()}), v2 = v.reshaped({T, c.kv_dim()});
  Tensor z2 = z.reshaped({T, c.q_dim()});

  if (opt.hook) opt.hook->on_activation(HookPoint::ResidPre, l, x, ctx);
  // Attention block
  backend_.rmsnorm(x, W.attn_norm, eps, h);
  project(l, h, {{Projection::Q, W.q, W.q_bias, q2}, {Projection::K, W.k, W.k_bias, k2}, {Projection::V, W.v, W.v_bias, v2}},
          ctx, opt);
  backend_.rope(q, k, inv_freq_, ctx.layout);
  backend_.kv_append(kv.store(), l, k, v, ctx.layout);
  backend_.attention(q, kv.store(), l, c.sliding_window[size_t(l)], attn_scale_, ctx.layout, z);
  if (opt.hook) opt.hook->on_activation(HookPoint::AttnHeads, l, z, ctx);
  project(l, z2, {{Projection::O, W.o, W.o_bias, o}}, ctx, opt);
  // MLP block
  backend_.add_rmsnorm(x, o, W.mlp_norm, eps, h);
  project(l, h, {{Projection::Gate, W.gate, W.gate_bias, gate}, {Projection::Up, W.up, W.up_bias, up}}, ctx, opt);
  backend_.silu_mul(gate, up, gate);
  project(l, gate, {{Projection::Down, W.down, W.down_bias, down}}, ctx, opt);
  backend_.add(x, down);
  if (opt.hook) opt.hook->on_activation(HookPoint::ResidPost, l, x, ctx);
}

int Model::check_options(const Batch& batch, const ForwardOptions& opt) const {
  const int n_layers = int(config_.n_layers);
  const int end = opt.end_layer < 0 ? n_layers : opt.end_layer;
  if (opt.first_layer < 0 || opt.first_layer > end || end > n_layers)
    fail("forward: layer range [", opt.first_layer, ", ", end, ") is outside [0, ", n_layers, "]");
  if (opt.first_layer > 0 && !opt.input_residual)
    fail("forward: starting at layer ", opt.first_layer, " needs input_residual");
  const std::span<const int32_t> joins = opt.row_first_layer;
  if (!joins.empty()) {
    if (opt.first_layer != 0 || !opt.input_residual || int64_t(joins.size()) != batch.size())
      fail("forward: row_first_layer needs one entry per row (", batch.size(), ", found ", joins.size(),
           "), input_residual, and first_layer 0");
    for (size_t t = 0; t < joins.size(); t++) {
      if (joins[t] < 0 || joins[t] >= end || (t > 0 && joins[t] < joins[t - 1]))
        fail("forward: row_first_layer must be nondecreasing and within [0, ", end, "); row ", t, " has ", joins[t]);
    }
  }
  if (opt.input_residual && (opt.first_layer > 0 || !joins.empty())) {
    const Tensor& in = *opt.input_residual;
    const int64_t T = batch.size(), D = config_.hidden_size;
    if (in.dtype != DType::F32 || in.rank != 2 || in.shape[0] != T || in.shape[1] != D)
      fail("forward: input_residual must be F32 [", T, ", ", D, "], found ", dtype_name(in.dtype), " ", in.shape_string());
  }
  return end;
}

void Model::run_head(Tensor& x, const ForwardContext& ctx, const ForwardOptions& opt) {
  Tensor final_h = ws_->final_h.as(DType::F32, {int64_t(layout_.logit_rows.size()), config_.hidden_size});
  backend_.gather_rows(x, layout_, final_h);
  backend_.rmsnorm(final_h, weights_.final_norm, float(config_.rms_norm_eps), final_h);
  if (opt.hook) opt.hook->on_activation(HookPoint::FinalNorm, -1, final_h, ctx);
  const Tensor no_bias;
  Tensor logits = logits_view();
  project(-1, final_h, {{Projection::LmHead, weights_.lm_head, no_bias, logits}}, ctx, opt);
  if (opt.hook) opt.hook->on_activation(HookPoint::Logits, -1, logits, ctx);
}

Tensor Model::logits_view() const {
  return ws_->logits.as(DType::F32, {int64_t(layout_.logit_rows.size()), config_.vocab_size});
}

// A plain decode step issues the same ops on the same buffers each step, so the backend may replay
// it as a graph. The key is every value the ops turn into kernel arguments; the layout's contents
// (tokens, positions, block tables) and the cache change between replays, the key does not.
void Model::run_decode_step(Tensor& x, KvCache& kv, const ForwardContext& ctx, const ForwardOptions& opt) {
  const Workspace& w = *ws_;
  const auto addr = [](const void* p) { return int64_t(reinterpret_cast<intptr_t>(p)); };
  const KvStore& s = kv.store();
  const int64_t T = x.shape[0], R = int64_t(layout_.logit_rows.size());
  const int64_t key[] = {w.id, T, R, layout_.max_blocks, addr(layout_.device_storage.data()), addr(s.k[0].data),
                         s.n_blocks, s.block_size, addr(w.x.data()), addr(w.h.data()), addr(w.q.data()),
                         addr(w.k.data()), addr(w.v.data()), addr(w.z.data()), addr(w.o.data()),
                         addr(w.gate.data()), addr(w.up.data()), addr(w.down.data()), addr(w.final_h.data()),
                         addr(w.logits.data())};
  backend_.run_graph(key, [&] {
    backend_.embedding(weights_.embed, layout_, x);
    for (int l = 0; l < config_.n_layers; l++) run_layer(l, kv, ctx, opt);
    run_head(x, ctx, opt);
  });
}

// Rows join in order, so the rows computed at layer l are always a prefix of the batch: each
// layer runs over the same sequences and block tables, only the first n rows.
void Model::run_staggered(Tensor& x, KvCache& kv, int end, const ForwardContext& ctx, const ForwardOptions& opt) {
  const std::span<const int32_t> joins = opt.row_first_layer;
  const int64_t T = x.shape[0], D = x.shape[1];
  BatchLayout& J = ws_->joined;
  const ForwardContext joined_ctx{ctx.batch, J, backend_};
  int64_t n = 0;
  for (int l = joins.front(); l < end; l++) {
    const int64_t before = n;
    while (n < T && joins[size_t(n)] <= l) n++;
    if (n > before) {
      backend_.upload(x.rows(before, n - before).data, opt.input_residual->rows(before, n - before).data,
                      size_t((n - before) * D) * sizeof(float));
      J.tokens.assign(layout_.tokens.begin(), layout_.tokens.begin() + n);
      J.positions.assign(layout_.positions.begin(), layout_.positions.begin() + n);
      J.row_seq.assign(layout_.row_seq.begin(), layout_.row_seq.begin() + n);
      J.slots.assign(layout_.slots.begin(), layout_.slots.begin() + n);
      J.block_tables = layout_.block_tables;
      J.kv_lens = layout_.kv_lens;
      J.logit_rows.clear();
      J.n_seqs = layout_.n_seqs;
      J.max_blocks = layout_.max_blocks;
      J.max_kv_len = layout_.max_kv_len;
      backend_.upload_layout(J);
    }
    run_layer(l, kv, joined_ctx, opt);
  }
}

Tensor Model::forward(const Batch& batch, KvCache& kv, const ForwardOptions& opt) {
  const int end = check_options(batch, opt);
  build_layout(batch, kv);
  const int64_t T = batch.size(), R = int64_t(layout_.logit_rows.size());
  ensure_workspace(T, R);
  const ForwardContext ctx{batch, layout_, backend_};
  Tensor x = ws_->x.as(DType::F32, {T, config_.hidden_size});
  if (opt.delta) opt.delta->begin_forward(ctx);

  const bool whole = opt.first_layer == 0 && end == config_.n_layers && opt.row_first_layer.empty();
  if (whole && T == layout_.n_seqs && R > 0 && !opt.hook && !opt.delta && !opt.output_residual) {
    run_decode_step(x, kv, ctx, opt);
    return logits_view();
  }
  if (!opt.row_first_layer.empty()) {
    run_staggered(x, kv, end, ctx, opt);
  } else {
    if (opt.first_layer == 0) backend_.embedding(weights_.embed, layout_, x);
    else backend_.upload(x.data, opt.input_residual->data, x.nbytes());
    for (int l = opt.first_layer; l < end; l++) run_layer(l, kv, ctx, opt);
  }
  if (opt.output_residual) {
    Tensor& out = *opt.output_residual;
    TILLER_CHECK(out.nbytes() >= x.nbytes(), "output_residual is too small");
    backend_.download(out.data, x.data, x.nbytes());
  }
  if (end < config_.n_layers || R == 0) return {};
  run_head(x, ctx, opt);
  return logits_view();
}

}  // namespace tiller
