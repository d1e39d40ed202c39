// tiller probe: how far harmful and harmless prompts separate in the hidden states, per language,
// layer and system (the model, its steering profiles, a reference model); METHODS §6.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/error.h"
#include "engine/progress.h"
#include "eval/dataset.h"
#include "eval/probe.h"
#include "eval/probe_output.h"
#include "eval/probe_report.h"
#include "eval/prompt_format.h"
#include "eval/sha256.h"
#include "serving/served_model.h"
#include "steering/model_fingerprint.h"

namespace tiller::cli {

namespace {

namespace fs = std::filesystem;
using namespace tiller::eval;

// The model flags as probe reads them: named profiles are systems probed beside the model.
std::vector<Flag> probe_model_flags() {
  std::vector<Flag> flags = model_flags();
  for (Flag& f : flags) {
    if (f.name == "--profile")
      f.help = "NAME=FILE: a steering profile probed beside the model (rows of the same forwards), repeatable; "
               "FILE alone: merged into the weights, the system named after the file";
  }
  return flags;
}

const Command& probe_command() {
  static const Command c{
      "probe",
      "measure how far each language's harmful and harmless prompts separate in the hidden states (METHODS §6)",
      "tiller probe --model DIR [--profile NAME=FILE ...] [--reference DIR] --data KIND:PATH [options] --out DIR",
      probe_model_flags() +
          std::vector<Flag>{
              {"--reference", "", "DIR", "reference model (e.g. before alignment); adds Δ = metric − reference metric", ""},
              {"--data", "", "KIND:PATH",
               "labelled prompts: polyrefuse:DIR (harmful vs harmless test splits) or jsonl:FILE ({\"text\" or "
               "\"prompt\" or \"messages\", \"label\": 1 or \"harmful\" / 0 or \"benign\", \"language\"}); also any other tiller "
               "eval set with both classes",
               ""},
              {"--prompt-format", "", "FORMAT",
               "raw (the text, BOS as the tokenizer adds it: METHODS §6), chat (the model's template, one user turn) or "
               "soteria (Soteria's per-language instruction glued to the text)",
               "raw"},
              {"--system", "", "TEXT", "a system message (chat format)", "none"},
              {"--soteria-instruction", "", "LANG=TEXT", "add or replace Soteria's instruction for a language; repeatable", ""},
              {"--chat-template", "", "NAME|FILE", "the chat template for --prompt-format chat", "the model's"},
              {"--languages", "-l", "LIST", "languages to probe, comma-separated (each must have both classes)",
               "every language with both classes"},
              {"--layers", "", "SPEC", "layers: all, last, 3, 0-5, 0,4,8-last (layer l: the residual stream after block l)", "all"},
              {"--pool", "", "mean|last", "a prompt's state: mean over its tokens (BOS included) or its last token", "mean"},
              {"--norm", "", "pre|post", "the last layer before or after the final norm (post: HF's hidden_states[-1])", "post"},
              {"--pca", "", "K", "principal components the metrics use", "10"},
              {"--limit", "", "N", "at most N items per language and class", "all"},
              {"--skip-long", "", "", "leave out prompts longer than the model's context (counted per language) instead of stopping", ""},
              {"--scatter-layers", "", "SPEC", "layers whose 2-D PCA scatters the report shows", "the middle and the last probed"},
              {"--silhouette-sample", "", "N", "items per class the silhouette uses (a seeded subsample above it)", "500"},
              {"--seed", "-s", "S", "seed of the silhouette's subsample", "0"},
              {"--ridge", "", "R", "ridge for a singular class covariance: λ = R · tr(Σ̄)/K added to both classes", "1e-3"},
              {"--batch-tokens", "", "N", "prompt tokens per forward (all systems' copies counted)", "512"},
              {"--quiet", "-q", "", "no progress bar", ""},
              {"--out", "-o", "DIR", "writes metrics.json, metrics.csv, report.html (and probe-journal.jsonl, to resume)", ""},
          },
      "Writes one row per system × language × layer: n per class, between_class_ratio, bhattacharyya, silhouette\n"
      "(and delta_* with --reference). An interrupted run resumes from its journal when rerun with the same --out.\n\n"
      "Example:\n  tiller probe -m ./aligned --reference ./base --profile bn=soteria-bn.safetensors \\\n"
      "    --data polyrefuse:../shared/data/safety/polyrefuse --languages en,th,yo --limit 200 --out probe/"};
  return c;
}

std::vector<int> sorted_unique(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// A profile's contents: its file's SHA-256, or for a folder (a PEFT adapter) each file's.
ojson content_sha256(const fs::path& path) {
  if (!fs::is_directory(path)) return sha256_file(path);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  ojson out = ojson::object();
  for (const fs::path& f : files) out[f.filename().string()] = sha256_file(f);
  return out;
}

// The languages to probe: as asked (each checked later), or every language with both classes.
std::vector<std::string> probe_languages(const Dataset& d, bool asked) {
  if (asked) return d.languages;
  std::vector<std::string> out, skipped;
  for (const std::string& l : d.languages) {
    const bool h = std::any_of(d.items.begin(), d.items.end(), [&](const EvalItem& i) { return i.language == l && i.harmful; });
    const bool g = std::any_of(d.items.begin(), d.items.end(), [&](const EvalItem& i) { return i.language == l && !i.harmful; });
    (h && g ? out : skipped).push_back(l);
  }
  if (!skipped.empty()) {
    std::string names;
    for (const auto& l : skipped) names += (names.empty() ? "" : ", ") + (l.empty() ? std::string("(none)") : l);
    std::fprintf(stderr, "tiller probe: skipping %s: only one class (harmful or harmless) in the data\n", names.c_str());
  }
  if (out.empty()) fail("--data ", d.kind, ": no language has both harmful and harmless items; the probe compares the two");
  return out;
}

// One model's systems over every language not yet in the journal.
void probe_model(Model& model, ProjectionDelta* delta, const std::vector<std::string>& systems,
                 const std::vector<ProbeLanguage>& languages, const ProbeOptions& opt, ProbeJournal& journal,
                 ProgressLine& bar, int64_t& done, int64_t total) {
  const std::string fingerprint = model_fingerprint(model);
  for (const std::string& system : systems) journal.check_model(system, fingerprint);
  for (const ProbeLanguage& l : languages) {
    const int64_t runs = int64_t(l.harmful.size() + l.harmless.size()) * int64_t(systems.size());
    if (std::all_of(systems.begin(), systems.end(), [&](const std::string& s) { return journal.done(s, l.language); })) {
      done += runs;
      continue;
    }
    bar.set_label("probe " + systems[0] + (systems.size() > 1 ? "+" + std::to_string(systems.size() - 1) : "") + " " + l.language);
    const int64_t before = done;
    const ProbeLanguageResult r = probe_language(model, delta, systems, l, opt, [&](int64_t d, int64_t) {
      done = before + d;
      bar.update(done, total, {}, done == total);
    });
    journal.record(r, fingerprint);
  }
}

int run_probe(const Args& args) {
  const fs::path out_dir = args.required("--out");
  const DatasetSpec spec = parse_dataset_spec(args.required("--data"));
  const std::string pool = args.str("--pool", "mean"), norm = args.str("--norm", "post");
  if (pool != "mean" && pool != "last") throw UsageError{"--pool expects mean or last, found '" + pool + "'"};
  if (norm != "pre" && norm != "post") throw UsageError{"--norm expects pre or post, found '" + norm + "'"};
  ProbeOptions opt;
  opt.tap.pooling = pool == "mean" ? Pooling::Mean : Pooling::Last;
  opt.tap.final_norm = norm == "post";
  opt.tap.batch_tokens = args.integer("--batch-tokens", 512);
  opt.separation.components = int(args.integer("--pca", 10));
  opt.separation.ridge = args.number("--ridge", 1e-3);
  opt.silhouette_cap = args.integer("--silhouette-sample", 500);
  opt.seed = uint64_t(args.integer("--seed", 0));
  const int64_t limit = args.integer("--limit", -1);
  if (opt.tap.batch_tokens < 1) throw UsageError{"--batch-tokens must be >= 1"};
  if (opt.separation.components < 1) throw UsageError{"--pca must be >= 1"};
  if (!(opt.separation.ridge > 0)) throw UsageError{"--ridge must be > 0"};
  if (opt.silhouette_cap < 2) throw UsageError{"--silhouette-sample must be >= 2"};
  if (args.has("--limit") && limit < 2) throw UsageError{"--limit must be >= 2 (items per language and class)"};

  Dataset data = load_dataset(spec);
  for (EvalItem& item : data.items) {
    if (item.language.empty()) item.language = "und";  // ISO 639 "undetermined"
  }
  for (std::string& l : data.languages) {
    if (l.empty()) l = "und";
  }
  const bool asked = args.has("--languages");
  select_items(data, asked ? split_list(args.str("--languages")) : std::vector<std::string>{}, limit);
  const std::vector<std::string> languages = probe_languages(data, asked);

  Session s = open_session(args, true, ProfileUse::PerRow);
  const ModelConfig& c = s.model->config();
  opt.tap.layers = sorted_unique(parse_layers(args.str("--layers", "all"), c.n_layers));
  if (args.has("--scatter-layers")) {
    opt.scatter_layers = sorted_unique(parse_layers(args.str("--scatter-layers"), c.n_layers));
    for (int l : opt.scatter_layers) {
      if (!std::binary_search(opt.tap.layers.begin(), opt.tap.layers.end(), l))
        throw UsageError{"--scatter-layers: layer " + std::to_string(l) + " is not among the probed --layers"};
    }
  } else {
    opt.scatter_layers = sorted_unique({opt.tap.layers[opt.tap.layers.size() / 2], opt.tap.layers.back()});
  }
  std::vector<std::string> systems = {s.merged_profile.empty() ? "base" : fs::path(s.merged_profile).stem().string()};
  for (int32_t a = 1; s.profiles && a <= s.profiles->size(); a++) systems.push_back(s.profiles->name(a));
  if (std::find(systems.begin(), systems.end(), kReferenceSystem) != systems.end())
    throw UsageError{"'reference' names the --reference model; choose another profile name"};

  const PromptFormat format = parse_prompt_format(args.str("--prompt-format", "raw"));
  const std::map<std::string, std::string> instructions = soteria_instructions(args);
  // A model's prompts through its own tokenizer and chat template.
  auto prompt_tokens_of = [&](const ModelConfig& config, const Tokenizer* tokenizer, const std::string& dir) {
    const int64_t ctx = config.max_position_embeddings;
    const serving::ServedModel served = serving::describe_model_files(config, tokenizer, dir, fs::path(dir).filename().string(),
                                                                      ctx, args.str("--chat-template"));
    const PromptBuilder builder(served, format, args.str("--system"), instructions);
    builder.check(data.items);
    return std::make_pair(builder.describe(),
                          tokenize_probe_languages(data, languages, [&](const EvalItem& i) { return builder.tokens(i); }, ctx,
                                                   args.has("--skip-long")));
  };
  const auto [prompt_format, tokenized] = prompt_tokens_of(c, s.tokenizer.get(), s.model_dir);
  int64_t total = 0, items = 0;
  for (const ProbeLanguage& l : tokenized) {
    if (!l.skipped_long.empty())
      std::fprintf(stderr, "tiller probe: %s: left out %zu items longer than the context of %lld tokens (--skip-long)\n",
                   l.language.c_str(), l.skipped_long.size(), (long long)c.max_position_embeddings);
    check_probe_language(l, opt.separation.components, c.hidden_size);
    items += int64_t(l.harmful.size() + l.harmless.size());
  }

  // The reference's prompts, checked before anything runs; its weights load after the model's run.
  const std::string reference_dir = args.str("--reference", "");
  std::vector<ProbeLanguage> ref_tokens;
  if (!reference_dir.empty()) {
    const ModelConfig rc = load_model_config(reference_dir);
    if (rc.n_layers != c.n_layers)
      fail("--reference ", reference_dir, " has ", rc.n_layers, " layers but --model has ", c.n_layers,
           "; Δ compares the same layers, so the reference must have as many");
    const auto ref_tokenizer = load_tokenizer(reference_dir);
    ref_tokens = prompt_tokens_of(rc, ref_tokenizer.get(), reference_dir).second;
    for (size_t i = 0; i < ref_tokens.size(); i++) {
      if (ref_tokens[i].skipped_long != tokenized[i].skipped_long)  // another tokenizer or context
        fail("--skip-long leaves out ", ref_tokens[i].skipped_long.size(), " of ", ref_tokens[i].language,
             "'s items for --reference but ", tokenized[i].skipped_long.size(),
             " for --model; Δ compares the same items, so give data that fits both contexts");
      check_probe_language(ref_tokens[i], opt.separation.components, rc.hidden_size);
    }
  }
  total = items * int64_t(systems.size() + (reference_dir.empty() ? 0 : 1));

  // Everything that changes the numbers: a journal written under other settings is refused.
  // Profiles and data by content, so a file rewritten in place is another run.
  ojson profiles = ojson::array();
  if (!s.merged_profile.empty()) profiles.push_back({{"system", systems[0]}, {"path", s.merged_profile}, {"sha256", content_sha256(s.merged_profile)}});
  for (int32_t a = 1; s.profiles && a <= s.profiles->size(); a++) {
    const std::string& source = s.profiles->profile(a).source;
    profiles.push_back({{"system", s.profiles->name(a)}, {"path", source}, {"sha256", content_sha256(source)}});
  }
  ojson data_files = ojson::array();
  for (const DatasetFile& f : data.files) data_files.push_back({{"path", f.path}, {"sha256", f.sha256}});
  const ojson settings = {{"model", s.model_dir},
                          {"model_fingerprint", model_fingerprint(*s.model)},
                          {"profiles", profiles},
                          {"systems", systems},
                          {"reference", reference_dir},
                          {"data", args.str("--data")},
                          {"data_files", data_files},
                          {"prompt_format", prompt_format},
                          {"languages", languages},
                          {"limit", limit},
                          {"skip_long", args.has("--skip-long")},
                          {"layers", opt.tap.layers},
                          {"pool", pool},
                          {"norm", norm},
                          {"pca", opt.separation.components},
                          {"ridge", opt.separation.ridge},
                          {"silhouette_sample", opt.silhouette_cap},
                          {"seed", opt.seed},
                          {"scatter_layers", opt.scatter_layers}};
  ProbeJournal journal(out_dir, settings);
  if (journal.resumed())
    std::fprintf(stderr, "tiller probe: resuming from %s (%zu system × language results done)\n", journal.path().c_str(),
                 journal.resumed());

  std::fprintf(stderr, "tiller probe: %zu languages, %lld items, %zu layers, systems: ", tokenized.size(), (long long)items,
               opt.tap.layers.size());
  for (const auto& name : systems) std::fprintf(stderr, "%s ", name.c_str());
  std::fprintf(stderr, "%s\n", reference_dir.empty() ? "" : "reference");

  ProgressLine bar("probe", "prompts", !args.has("--quiet"));
  int64_t done = 0;
  probe_model(*s.model, s.profiles.get(), systems, tokenized, opt, journal, bar, done, total);
  if (!reference_dir.empty()) {
    s.profiles.reset();
    s.model.reset();  // one model in memory at a time
    auto reference = Model::load(reference_dir, *s.backend);
    probe_model(*reference, nullptr, {kReferenceSystem}, ref_tokens, opt, journal, bar, done, total);
    systems.push_back(kReferenceSystem);
  }
  bar.update(total, total, {}, true);  // when everything was resumed, nothing drew it yet

  // Rows in a fixed order: system, language, layer.
  std::vector<ProbeRow> rows = journal.rows();
  auto index = [](const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) - v.begin(); };
  std::stable_sort(rows.begin(), rows.end(), [&](const ProbeRow& a, const ProbeRow& b) {
    return std::make_tuple(index(systems, a.system), index(languages, a.language), a.layer) <
           std::make_tuple(index(systems, b.system), index(languages, b.language), b.layer);
  });
  write_probe_metrics(out_dir, settings, rows);
  ProbeReportInput report{"tiller probe: " + fs::path(s.model_dir).filename().string(), settings, systems, languages,
                          &rows, &journal.scatters()};
  write_probe_report(out_dir / "report.html", report);

  // The deepest layer, per language and system, on the terminal.
  const int deepest = opt.tap.layers.back();
  std::fprintf(stderr, "layer %d  %-16s %-8s %8s %8s %8s%s\n", deepest, "system", "language", "R", "D_B", "S",
               reference_dir.empty() ? "" : "    ΔR     ΔD_B       ΔS");
  for (const ProbeRow& r : rows) {
    if (r.layer != deepest) continue;
    std::fprintf(stderr, "         %-16s %-8s %8.4f %8.4f %8.4f", r.system.c_str(), r.language.c_str(),
                 r.metrics.between_class_ratio, r.metrics.bhattacharyya, r.metrics.silhouette);
    if (!reference_dir.empty() && r.system != kReferenceSystem) {
      for (const ProbeRow& ref : rows) {
        if (ref.system == kReferenceSystem && ref.language == r.language && ref.layer == r.layer)
          std::fprintf(stderr, " %8.4f %8.4f %8.4f", r.metrics.between_class_ratio - ref.metrics.between_class_ratio,
                       r.metrics.bhattacharyya - ref.metrics.bhattacharyya, r.metrics.silhouette - ref.metrics.silhouette);
      }
    }
    std::fprintf(stderr, "\n");
  }
  std::fprintf(stderr, "tiller probe: wrote %s/{metrics.json, metrics.csv, report.html}\n", out_dir.c_str());
  return 0;
}

const RegisterSubcommand kRegistered{70, probe_command, run_probe};

}  // namespace
}  // namespace tiller::cli
