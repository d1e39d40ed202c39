// config.json (Llama, Mistral, Qwen2 and their rope/window/bias variants) and
// generation_config.json, then the weight table the loader derives from the config.
#include "engine/error.h"
#include "engine/json_file.h"
#include "fuzz/fuzz_target.h"
#include "models/model_config.h"
#include "models/weight_specs.h"

using namespace tiller;

TILLER_FUZZ_TARGET(model_config, "config.json + generation_config.json, and the weight table of the config") {
  const auto parts = fuzz::split_parts(data, 2);
  fuzz::accepted([&] {
    const json j = parse_json_text(parts[0], "config.json");
    const ModelConfig c = parse_model_config(j, "config.json");
    fuzz::fuzz_check(c.vocab_size > 0 && c.hidden_size > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                         c.head_dim > 0 && c.intermediate_size > 0,
                     "an accepted config has positive sizes");
    fuzz::fuzz_check(c.n_heads % c.n_kv_heads == 0, "an accepted config has H divisible by Hkv");
    fuzz::fuzz_check(int64_t(c.sliding_window.size()) == c.n_layers, "one window per layer");
    (void)c.n_parameters();
    for (const WeightSpec& s : weight_specs(c)) fuzz::fuzz_check(!s.name.empty(), "weight names are not empty");
  });
  fuzz::accepted([&] { (void)parse_generation_config(parse_json_text(parts[1], "generation_config.json"), "generation_config.json"); });
}
