// Model fingerprints: FNV-1a over the parsed config and sampled weight bytes.
#include "steering/model_fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <vector>

namespace tiller {

namespace {

struct Fnv64 {
  uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  }
  void text(const std::string& s) { bytes(s.data(), s.size() + 1); }  // with the terminator: "ab","c" != "a","bc"
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
  }
};

// Hashes a tensor's identity and three 4 KiB windows of its bytes (read through the backend,
// so device weights work too).
void hash_tensor(Fnv64& f, const std::string& name, const Tensor& t, Backend& backend) {
  if (t.empty()) return;
  f.text(name + " " + std::string(dtype_name(t.dtype)) + " " + t.shape_string());
  constexpr size_t kWindow = 4096;
  const size_t n = t.nbytes();
  std::vector<uint8_t> buf(std::min(n, kWindow));
  for (size_t start : {size_t(0), n / 2, n > kWindow ? n - kWindow : 0}) {
    const size_t len = std::min(kWindow, n - std::min(start, n));
    if (len == 0) continue;
    backend.download(buf.data(), t.ptr<const uint8_t>() + start, len);
    f.bytes(buf.data(), len);
  }
}

}  // namespace

std::string config_fingerprint(const ModelConfig& c) {
  std::ostringstream os;
  os.precision(17);
  os << c.architecture_name << " V" << c.vocab_size << " D" << c.hidden_size << " F" << c.intermediate_size << " L"
     << c.n_layers << " H" << c.n_heads << " KV" << c.n_kv_heads << " d" << c.head_dim << " ctx"
     << c.max_position_embeddings << " eps" << c.rms_norm_eps << " rope" << int(c.rope.type) << "," << c.rope.theta
     << "," << c.rope.factor << "," << c.rope.low_freq_factor << "," << c.rope.high_freq_factor << ","
     << c.rope.original_max_position << " tie" << c.tie_word_embeddings << " bias" << c.qkv_bias << c.o_bias
     << c.mlp_bias << " win";
  for (int64_t w : c.sliding_window) os << "," << w;
  if (!c.rope.freq_factors.empty()) {  // (absent from older fingerprints, which stay the same)
    os << " rope_factors";
    for (float v : c.rope.freq_factors) os << "," << v;
  }
  Fnv64 f;
  f.text(os.str());
  return f.hex();
}

std::string model_fingerprint(const Model& model) {
  const ModelWeights& w = model.weights();
  Backend& backend = model.backend();
  Fnv64 f;
  hash_tensor(f, "embed", w.embed, backend);
  hash_tensor(f, "final_norm", w.final_norm, backend);
  if (w.lm_head.data != w.embed.data) hash_tensor(f, "lm_head", w.lm_head, backend);
  for (size_t l = 0; l < w.layers.size(); l++) {
    const LayerWeights& L = w.layers[l];
    const std::string p = std::to_string(l) + ".";
    const std::pair<const char*, const Tensor*> tensors[] = {
        {"attn_norm", &L.attn_norm}, {"q", &L.q},       {"k", &L.k},         {"v", &L.v},
        {"o", &L.o},                 {"q_bias", &L.q_bias}, {"k_bias", &L.k_bias}, {"v_bias", &L.v_bias},
        {"o_bias", &L.o_bias},       {"mlp_norm", &L.mlp_norm}, {"gate", &L.gate}, {"up", &L.up},
        {"down", &L.down}};
    for (const auto& [name, t] : tensors) hash_tensor(f, p + name, *t, backend);
  }
  // A fingerprint recorded in a profile or a score file must describe bytes that were really used.
  model.check_files_unchanged("computing its fingerprint");
  return "tiller-fp1:" + config_fingerprint(model.config()) + "-" + f.hex();
}

}  // namespace tiller
