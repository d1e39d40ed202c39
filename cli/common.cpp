// Shared plumbing of the model-running subcommands.
#include "cli/common.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>

#include "engine/error.h"
#include "kernels/backends.h"
#include "steering/model_fingerprint.h"

namespace tiller::cli {

std::vector<Flag> operator+(std::vector<Flag> a, const std::vector<Flag>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<Flag> model_flags() {
  return {
      {"--model", "-m", "PATH", "HF model folder (config.json, *.safetensors, tokenizer files) or a GGUF file", ""},
      {"--threads", "-t", "N", "CPU threads", "one per core"},
      {"--device", "", "cpu|cuda", "where to run the model", "cuda when built with CUDA and a GPU is visible, else cpu"},
      {"--dtype", "", "auto|f32|bf16|f16", "convert the weight matrices to this type at load (auto: as stored)", "auto"},
      {"--profile", "", "[NAME=]FILE", "steering profile (tiller steer, finetune, distill; or a PEFT LoRA folder): FILE is "
                                       "merged into the weights; serve and batch also take NAME=FILE, repeatable, applied "
                                       "per request", ""},
      {"--allow-fingerprint-mismatch", "", "", "apply a profile made for another model (warns instead of refusing)", ""},
      {"--quantized-prefill", "", "exact|int8", "prompts of 32+ tokens on GGUF-quantized weights (CPU): exact (F32 panels) "
                                                "or int8 (8-bit activations, as llama.cpp; about twice as fast)", "exact"},
  };
}

std::vector<Flag> prompt_flags() {
  return {
      {"--prompt", "-p", "TEXT", "prompt text (tokenized with the model's BOS policy; special-token text is the token)", ""},
      {"--tokens", "", "1,2,3", "prompt as token ids, used exactly as given", ""},
      {"--no-parse-special", "", "", "read special-token text in --prompt (\"<|im_start|>\") as plain text, not as the token", ""},
  };
}

std::vector<Flag> sampling_flags() {
  return {
      {"--max-tokens", "-n", "N", "tokens to generate at most", "generation_config.json's max_new_tokens, else 256"},
      {"--temperature", "", "T", "sampling temperature; 0 = greedy", "generation_config.json (greedy unless do_sample)"},
      {"--top-k", "", "K", "keep the K most likely tokens; 0 = off", "generation_config.json, else 50"},
      {"--top-p", "", "P", "nucleus sampling mass; 1 = off", "generation_config.json, else 1"},
      {"--min-p", "", "P", "drop tokens below P times the top probability; 0 = off", "generation_config.json, else 0"},
      {"--repetition-penalty", "", "R", "HF repetition penalty; 1 = off", "generation_config.json, else 1"},
      {"--frequency-penalty", "", "F", "subtract F x count of each generated token (OpenAI); 0 = off", "0"},
      {"--presence-penalty", "", "P", "subtract P once from each generated token (OpenAI); 0 = off", "0"},
      {"--seed", "-s", "S", "random seed; the same seed gives the same tokens", "random"},
      {"--ignore-eos", "", "", "keep generating past end-of-sequence tokens", ""},
  };
}

GenerateOptions generate_options(const Args& args, const GenerationDefaults& gen, const ModelConfig& config) {
  GenerateOptions opt;
  opt.max_new_tokens = args.integer("--max-tokens", gen.max_new_tokens.value_or(256));
  if (opt.max_new_tokens < 0) throw UsageError{"--max-tokens must be >= 0"};
  const bool sample = args.has("--temperature") ? args.number("--temperature", 0) > 0 : gen.do_sample;
  if (sample) {
    opt.sampling.temperature = float(args.number("--temperature", gen.temperature));
    opt.sampling.top_k = int(args.integer("--top-k", gen.top_k));
    opt.sampling.top_p = float(args.number("--top-p", gen.top_p));
    opt.sampling.min_p = float(args.number("--min-p", gen.min_p));
  }
  opt.sampling.repetition_penalty = float(args.number("--repetition-penalty", gen.repetition_penalty));
  opt.sampling.frequency_penalty = float(args.number("--frequency-penalty", 0));
  opt.sampling.presence_penalty = float(args.number("--presence-penalty", 0));
  const SamplingParams& sp = opt.sampling;
  if (sp.top_k < 0 || sp.top_p <= 0 || sp.top_p > 1 || sp.min_p < 0 || sp.min_p > 1 || sp.repetition_penalty <= 0 ||
      std::abs(sp.frequency_penalty) > 2 || std::abs(sp.presence_penalty) > 2)
    throw UsageError{"sampling options out of range (top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, repetition-penalty > 0, "
                     "-2 <= frequency-penalty, presence-penalty <= 2)"};
  opt.seed = args.has("--seed") ? uint64_t(args.integer("--seed", 0)) : std::random_device{}();
  if (!args.has("--ignore-eos")) opt.stop_ids = gen.eos_token_ids.empty() ? config.eos_token_ids : gen.eos_token_ids;
  return opt;
}

std::unique_ptr<Backend> make_backend(const Args& args) {
  const std::string device = args.has("--device") ? args.str("--device") : default_device();
  const int64_t threads = args.integer("--threads", 0);
  if (threads < 0 || threads > 1024) throw UsageError{"--threads expects 0..1024, found " + std::to_string(threads)};
  if (device != "cpu" && device != "cuda") throw UsageError{"--device expects cpu or cuda, found '" + device + "'"};
  if (args.has("--quantized-prefill")) {
    const std::string mode = args.str("--quantized-prefill");
    if (mode != "exact" && mode != "int8") throw UsageError{"--quantized-prefill expects exact or int8, found '" + mode + "'"};
    setenv("TILLER_QUANTIZED_PREFILL", mode.c_str(), 1);  // read once, by the CPU kernels' first call
  }
  return tiller::make_backend(device, int(threads));
}

namespace {

// "NAME=FILE" when the part before '=' is a name; otherwise the whole value is a path.
std::pair<std::string, std::string> profile_spec(const std::string& value) {
  const size_t eq = value.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == value.size()) return {"", value};
  const std::string name = value.substr(0, eq);
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return {"", value};
  }
  return {name, value.substr(eq + 1)};
}

void warn(const std::string& message) { std::fprintf(stderr, "tiller: warning: %s\n", message.c_str()); }

std::string profile_summary(const Profile& p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f MiB", double(p.nbytes()) / (1024.0 * 1024.0));
  std::string langs;
  for (const auto& l : p.manifest.languages) langs += (langs.empty() ? ", " : "/") + l;
  return p.manifest.method + langs + (p.manifest.heads.empty() ? "" : ", " + std::to_string(p.manifest.heads.size()) + " heads") +
         ", " + std::to_string(p.deltas.size()) + " deltas, " + buf;
}

void apply_profiles(const Args& args, Session& s, ProfileUse use) {
  const std::vector<std::string> values = args.values("--profile");
  if (values.empty()) return;
  std::vector<std::pair<std::string, std::string>> specs;
  bool named = false, unnamed = false;
  for (const std::string& v : values) {
    specs.push_back(profile_spec(v));
    (specs.back().first.empty() ? unnamed : named) = true;
  }
  if (named && use == ProfileUse::Merged)
    throw UsageError{"this command applies one profile, merged into the weights: give --profile FILE (NAME=FILE "
                     "profiles, applied per request, are for serve and batch)"};
  if (unnamed && (named || specs.size() > 1))
    throw UsageError{"give either one --profile FILE (merged into the weights) or named --profile NAME=FILE profiles "
                     "(applied per request), not both"};
  const bool allow = args.has("--allow-fingerprint-mismatch");
  const std::string fingerprint = model_fingerprint(*s.model);
  if (unnamed) {
    const Profile p = read_profile(specs[0].second);
    check_profile_fits(p, s.model->config(), fingerprint, allow, warn);
    merge_profile(*s.model, p);
    s.merged_profile = specs[0].second;
    std::fprintf(stderr, "tiller: profile %s (%s) merged into the weights\n", specs[0].second.c_str(), profile_summary(p).c_str());
    return;
  }
  s.profiles = std::make_unique<ProfileSet>(*s.backend, s.model->config());
  for (const auto& [name, path] : specs) {
    if (name == "base") throw UsageError{"'base' names the model without a profile; choose another profile name"};
    auto p = std::make_shared<Profile>(read_profile(path));
    check_profile_fits(*p, s.model->config(), fingerprint, allow, warn);
    std::fprintf(stderr, "tiller: profile '%s' from %s (%s), applied per request\n", name.c_str(), path.c_str(),
                 profile_summary(*p).c_str());
    s.profiles->add(name, std::move(p));
  }
}

}  // namespace

Session open_session(const Args& args, bool need_tokenizer, ProfileUse use) {
  Session s;
  s.model_dir = args.required("--model");
  s.backend = make_backend(args);
  LoadOptions load;
  const std::string dtype = args.has("--dtype") ? args.str("--dtype") : "auto";
  if (dtype == "f32") load.weight_dtype = DType::F32;
  else if (dtype == "bf16") load.weight_dtype = DType::BF16;
  else if (dtype == "f16") load.weight_dtype = DType::F16;
  else if (dtype != "auto") throw UsageError{"--dtype expects auto, f32, bf16 or f16, found '" + dtype + "'"};
  s.model = Model::load(s.model_dir, *s.backend, load);
  apply_profiles(args, s, use);
  if (need_tokenizer || has_tokenizer(s.model_dir)) s.tokenizer = load_tokenizer(s.model_dir);
  return s;
}

std::vector<int32_t> prompt_tokens(const Args& args, const Session& session) {
  if (args.has("--prompt") == args.has("--tokens")) throw UsageError{"give exactly one of --prompt TEXT or --tokens 1,2,3"};
  std::vector<int32_t> ids;
  if (args.has("--tokens")) {
    ids = args.int_list("--tokens");
  } else {
    if (!session.tokenizer)
      fail(session.model_dir, ": no tokenizer files (tokenizer.json or tokenizer.model), so --prompt cannot be "
           "tokenized; pass token ids with --tokens");
    // Special-token text becomes the token, as HF's tokenizer and `tiller batch` read a prompt, so a
    // rendered chat prompt passed as --prompt is the same ids as the chat template gives.
    ids = session.tokenizer->encode(args.str("--prompt"), {.add_special = true, .parse_special = !args.has("--no-parse-special")});
  }
  const int64_t V = session.model->config().vocab_size;
  for (int32_t id : ids) {
    if (id >= V) fail("token id ", id, " is outside the model's vocabulary [0, ", V, ")");
  }
  if (ids.empty()) fail("the prompt is empty after tokenization; give some text or --tokens");
  return ids;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

std::map<std::string, std::string> soteria_instructions(const Args& args) {
  std::map<std::string, std::string> instructions;
  for (const auto& v : args.values("--soteria-instruction")) {
    const size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError{"--soteria-instruction expects LANG=TEXT, found '" + v + "'"};
    instructions[v.substr(0, eq)] = v.substr(eq + 1);
  }
  return instructions;
}

std::vector<int> parse_layers(const std::string& spec, int64_t L) {
  std::vector<int> out;
  if (spec == "all") {
    for (int l = 0; l < L; l++) out.push_back(l);
    return out;
  }
  std::stringstream ss(spec);
  std::string item;
  auto number = [&](const std::string& s) {
    if (s == "last") return int(L - 1);
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || v < 0)
      throw UsageError{"--layers expects layers like 3, 0-3, 0,2,5 or last; found '" + spec + "'"};
    if (v >= L) fail("--layers: layer ", v, " does not exist; the model has ", L, " layers (0-", L - 1, ")");
    return v;
  };
  while (std::getline(ss, item, ',')) {
    const size_t dash = item.find('-');
    const int a = number(item.substr(0, dash));
    const int b = dash == std::string::npos ? a : number(item.substr(dash + 1));
    if (b < a) throw UsageError{"--layers: range '" + item + "' runs backwards"};
    for (int l = a; l <= b; l++) out.push_back(l);
  }
  if (out.empty()) throw UsageError{"--layers is empty"};
  return out;
}

}  // namespace tiller::cli
