// Models the evaluation tests share: a random-weight Llama with the Llama 3 tokenizer (a guard's
// shape and vocabulary, for the mechanics of the guard judge), made once per test process.
#pragma once

#include <filesystem>
#include <fstream>

#include "cli_run.h"
#include "test_util.h"

namespace tiller::test {

inline std::filesystem::path llama3_tokenizer_dir() { return shared_dir() / "data" / "tokenizers" / "llama3"; }
inline std::filesystem::path stories_dir() { return shared_dir() / "models" / "stories260K"; }

// A 2-layer Llama with Llama 3's 128256-token vocabulary and tokenizer files; empty path when the
// tokenizer files are absent. Weights have std 0.5 so that next-token distributions are far from uniform.
inline std::filesystem::path random_guard_dir() {
  static const std::filesystem::path dir = [] {
    if (!std::filesystem::exists(llama3_tokenizer_dir() / "tokenizer.json")) return std::filesystem::path();
    const auto d = scratch_path("random-guard");
    std::filesystem::create_directories(d);
    std::ofstream(d / "guard_config.json") << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 128256, "max_position_embeddings": 4096,
      "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true, "hidden_act": "silu",
      "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "torch_dtype": "float32"})";
    const auto r = run_tiller_cli("random-init --config " + (d / "guard_config.json").string() + " --out " + d.string() +
                                  " --dtype f32 --std 0.5 --seed 7 --tokenizer " + llama3_tokenizer_dir().string());
    REQUIRE_MESSAGE(r.status == 0, r.out);
    return d;
  }();
  return dir;
}

}  // namespace tiller::test
