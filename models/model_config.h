// A model's shape and settings, read straight from HF config.json / generation_config.json.
//
// One struct covers Llama, Mistral and Qwen2: they are the same pre-norm decoder with different
// flags. Defaults follow each HF config class, so a config.json that omits a key means what it
// means to transformers (e.g. Mistral without "sliding_window" gets HF's 4096).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/json_file.h"

namespace tiller {

enum class Architecture { Llama, Mistral, Qwen2 };

struct RopeConfig {
  enum class Type { Default, Linear, Llama3 };
  Type type = Type::Default;
  double theta = 10000.0;
  double factor = 1.0;                  // linear, llama3
  double low_freq_factor = 1.0;         // llama3
  double high_freq_factor = 4.0;        // llama3
  int64_t original_max_position = 0;    // llama3
  // Per-frequency divisors [d/2] applied after the above (llama.cpp's rope_freqs tensor, which is
  // how GGUF files carry llama3 scaling); empty: none.
  std::vector<float> freq_factors;
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  std::string architecture_name;  // "LlamaForCausalLM", ...

  int64_t vocab_size = 0;         // V
  int64_t hidden_size = 0;        // D
  int64_t intermediate_size = 0;  // F
  int64_t n_layers = 0;           // L
  int64_t n_heads = 0;            // H  (query heads)
  int64_t n_kv_heads = 0;         // Hkv (H % Hkv == 0)
  int64_t head_dim = 0;           // d  (config head_dim, else D / H)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;

  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  bool mlp_bias = false;  // Llama with mlp_bias
  // Per layer: attend to at most this many most recent keys (itself included); 0 = unlimited.
  std::vector<int64_t> sliding_window;

  std::optional<DType> dtype;  // torch_dtype / dtype as saved (informational)
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;

  int64_t q_dim() const { return n_heads * head_dim; }      // H·d
  int64_t kv_dim() const { return n_kv_heads * head_dim; }  // Hkv·d
  // Weight count of the decoder (for roofline figures); lm_head counted once even when tied.
  int64_t n_parameters() const;
};

// Parses a config.json document; `source` names it in errors.
ModelConfig parse_model_config(const json& j, const std::string& source);
// Reads <dir>/config.json, or the metadata of a GGUF file. Throws Error naming the file and key on
// anything unsupported.
ModelConfig load_model_config(const std::filesystem::path& model_dir);

// Default decoding settings from generation_config.json, with HF GenerationConfig's defaults for
// absent keys.
struct GenerationDefaults {
  bool do_sample = false;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 50;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_length;
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // empty: use config.json's
};

GenerationDefaults parse_generation_config(const json& j, const std::string& source);
// Reads <dir>/generation_config.json (a GGUF file: its general.sampling.* keys); absent -> defaults.
GenerationDefaults load_generation_config(const std::filesystem::path& model_dir);

}  // namespace tiller
