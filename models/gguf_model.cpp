// The llama / qwen2 GGUF metadata -> ModelConfig, and GGUF tensors under HF names.
#include "models/gguf_model.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "models/model.h"

namespace tiller {
namespace {

// One layer's tensors: GGUF suffix <-> HF suffix (llama.cpp's tensor map for these architectures).
constexpr std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},       {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},       {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},       {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},  {"attn_output.bias", "self_attn.o_proj.bias"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},        {"ffn_gate.bias", "mlp.gate_proj.bias"},
    {"ffn_up.weight", "mlp.up_proj.weight"},            {"ffn_up.bias", "mlp.up_proj.bias"},
    {"ffn_down.weight", "mlp.down_proj.weight"},        {"ffn_down.bias", "mlp.down_proj.bias"},
};
constexpr std::pair<const char*, const char*> kModelNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};
constexpr const char* kRopeFreqs = "rope_freqs.weight";

// "blk.<l>.<suffix>" -> (l, suffix)
bool split_layer_name(std::string_view name, std::string_view prefix, int* layer, std::string_view* rest) {
  if (!name.starts_with(prefix)) return false;
  name.remove_prefix(prefix.size());
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), *layer);
  if (ec != std::errc() || end == name.data() + name.size() || *end != '.') return false;
  *rest = name.substr(size_t(end - name.data()) + 1);
  return true;
}

// Reads the `{arch}.*` keys with errors that name the file and key.
struct Meta {
  const GgufFile& f;
  std::string arch;

  std::string key(std::string_view k) const { return arch + "." + std::string(k); }
  int64_t required(std::string_view k) const {
    const auto v = f.get_uint(key(k));
    if (!v) fail(f.path().string(), ": missing metadata \"", key(k), "\" (every ", arch, " GGUF from llama.cpp has it)");
    return positive(k, *v);
  }
  int64_t optional(std::string_view k, int64_t fallback) const {
    const auto v = f.get_uint(key(k));
    return v ? positive(k, *v) : fallback;
  }
  int64_t positive(std::string_view k, uint64_t v) const {
    if (v == 0 || v > (uint64_t(1) << 40)) fail(f.path().string(), ": metadata \"", key(k), "\" = ", v, " is out of range");
    return int64_t(v);
  }
};

std::optional<int32_t> token_id(const GgufFile& f, const char* key, int64_t vocab) {
  const auto v = f.get_uint(key);
  if (!v) return std::nullopt;
  if (int64_t(*v) >= vocab) fail(f.path().string(), ": ", key, " = ", *v, " is outside the vocabulary [0, ", vocab, ")");
  return int32_t(*v);
}

}  // namespace

std::string gguf_tensor_name(const std::string& hf_name) {
  for (const auto& [g, h] : kModelNames) {
    if (hf_name == h) return g;
  }
  int layer = 0;
  std::string_view rest;
  if (!split_layer_name(hf_name, "model.layers.", &layer, &rest)) return {};
  for (const auto& [g, h] : kLayerNames) {
    if (rest == h) return "blk." + std::to_string(layer) + "." + g;
  }
  return {};
}

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string file = f.path().string();
  const auto arch = f.get_string("general.architecture");
  if (!arch) fail(file, ": missing metadata \"general.architecture\"; every GGUF model file names its architecture");
  ModelConfig c;
  if (*arch == "llama") {
    c.architecture = Architecture::Llama;
    c.architecture_name = "LlamaForCausalLM";
  } else if (*arch == "qwen2") {
    c.architecture = Architecture::Qwen2;
    c.architecture_name = "Qwen2ForCausalLM";
  } else {
    fail(file, ": architecture \"", *arch, "\" is not supported. tiller runs GGUF files of the llama "
         "(Llama, Mistral) and qwen2 architectures.");
  }
  const Meta m{f, *arch};
  for (const char* k : {"attention.head_count", "attention.head_count_kv"}) {
    const GgufValue* v = f.find(m.key(k));
    if (v && v->type == GgufValue::Type::Array)
      fail(file, ": metadata \"", m.key(k), "\" gives a head count per layer, which tiller does not support");
  }
  c.n_layers = m.required("block_count");
  c.hidden_size = m.required("embedding_length");
  c.intermediate_size = m.required("feed_forward_length");
  c.n_heads = m.required("attention.head_count");
  c.n_kv_heads = m.optional("attention.head_count_kv", c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    fail(file, ": ", m.key("attention.head_count"), " ", c.n_heads, " is not a multiple of ",
         m.key("attention.head_count_kv"), " ", c.n_kv_heads);
  if (!f.find(m.key("attention.key_length")) && c.hidden_size % c.n_heads != 0)
    fail(file, ": embedding_length ", c.hidden_size, " is not a multiple of the head count ", c.n_heads,
         " and no attention.key_length is given");
  c.head_dim = m.optional("attention.key_length", c.hidden_size / c.n_heads);
  if (m.optional("attention.value_length", c.head_dim) != c.head_dim)
    fail(file, ": attention.value_length differs from attention.key_length, which tiller does not support");
  if (c.head_dim % 2 != 0) fail(file, ": head dimension ", c.head_dim, " must be even for rotary embeddings");
  if (m.optional("rope.dimension_count", c.head_dim) != c.head_dim)
    fail(file, ": ", m.key("rope.dimension_count"), " = ", m.optional("rope.dimension_count", 0),
         " rotates part of each head (head dimension ", c.head_dim, "); tiller supports full rotary only");
  c.max_position_embeddings = m.optional("context_length", c.architecture == Architecture::Qwen2 ? 32768 : 2048);
  const auto eps = f.get_number(m.key("attention.layer_norm_rms_epsilon"));
  if (!eps) fail(file, ": missing metadata \"", m.key("attention.layer_norm_rms_epsilon"), "\"");
  c.rms_norm_eps = *eps;
  if (!(c.rms_norm_eps >= 0)) fail(file, ": ", m.key("attention.layer_norm_rms_epsilon"), " must be >= 0");

  // Rope: base frequency, linear scaling as metadata, llama3 scaling as the rope_freqs tensor.
  c.rope.theta = f.get_number(m.key("rope.freq_base")).value_or(10000.0);
  // rope.scaling.type (current files) or the older rope.scale_linear.
  const auto scaling = f.get_string(m.key("rope.scaling.type"));
  const double factor = scaling ? f.get_number(m.key("rope.scaling.factor")).value_or(0)
                                : f.get_number(m.key("rope.scale_linear")).value_or(1);
  if (scaling == "linear" || (!scaling && factor != 1)) {
    if (!(factor > 0)) fail(file, ": linear rope scaling needs a positive factor, found ", factor);
    c.rope.type = RopeConfig::Type::Linear;
    c.rope.factor = factor;
  } else if (scaling && *scaling != "none") {
    fail(file, ": rope scaling \"", *scaling, "\" is not supported (tiller implements none, linear and llama3)");
  }
  if (const GgufTensorInfo* t = f.find_tensor(kRopeFreqs)) {
    if (t->shape != std::vector<int64_t>{c.head_dim / 2} || !t->dtype || !is_float(*t->dtype))
      fail(file, ": tensor \"", kRopeFreqs, "\" must be a float vector of ", c.head_dim / 2, " frequency factors, found ",
           t->type_name, " ", t->shape_string());
    const Tensor v = f.view(*t);
    c.rope.freq_factors.resize(size_t(c.head_dim / 2));
    to_f32(v.dtype, v.data, c.rope.freq_factors.data(), c.rope.freq_factors.size());
    for (float x : c.rope.freq_factors) {
      if (!(x > 0)) fail(file, ": tensor \"", kRopeFreqs, "\" holds a factor ", x, "; rope factors must be positive");
    }
  }

  // Shapes the metadata does not carry: vocabulary, tying and biases come from the tensors.
  const GgufTensorInfo* embed = f.find_tensor("token_embd.weight");
  if (!embed || embed->shape.size() != 2)
    fail(file, ": missing the embedding matrix \"token_embd.weight\" [vocab, ", c.hidden_size, "]");
  c.vocab_size = embed->shape[0];
  if (const auto v = f.get_uint(m.key("vocab_size")); v && int64_t(*v) != c.vocab_size)
    fail(file, ": ", m.key("vocab_size"), " = ", *v, " but token_embd.weight has ", c.vocab_size, " rows");
  if (const GgufValue* tokens = f.get_string_array("tokenizer.ggml.tokens"); tokens && int64_t(tokens->count) != c.vocab_size)
    fail(file, ": the vocabulary (tokenizer.ggml.tokens) has ", tokens->count, " tokens but the embedding "
         "token_embd.weight has ", c.vocab_size, " rows. The file's tokenizer and weights do not belong together.");
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = c.architecture == Architecture::Qwen2 || f.find_tensor("blk.0.attn_q.bias");
  c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;

  // Sliding window (llama.cpp writes one only for models that use it): every layer, or the layers
  // a per-layer pattern marks.
  c.sliding_window.assign(size_t(c.n_layers), 0);
  if (const auto window = f.get_uint(m.key("attention.sliding_window")); window && *window > 0) {
    const GgufValue* pattern = f.find(m.key("attention.sliding_window_pattern"));
    if (pattern && (pattern->type != GgufValue::Type::Array || pattern->elem_type != GgufValue::Type::Bool ||
                    int64_t(pattern->count) != c.n_layers))
      fail(file, ": ", m.key("attention.sliding_window_pattern"), " must be one bool per layer (", c.n_layers, ")");
    for (int64_t l = 0; l < c.n_layers; l++) {
      if (!pattern || pattern->elems[l] != 0) c.sliding_window[size_t(l)] = int64_t(*window);
    }
  }

  c.bos_token_id = token_id(f, "tokenizer.ggml.bos_token_id", c.vocab_size);
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const auto id = token_id(f, key, c.vocab_size);
    if (id && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *id) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(*id);
  }
  return c;
}

GenerationDefaults gguf_generation_defaults(const GgufFile& f) {
  GenerationDefaults g;
  const auto temp = f.get_number("general.sampling.temp");
  if (temp) {
    g.do_sample = *temp > 0;
    g.temperature = float(*temp);
  }
  if (const auto v = f.get_number("general.sampling.top_k")) g.top_k = int(*v);
  if (const auto v = f.get_number("general.sampling.top_p")) g.top_p = float(*v);
  if (const auto v = f.get_number("general.sampling.min_p")) g.min_p = float(*v);
  if (const auto v = f.get_number("general.sampling.penalty_repeat")) g.repetition_penalty = float(*v);
  if (g.temperature < 0 || g.top_p <= 0 || g.top_p > 1 || g.top_k < 0 || g.min_p < 0 || g.min_p > 1 ||
      g.repetition_penalty <= 0)
    fail(f.path().string(), ": general.sampling.* settings are out of range");
  return g;
}

namespace {

class GgufSource final : public WeightSource {
 public:
  GgufSource(std::shared_ptr<GgufFile> file, const ModelConfig& config)
      : file_(std::move(file)), permute_(config.architecture == Architecture::Llama), n_heads_(config.n_heads),
        n_kv_heads_(config.n_kv_heads) {}

  std::optional<Info> info(const std::string& name) const override {
    const GgufTensorInfo* t = stored(name);
    if (!t) return std::nullopt;
    return Info{t->shape, t->type_name, t->dtype, file_->path().string() + " (" + t->name + ")"};
  }

  Tensor view(const std::string& name) override {
    const GgufTensorInfo* t = stored(name);
    TILLER_CHECK(t, name);
    const Tensor v = file_->view(*t);
    const int64_t heads = rope_heads(name);
    return heads > 0 ? unpermuted(v, heads) : v;
  }

  std::vector<std::string> unused(const std::vector<std::string>& used) const override {
    std::set<std::string> names;
    for (const std::string& u : used) names.insert(gguf_tensor_name(u));
    std::vector<std::string> out;
    for (const GgufTensorInfo& t : file_->tensors()) {
      if (!names.count(t.name) && t.name != kRopeFreqs) out.push_back(t.name);
    }
    return out;
  }

  std::vector<std::shared_ptr<const void>> storage() const override {
    std::vector<std::shared_ptr<const void>> out = {file_};
    out.insert(out.end(), copies_.begin(), copies_.end());
    return out;
  }
  std::vector<std::shared_ptr<const MappedFile>> files() const override { return {file_}; }

 private:
  const GgufTensorInfo* stored(const std::string& hf_name) const {
    const std::string g = gguf_tensor_name(hf_name);
    return g.empty() ? nullptr : file_->find_tensor(g);
  }

  // Heads whose rows llama.cpp's converter interleaved (q and k of llama models), else 0.
  int64_t rope_heads(const std::string& hf_name) const {
    if (!permute_) return 0;
    const bool q = hf_name.ends_with("q_proj.weight") || hf_name.ends_with("q_proj.bias");
    const bool k = hf_name.ends_with("k_proj.weight") || hf_name.ends_with("k_proj.bias");
    return q ? n_heads_ : k ? n_kv_heads_ : 0;
  }

  // Rows back in HF order: stored row h·d + 2i + j holds HF row h·d + j·d/2 + i. Rows are moved
  // whole, so quantized rows keep their blocks.
  Tensor unpermuted(const Tensor& v, int64_t heads) {
    const int64_t rows = v.shape[0], d = rows / heads, half = d / 2;
    const size_t row_bytes = v.nbytes() / size_t(rows);
    auto copy = std::make_shared<std::vector<uint8_t>>(v.nbytes());
    const auto* src = static_cast<const uint8_t*>(v.data);
    for (int64_t h = 0; h < heads; h++) {
      for (int64_t i = 0; i < half; i++) {
        for (int64_t j = 0; j < 2; j++) {
          std::memcpy(copy->data() + size_t(h * d + j * half + i) * row_bytes, src + size_t(h * d + 2 * i + j) * row_bytes,
                      row_bytes);
        }
      }
    }
    copies_.push_back(copy);
    Tensor t = v;
    t.data = copy->data();
    return t;
  }

  std::shared_ptr<GgufFile> file_;
  bool permute_;
  int64_t n_heads_, n_kv_heads_;
  std::vector<std::shared_ptr<const void>> copies_;
};

}  // namespace

std::unique_ptr<WeightSource> open_gguf_source(std::shared_ptr<GgufFile> file, const ModelConfig& config) {
  return std::make_unique<GgufSource>(std::move(file), config);
}

}  // namespace tiller
