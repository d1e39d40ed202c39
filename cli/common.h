// What the model-running subcommands share: flags, backend choice, loading, prompt tokens.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "engine/backend.h"
#include "engine/tokenizer/tokenizer.h"
#include "models/generate.h"
#include "models/model.h"
#include "steering/profile_delta.h"

namespace tiller::cli {

// --model, --threads, --device, --dtype, --profile, --allow-fingerprint-mismatch, --quantized-prefill
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
  std::string merged_profile;            // --profile FILE: merged into the weights at load
  std::unique_ptr<ProfileSet> profiles;  // --profile NAME=FILE ...: applied per row (serve, batch)
};

// How a command may apply --profile: merged only (one profile), or also named per-row profiles.
enum class ProfileUse { Merged, PerRow };

std::unique_ptr<Backend> make_backend(const Args& args);
// Loads the model and, when present, its tokenizer; `need_tokenizer` makes a missing one an error.
// Applies --profile: one unnamed profile is merged into the weights; NAME=FILE profiles (ProfileUse::
// PerRow only) are checked and placed in session.profiles. Each is checked against the model first.
Session open_session(const Args& args, bool need_tokenizer, ProfileUse use = ProfileUse::Merged);
// The prompt from --tokens (used as given) or --prompt (tokenized with BOS as the model adds it).
std::vector<int32_t> prompt_tokens(const Args& args, const Session& session);

// A --layers spec: "all", "last", "3", "0-3", "0,2,5-7", "8-last" -> layer indices in the order
// given, each checked against [0, n_layers) (an Error naming the model's range when outside).
std::vector<int> parse_layers(const std::string& spec, int64_t n_layers);

// A comma-separated list ("en, bn,sw"): items trimmed of spaces, empty ones dropped.
std::vector<std::string> split_list(const std::string& s);

// --soteria-instruction LANG=TEXT (repeatable) as LANG -> TEXT, for eval::PromptBuilder.
std::map<std::string, std::string> soteria_instructions(const Args& args);

// Decoding settings from the sampling flags, defaulting to generation_config.json as HF does
// (greedy unless it sets do_sample; --temperature > 0 turns sampling on).
GenerateOptions generate_options(const Args& args, const GenerationDefaults& gen, const ModelConfig& config);

// Concatenates flag lists.
std::vector<Flag> operator+(std::vector<Flag> a, const std::vector<Flag>& b);

}  // namespace tiller::cli
