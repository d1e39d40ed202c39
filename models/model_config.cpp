// config.json and generation_config.json, read as transformers reads them.
#include "models/model_config.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/gguf.h"
#include "models/gguf_model.h"

namespace tiller {
namespace {

struct Reader {
  const json& j;
  const std::string& source;

  [[noreturn]] void bad(const std::string& key, const std::string& expected) const {
    const auto it = j.find(key);
    fail(source, ": \"", key, "\" must be ", expected, ", found ", it == j.end() ? "nothing" : it->dump());
  }
  bool has(const std::string& key) const {
    auto it = j.find(key);
    return it != j.end() && !it->is_null();
  }
  int64_t integer(const std::string& key) const {
    if (!has(key)) fail(source, ": missing required key \"", key, "\"");
    return positive(key);
  }
  int64_t integer(const std::string& key, int64_t fallback) const { return has(key) ? positive(key) : fallback; }
  int64_t positive(const std::string& key) const {
    const auto& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) bad(key, "a positive integer");
    return v.get<int64_t>();
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_number()) bad(key, "a number");
    return j.at(key).get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j.at(key).is_boolean()) bad(key, "true or false");
    return j.at(key).get<bool>();
  }
  std::vector<int32_t> ids(const std::string& key) const {  // an int or a list of ints
    std::vector<int32_t> out;
    if (!has(key)) return out;
    const auto& v = j.at(key);
    if (v.is_number_integer()) return {v.get<int32_t>()};
    if (!v.is_array()) bad(key, "a token id or a list of token ids");
    for (const auto& e : v) {
      if (!e.is_number_integer()) bad(key, "a token id or a list of token ids");
      out.push_back(e.get<int32_t>());
    }
    return out;
  }
};

RopeConfig parse_rope(const json& j, const std::string& source, int64_t max_position) {
  Reader top{j, source};
  RopeConfig rope;
  rope.theta = top.number("rope_theta", 10000.0);
  // transformers 5 writes "rope_parameters"; older configs have rope_theta + "rope_scaling".
  const char* key = top.has("rope_parameters") ? "rope_parameters" : top.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (!key) return rope;
  const json& p = j.at(key);
  if (!p.is_object()) top.bad(key, "an object");
  const std::string where = source + ": " + key;
  Reader r{p, where};
  rope.theta = r.number("rope_theta", rope.theta);
  std::string type = "default";
  if (r.has("rope_type")) type = p.at("rope_type").get<std::string>();
  else if (r.has("type")) type = p.at("type").get<std::string>();
  if (r.number("partial_rotary_factor", 1.0) != 1.0)
    fail(where, ": partial_rotary_factor ", p.at("partial_rotary_factor").dump(), " is not supported (expected 1.0)");
  if (type == "default") {
    rope.type = RopeConfig::Type::Default;
  } else if (type == "linear") {
    rope.type = RopeConfig::Type::Linear;
    rope.factor = r.number("factor", 0.0);
    if (rope.factor <= 0) r.bad("factor", "a positive number");
  } else if (type == "llama3") {
    rope.type = RopeConfig::Type::Llama3;
    rope.factor = r.number("factor", 0.0);
    if (rope.factor <= 0) r.bad("factor", "a positive number");
    rope.low_freq_factor = r.number("low_freq_factor", 0.0);
    rope.high_freq_factor = r.number("high_freq_factor", 0.0);
    if (!r.has("low_freq_factor") || !r.has("high_freq_factor") || rope.high_freq_factor <= rope.low_freq_factor)
      fail(where, ": llama3 rope needs low_freq_factor < high_freq_factor, found ", p.dump());
    rope.original_max_position = r.integer("original_max_position_embeddings", max_position);
  } else {
    fail(where, ": rope type \"", type, "\" is not supported. tiller implements default, linear and llama3 "
         "(dynamic, yarn and longrope are not implemented).");
  }
  return rope;
}

}  // namespace

int64_t ModelConfig::n_parameters() const {
  const int64_t attn = hidden_size * (q_dim() + 2 * kv_dim()) + q_dim() * hidden_size;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t per_layer = attn + mlp + 2 * hidden_size;
  const int64_t embed = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return n_layers * per_layer + embed + hidden_size;
}

ModelConfig parse_model_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object, found ", j.type_name());
  Reader r{j, source};
  ModelConfig c;

  std::string arch;
  if (r.has("architectures")) {
    const auto& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a[0].is_string()) r.bad("architectures", "a list of class names");
    arch = a[0].get<std::string>();
  } else if (r.has("model_type")) {  // some configs omit architectures; map the family
    const auto mt = j.at("model_type").get<std::string>();
    arch = mt == "llama" ? "LlamaForCausalLM" : mt == "mistral" ? "MistralForCausalLM" : mt == "qwen2" ? "Qwen2ForCausalLM" : mt;
  }
  if (arch == "LlamaForCausalLM") c.architecture = Architecture::Llama;
  else if (arch == "MistralForCausalLM") c.architecture = Architecture::Mistral;
  else if (arch == "Qwen2ForCausalLM") c.architecture = Architecture::Qwen2;
  else
    fail(source, ": architecture \"", arch.empty() ? "(none given)" : arch,
         "\" is not supported. tiller runs LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM.");
  c.architecture_name = arch;

  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer("num_key_value_heads", c.n_heads);
  c.head_dim = r.integer("head_dim", c.hidden_size / c.n_heads);
  if (!r.has("head_dim") && c.hidden_size % c.n_heads != 0)
    fail(source, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ", c.n_heads,
         " and no head_dim is given");
  if (c.n_heads % c.n_kv_heads != 0)
    fail(source, ": num_attention_heads ", c.n_heads, " must be a multiple of num_key_value_heads ", c.n_kv_heads);
  if (c.head_dim % 2 != 0) fail(source, ": head_dim ", c.head_dim, " must be even for rotary embeddings");
  const int64_t default_max_pos = c.architecture == Architecture::Llama ? 2048 : c.architecture == Architecture::Qwen2 ? 32768 : 131072;
  c.max_position_embeddings = r.integer("max_position_embeddings", default_max_pos);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps >= 0)) r.bad("rms_norm_eps", "a non-negative number");
  c.rope = parse_rope(j, source, c.max_position_embeddings);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);

  const std::string act = r.has("hidden_act") ? j.at("hidden_act").get<std::string>() : "silu";
  if (act != "silu" && act != "swish")
    fail(source, ": hidden_act \"", act, "\" is not supported (these architectures use silu)");

  switch (c.architecture) {
    case Architecture::Llama:
      c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
      c.mlp_bias = r.boolean("mlp_bias", false);
      break;
    case Architecture::Mistral:
      break;
    case Architecture::Qwen2:
      c.qkv_bias = true;
      break;
  }

  // Sliding window, per layer, exactly as the HF config classes derive it: Mistral applies its
  // window (default 4096, null = none) to every layer; Qwen2 only with use_sliding_window, to the
  // layers marked "sliding_attention" in layer_types, or else to layers >= max_window_layers.
  c.sliding_window.assign(size_t(c.n_layers), 0);
  const bool window_null = j.contains("sliding_window") && j.at("sliding_window").is_null();
  if (c.architecture == Architecture::Mistral) {
    if (!window_null) c.sliding_window.assign(size_t(c.n_layers), r.integer("sliding_window", 4096));
  } else if (c.architecture == Architecture::Qwen2 && r.boolean("use_sliding_window", false) && !window_null) {
    const int64_t window = r.integer("sliding_window", 4096);
    if (r.has("layer_types")) {
      const auto& lt = j.at("layer_types");
      if (!lt.is_array() || int64_t(lt.size()) != c.n_layers) r.bad("layer_types", "a list of num_hidden_layers entries");
      for (int64_t i = 0; i < c.n_layers; i++) {
        const auto t = lt[size_t(i)].is_string() ? lt[size_t(i)].get<std::string>() : lt[size_t(i)].dump();
        if (t == "sliding_attention") c.sliding_window[size_t(i)] = window;
        else if (t != "full_attention")
          fail(source, ": layer_types[", i, "] = \"", t, "\" is not supported (full_attention or sliding_attention)");
      }
    } else {
      const int64_t first = r.has("max_window_layers") ? j.at("max_window_layers").get<int64_t>() : 28;
      for (int64_t i = std::max<int64_t>(first, 0); i < c.n_layers; i++) c.sliding_window[size_t(i)] = window;
    }
  }

  const char* dtype_key = r.has("dtype") ? "dtype" : r.has("torch_dtype") ? "torch_dtype" : nullptr;
  if (dtype_key) {
    const auto t = j.at(dtype_key).get<std::string>();
    if (t == "float32") c.dtype = DType::F32;
    else if (t == "bfloat16") c.dtype = DType::BF16;
    else if (t == "float16") c.dtype = DType::F16;
  }
  const auto bos = r.ids("bos_token_id");
  if (!bos.empty()) c.bos_token_id = bos[0];
  c.eos_token_ids = r.ids("eos_token_id");
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& model_dir) {
  if (is_gguf_file(model_dir)) return gguf_model_config(*GgufFile::open(model_dir));
  const auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path)) {
    fail(model_dir.string(), ": no config.json. Expected an HF model folder (config.json, *.safetensors, tokenizer files) "
         "or a GGUF file.");
  }
  return parse_model_config(read_json_file(path), path.string());
}

GenerationDefaults parse_generation_config(const json& j, const std::string& source) {
  if (!j.is_object()) fail(source, ": expected a JSON object, found ", j.type_name());
  Reader r{j, source};
  GenerationDefaults g;
  g.do_sample = r.boolean("do_sample", false);
  g.temperature = float(r.number("temperature", 1.0));
  g.top_p = float(r.number("top_p", 1.0));
  g.top_k = r.has("top_k") ? int(j.at("top_k").get<int64_t>()) : 50;
  g.min_p = float(r.number("min_p", 0.0));
  g.repetition_penalty = float(r.number("repetition_penalty", 1.0));
  if (r.has("max_new_tokens")) g.max_new_tokens = r.positive("max_new_tokens");
  if (r.has("max_length")) g.max_length = r.positive("max_length");
  const auto bos = r.ids("bos_token_id");
  if (!bos.empty()) g.bos_token_id = bos[0];
  g.eos_token_ids = r.ids("eos_token_id");
  if (g.temperature < 0 || g.top_p <= 0 || g.top_p > 1 || g.top_k < 0 || g.min_p < 0 || g.min_p > 1 ||
      g.repetition_penalty <= 0)
    fail(source, ": sampling settings out of range: ", j.dump());
  return g;
}

GenerationDefaults load_generation_config(const std::filesystem::path& model_dir) {
  if (is_gguf_file(model_dir)) return gguf_generation_defaults(*GgufFile::open(model_dir));
  const auto path = model_dir / "generation_config.json";
  if (!std::filesystem::exists(path)) return {};
  return parse_generation_config(read_json_file(path), path.string());
}

}  // namespace tiller
