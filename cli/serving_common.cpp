// Scheduler flags and defaults shared by tiller serve and tiller batch.
#include "cli/serving_common.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace tiller::cli {

std::vector<Flag> scheduler_flags() {
  return {
      {"--max-batch", "", "N", "sequences decoded together (each of n choices counts)", "32"},
      {"--ctx", "", "N", "tokens per sequence, prompt included", "4096, or the model's context if smaller"},
      {"--kv-memory", "", "MIB", "KV cache memory budget in MiB",
       "room for max-batch x ctx tokens, at most a quarter of RAM (CPU)"},
      {"--batch-tokens", "", "N", "rows per forward pass: decode rows first, prefill chunks fill the rest", "512"},
      {"--no-prefix-cache", "", "", "do not reuse KV blocks of identical prompt prefixes across requests", ""},
      {"--chat-template", "", "NAME", "auto, model, llama2, llama3, chatml or a named template of the model", "auto"},
      {"--served-model-name", "", "NAME", "the model id clients use", "the model folder's name"},
  };
}

serving::SchedulerOptions scheduler_options(const Args& args, const Model& model, int64_t max_queue) {
  serving::SchedulerOptions o;
  const int64_t model_ctx = model.config().max_position_embeddings;
  o.ctx = args.integer("--ctx", std::min<int64_t>(4096, model_ctx));
  if (o.ctx < 2 || o.ctx > model_ctx)
    throw UsageError{"--ctx expects 2.." + std::to_string(model_ctx) + " (the model's context), found " + std::to_string(o.ctx)};
  o.max_batch = args.integer("--max-batch", 32);
  if (o.max_batch < 1 || o.max_batch > 4096) throw UsageError{"--max-batch expects 1..4096, found " + std::to_string(o.max_batch)};
  o.max_batch_tokens = args.integer("--batch-tokens", 512);
  if (o.max_batch_tokens < 1) throw UsageError{"--batch-tokens must be positive"};
  o.max_queue = max_queue;
  o.prefix_cache = !args.has("--no-prefix-cache");

  const size_t per_block = model.kv_cache_options(o.block_size, 1, o.block_size).bytes_per_block();
  const int64_t blocks_per_seq = (o.ctx + o.block_size - 1) / o.block_size;
  int64_t blocks = o.max_batch * blocks_per_seq;
  if (args.has("--kv-memory")) {
    const double mib = args.number("--kv-memory", 0);
    if (mib <= 0) throw UsageError{"--kv-memory must be positive (MiB)"};
    blocks = int64_t(mib * 1024 * 1024 / double(per_block));
  } else if (model.backend().device() == Device::Cpu) {
    const double ram = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
    blocks = std::min(blocks, std::max<int64_t>(blocks_per_seq, int64_t(ram / 4 / double(per_block))));
  }
  if (blocks < blocks_per_seq) {
    fail("--kv-memory ", args.str("--kv-memory"), " MiB holds ", blocks, " blocks of ", o.block_size, " tokens, less than one ",
         o.ctx, "-token sequence needs (", blocks_per_seq, " blocks = ",
         double(blocks_per_seq) * double(per_block) / (1024 * 1024), " MiB); raise it or lower --ctx");
  }
  o.kv_blocks = blocks;
  return o;
}

std::vector<Flag> routing_flags() {
  return {
      {"--route-by-language", "", "", "apply the profile of the detected language of each request's user text (Unicode "
                                      "script, then CLD2 among the routed languages); others get the default profile", ""},
      {"--route", "", "LANG=NAME", "route language LANG (ISO 639-1) to profile NAME ('base': none); repeatable",
       "each profile's manifest languages"},
  };
}

serving::ServedModel served_model(const Args& args, const Session& s, int64_t ctx) {
  std::string name = args.str("--served-model-name");
  if (name.empty()) name = std::filesystem::path(s.model_dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(s.model_dir).lexically_normal().parent_path().filename().string();
  serving::ServedModel m = serving::describe_model(*s.model, s.tokenizer.get(), s.model_dir, name, ctx, args.str("--chat-template"));
  const int32_t n = s.profiles ? s.profiles->size() : 0;
  for (int32_t a = 1; a <= n; a++) {
    const Profile& p = s.profiles->profile(a);
    m.profiles.push_back({s.profiles->name(a), p.manifest.method, p.source, p.manifest.languages});
    if (m.profiles.back().name == name) throw UsageError{"profile '" + name + "' has the served model's own name; rename it"};
  }
  if (auto d = m.find_profile("default")) m.default_adapter = *d;
  const std::vector<std::string> routes = args.values("--route");
  if (!args.has("--route-by-language")) {
    if (!routes.empty()) throw UsageError{"--route needs --route-by-language"};
    return m;
  }
  if (n == 0) throw UsageError{"--route-by-language needs profiles to route to: --profile NAME=FILE (repeatable)"};
  for (int32_t a = 1; a <= n; a++) {  // each profile serves the languages its manifest names
    for (const std::string& lang : s.profiles->profile(a).manifest.languages) m.routes.emplace(lang, a);
  }
  for (const std::string& r : routes) {
    const size_t eq = r.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == r.size()) throw UsageError{"--route expects LANG=NAME, found '" + r + "'"};
    const std::string lang = r.substr(0, eq), profile = r.substr(eq + 1);
    const std::optional<int32_t> a = profile == "base" ? std::optional<int32_t>(0) : m.find_profile(profile);
    if (!a) throw UsageError{"--route " + r + ": no profile named '" + profile + "' (load it with --profile " + profile + "=FILE)"};
    m.routes[lang] = *a;
  }
  if (m.routes.empty())
    throw UsageError{"--route-by-language: no language to route (the profiles' manifests name none); add --route LANG=NAME"};
  std::vector<std::string> langs;
  for (const auto& [lang, a] : m.routes) langs.push_back(lang);
  m.router = std::make_shared<serving::LanguageDetector>(langs);
  return m;
}

std::unique_ptr<serving::Scheduler> make_scheduler(const Args& args, Session& s, int64_t max_queue) {
  return std::make_unique<serving::Scheduler>(*s.model, scheduler_options(args, *s.model, max_queue), s.profiles.get(),
                                              s.profiles ? s.profiles->size() : 0);
}

std::string routing_summary(const serving::ServedModel& m) {
  std::string out;
  if (m.profiles.empty()) return out;
  out += "  profiles      base";
  for (const auto& p : m.profiles) out += ", " + p.name;
  out += " (per request; default: " + m.profile_name(m.default_adapter) + ")\n";
  if (m.router) {
    out += "  routing       ";
    for (const auto& [lang, a] : m.routes) out += lang + "->" + m.profile_name(a) + " ";
    out += serving::LanguageDetector::cld2_available() ? "(script, then CLD2)\n" : "(script only: built without libcld2)\n";
  }
  return out;
}

std::string settings_summary(const serving::Scheduler& sched, const Session& s) {
  const serving::SchedulerOptions& o = sched.options();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "  backend       %s\n"
                "  ctx           %lld tokens per sequence\n"
                "  max-batch     %lld sequences, %lld rows per forward (--batch-tokens)\n"
                "  KV cache      %lld blocks of %lld tokens = %.1f MiB (%.1f full-context sequences)\n"
                "  prefix cache  %s\n",
                s.backend->name().c_str(), (long long)o.ctx, (long long)o.max_batch, (long long)o.max_batch_tokens,
                (long long)o.kv_blocks, (long long)o.block_size, sched.kv_bytes() / (1024.0 * 1024.0),
                double(o.kv_blocks * o.block_size) / double(o.ctx), o.prefix_cache ? "on" : "off");
  return buf;
}

}  // namespace tiller::cli
