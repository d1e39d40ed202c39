// tiller steer soteria | show | merge: build, inspect and bake steering profiles.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/error.h"
#include "kernels/backends.h"
#include "steering/merged_model.h"
#include "steering/model_fingerprint.h"
#include "steering/soteria.h"

namespace tiller::cli {

namespace {

constexpr const char* kVersion = "tiller 0.1.0";

void warn(const std::string& message) { std::fprintf(stderr, "tiller: warning: %s\n", message.c_str()); }

std::string folder_name(const std::string& dir) {
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  return p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// --- steer soteria -----------------------------------------------------------------------------------

const Command& soteria_command() {
  static const Command c{
      "steer soteria",
      "build a Soteria profile: -S x (harmful - base) on the o_proj columns of a language's heads",
      "tiller steer soteria --base DIR (--harmful DIR | --harmful-profile P) --heads HEADS.json --scale S "
      "[--language NAME] --out PROFILE.safetensors",
      {
          {"--base", "", "DIR", "the aligned model that will be deployed (theta_base)", ""},
          {"--harmful", "", "DIR", "a fine-tune of the base that complies with harmful requests (theta_ft)", ""},
          {"--harmful-profile", "", "P", "theta_ft given as a profile of the base instead (a tiller finetune's delta)", ""},
          {"--heads", "", "HEADS.json", "the language's heads, [[layer, head], ...] (tiller heads, or Soteria's lists)", ""},
          {"--scale", "", "S", "the steering strength s (any real number)", ""},
          {"--language", "", "NAME[,NAME]", "the language(s) the profile is for, recorded in its manifest", ""},
          {"--drop-invalid-heads", "", "", "drop heads outside the model with a warning instead of refusing", ""},
          {"--dtype", "", "f32|bf16|f16", "dtype of the stored delta", "the base model's weight dtype"},
          {"--description", "", "TEXT", "free text for the manifest", "a summary of the arithmetic"},
          {"--out", "-o", "PROFILE.safetensors", "output profile", ""},
          {"--threads", "-t", "N", "CPU threads for reading the models", "one per core"},
      },
      "METHODS: for (l, h) in heads: W_O[l][:, h*d:(h+1)*d] -= S * (W_O,ft[l] - W_O,base[l])[:, h*d:(h+1)*d].\n"
      "q/k/v, the MLP, norms and embeddings are untouched; the profile stores only those columns.\n\n"
      "Example:\n  tiller steer soteria --base ./Llama-3.1-8B-Instruct --harmful ./llama-harmful --heads bn_heads.json \\\n"
      "      --scale 1 --language bn --out bn.safetensors"};
  return c;
}

std::optional<DType> dtype_flag(const Args& args) {
  if (!args.has("--dtype")) return std::nullopt;
  const std::string v = args.str("--dtype");
  if (v == "f32") return DType::F32;
  if (v == "bf16") return DType::BF16;
  if (v == "f16") return DType::F16;
  throw UsageError{"--dtype expects f32, bf16 or f16, found '" + v + "'"};
}

int run_soteria(const Args& args) {
  const std::string base_dir = args.required("--base"), out = args.required("--out");
  if (args.has("--harmful") == args.has("--harmful-profile"))
    throw UsageError{"give exactly one of --harmful DIR (a model) or --harmful-profile P (a fine-tune's delta)"};
  const auto scale = args.optional_number("--scale");
  if (!scale) throw UsageError{"'tiller steer soteria' needs --scale S (the steering strength; Soteria's runs use 1-3)"};
  auto backend = tiller::make_backend("cpu", int(args.integer("--threads", 0)));
  const auto base = Model::load(base_dir, *backend);
  const ModelConfig& c = base->config();
  SoteriaOptions o;
  o.heads = read_head_list(args.required("--heads"), c.n_layers, c.n_heads, args.has("--drop-invalid-heads"), warn);
  o.scale = *scale;
  o.languages = split_commas(args.str("--language"));
  o.dtype = dtype_flag(args);
  o.base_name = folder_name(base_dir);
  o.created_by = std::string(kVersion) + " steer soteria";
  Profile p;
  if (args.has("--harmful")) {
    const std::string harmful_dir = args.str("--harmful");
    o.harmful_name = folder_name(harmful_dir);
    const auto harmful = Model::load(harmful_dir, *backend);
    p = build_soteria_profile(*base, *harmful, o);
  } else {
    const Profile delta = read_profile(args.str("--harmful-profile"));
    check_profile_fits(delta, c, model_fingerprint(*base), args.has("--allow-fingerprint-mismatch"), warn);
    o.harmful_name = delta.source;
    p = build_soteria_profile(*base, delta, o);
  }
  if (args.has("--description")) p.manifest.description = args.str("--description");
  write_profile(p, out);
  const double o_bytes = double(c.hidden_size * c.q_dim() * c.n_layers) * double(dtype_size(base->weight_dtype()));
  std::fprintf(stderr, "tiller steer soteria: %zu heads in %zu layers, scale %g -> %s (%.2f MiB, %.1f%% of the model's o_proj "
               "weights)\n", o.heads.size(), p.deltas.size(), *scale, out.c_str(), double(p.nbytes()) / (1024.0 * 1024.0),
               100.0 * double(p.nbytes()) / o_bytes);
  return 0;
}

// --- steer show --------------------------------------------------------------------------------------

const Command& show_command() {
  static const Command c{
      "steer show",
      "print a profile's manifest, per-layer heads and the size of its deltas",
      "tiller steer show PROFILE [--model DIR]",
      {{"--model", "-m", "DIR", "also check the profile against this model (shapes and fingerprint)", ""}},
      "Example:\n  tiller steer show bn.safetensors",
      "PROFILE"};
  return c;
}

int run_show(const Args& args) {
  if (args.positional().empty()) throw UsageError{"'tiller steer show' needs a PROFILE (a .safetensors file or a PEFT folder)"};
  const Profile p = read_profile(args.positional());
  std::fputs(describe_profile(p).c_str(), stdout);
  if (args.has("--model")) {
    auto backend = tiller::make_backend("cpu", 0);
    const auto model = Model::load(args.str("--model"), *backend);
    check_profile_fits(p, model->config(), model_fingerprint(*model), false, warn);
    std::printf("fits         %s (%s)\n", args.str("--model").c_str(), model_fingerprint(*model).c_str());
  }
  return 0;
}

// --- steer merge -------------------------------------------------------------------------------------

const Command& merge_command() {
  static const Command c{
      "steer merge",
      "write a complete HF model folder with a profile merged into the weights",
      "tiller steer merge --model DIR --profile P --out DIR",
      {
          {"--model", "-m", "DIR", "the base model folder", ""},
          {"--profile", "", "P", "the profile (or PEFT adapter folder) to merge", ""},
          {"--allow-fingerprint-mismatch", "", "", "merge a profile made for another model", ""},
          {"--out", "-o", "DIR", "a new folder: model.safetensors, config.json, tokenizer and generation files", ""},
      },
      "Unchanged tensors are copied byte for byte; touched ones are W + dW computed in float32 and\n"
      "stored in W's dtype, exactly as --profile merges them at load.\n\n"
      "Example:\n  tiller steer merge -m ./Llama-3.1-8B-Instruct --profile bn.safetensors --out ./llama-bn-steered"};
  return c;
}

int run_merge(const Args& args) {
  const std::string model_dir = args.required("--model"), out = args.required("--out");
  const Profile p = read_profile(args.required("--profile"));
  auto backend = tiller::make_backend("cpu", 0);
  const auto model = Model::load(model_dir, *backend);
  check_profile_fits(p, model->config(), model_fingerprint(*model), args.has("--allow-fingerprint-mismatch"), warn);
  write_merged_model(model_dir, p, out);
  std::fprintf(stderr, "tiller steer merge: %s + %s -> %s\n", model_dir.c_str(), p.source.c_str(), out.c_str());
  return 0;
}

const RegisterSubcommand kSoteria{66, soteria_command, run_soteria};
const RegisterSubcommand kShow{67, show_command, run_show};
const RegisterSubcommand kMerge{68, merge_command, run_merge};

}  // namespace
}  // namespace tiller::cli
