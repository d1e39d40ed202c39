// What the model-running subcommands share: flags, backend choice, loading, prompt tokens.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "engine/backend.h"
#include "engine/tokenizer/tokenizer.h"
#include "models/generate.h"
#include "models/model.h"

namespace tiller::cli {

// --model, --threads, --device
std::vector<Flag> model_flags();
// --prompt, --tokens
std::vector<Flag> prompt_flags();
// -n, --temperature, --top-k, --top-p, --min-p, --repetition-penalty, --frequency-penalty,
// --presence-penalty, --seed, --ignore-eos
std::vector<Flag> sampling_flags();

struct Session {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the folder has none (random-init models)
  std::string model_dir;
};

std::unique_ptr<Backend> make_backend(const Args& args);
// Loads the model and, when present, its tokenizer; `need_tokenizer` makes a missing one an error.
Session open_session(const Args& args, bool need_tokenizer);
// The prompt from --tokens (used as given) or --prompt (tokenized with BOS as the model adds it).
std::vector<int32_t> prompt_tokens(const Args& args, const Session& session);

// Decoding settings from the sampling flags, defaulting to generation_config.json as HF does
// (greedy unless it sets do_sample; --temperature > 0 turns sampling on).
GenerateOptions generate_options(const Args& args, const GenerationDefaults& gen, const ModelConfig& config);

// Concatenates flag lists.
std::vector<Flag> operator+(std::vector<Flag> a, const std::vector<Flag>& b);

}  // namespace tiller::cli
