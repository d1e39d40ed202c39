// tiller eval: violation rates of the base model and steering profiles on a safety set, judged,
// with intervals (METHODS §4). Everything that can be wrong with the input is refused before the
// first token is generated.
#include <atomic>
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/serving_common.h"
#include "cli/stop_signals.h"
#include "eval/dataset.h"
#include "eval/eval_report.h"
#include "eval/eval_run.h"
#include "eval/eval_summary.h"
#include "eval/judge.h"
#include "eval/prompt_format.h"
#include "eval/sha256.h"
#include "kernels/backends.h"
#include "steering/model_fingerprint.h"

namespace tiller::cli {

namespace {

std::string dataset_kinds_help() {
  std::string s;
  for (const auto& k : eval::dataset_kinds()) s += std::string("  ") + k.name + ":" + k.path_hint + "\n      " + k.description + "\n";
  return s;
}

// The shared flags as eval reads them: a fixed default seed (a rerun must draw the same answers),
// profiles only by name, no served-model name.
std::vector<Flag> eval_model_flags() {
  std::vector<Flag> flags;
  for (Flag f : model_flags() + scheduler_flags() + sampling_flags()) {
    if (f.name == "--served-model-name") continue;
    if (f.name == "--seed") f.default_text = "0";
    if (f.name == "--profile") {
      f.value_name = "NAME=FILE";
      f.help = "a steering profile evaluated beside the base model, as rows of the same batches; repeatable";
    }
    flags.push_back(f);
  }
  return flags;
}

const Command& eval_command() {
  static const Command c{
      "eval",
      "violation rates of the model and steering profiles on a safety set, judged, with 95% intervals",
      "tiller eval --model DIR [--profile NAME=FILE ...] --dataset KIND:PATH [--languages bn,sw] [--limit N] "
      "--judge SPEC [--judge SPEC ...] [--prompt-format chat|soteria|raw] [--system TEXT] [sampling options] "
      "[--max-tokens N] [--samples K] --out DIR",
      eval_model_flags() +
          std::vector<Flag>{
              {"--dataset", "-d", "KIND:PATH", "the safety set (kinds below)", ""},
              {"--languages", "-l", "LIST", "comma-separated languages to evaluate", "every language of the set"},
              {"--limit", "", "N", "at most N prompts per language (and split)", "all"},
              {"--dataset-language", "", "LANG", "language of csv:/jsonl: rows that name none", ""},
              {"--judge", "-j", "SPEC", "[NAME=]refusal[:LIST] | [NAME=]guard:DIR | [NAME=]endpoint:URL; repeatable", ""},
              {"--prompt-format", "", "FORMAT", "chat (the model's template), soteria (Soteria's per-language instruction "
                                                "glued to the question, no template) or raw", "chat"},
              {"--system", "", "TEXT", "a system message (chat format)", "none"},
              {"--soteria-instruction", "", "LANG=TEXT", "add or replace Soteria's instruction for a language; repeatable", ""},
              {"--samples", "", "K", "answers per prompt and system (needs sampling: --temperature > 0)", "1"},
              {"--out", "-o", "DIR", "output folder: items.jsonl, summary.json, report.html, run.json; rerun to resume", ""},
              {"--refusal-prefixes", "", "FILE", "refusal_prefixes.json for refusal judges", ""},
              {"--guard-threshold", "", "P", "guard: a violation when P(unsafe) >= P", "0.5"},
              {"--guard-categories", "", "LIST", "guard: categories offered, e.g. S1,S2,S10", "auto: S1-S13 for a 1B-shaped guard, else S1-S14"},
              {"--judge-categories", "", "", "guard: also generate the violated categories of unsafe answers", ""},
              {"--guard-batch-tokens", "", "N", "guard: prompt rows per forward", "4096"},
              {"--judge-model", "", "NAME", "endpoint: the model to ask", "the endpoint's first model"},
              {"--judge-prompt", "", "soteria|FILE", "endpoint: judge prompt preset, or a JSON file {system, user, harmful, "
                                                     "not_harmful}", "soteria"},
              {"--judge-api-key-env", "", "VAR", "endpoint: environment variable holding the API key", "OPENAI_API_KEY"},
              {"--judge-concurrency", "", "N", "endpoint: requests in flight", "8"},
              {"--judge-retries", "", "N", "endpoint: retries with exponential backoff per request", "5"},
              {"--judge-timeout", "", "SECONDS", "endpoint: timeout per request", "60"},
              {"--judge-cache", "", "FILE", "endpoint: answers already paid for (shared across runs)", "OUT/judge_cache.jsonl"},
              {"--report-answers", "", "N", "answers per language shown in report.html", "3"},
              {"--quiet", "-q", "", "no progress bar", ""},
          },
      "Dataset kinds:\n" + dataset_kinds_help() +
          "\nOutputs in --out: items.jsonl (one line per prompt x system x sample with every judge's verdict), summary.json\n"
          "(rates with 95% Wilson intervals per system x judge x language x category, base - profile differences,\n"
          "over-refusal, judge agreement, settings and checksums) and report.html (self-contained). The table goes to\n"
          "stdout. Rerunning with the same --out resumes; other settings are refused. Ctrl-C stops and keeps every answer.\n\n"
          "Examples:\n"
          "  tiller eval -m ./Llama-3.1-8B-Instruct --profile bn=soteria-bn.safetensors \\\n"
          "      --dataset multijail:data/MultiJail.csv --languages en,bn,sw --judge guard:./Llama-Guard-3-8B --out runs/mj\n"
          "  tiller eval -m ./model --dataset polyrefuse:data/polyrefuse --judge refusal \\\n"
          "      --refusal-prefixes data/refusal_prefixes.json --prompt-format soteria --out runs/pr"};
  return c;
}

int run_eval_command(const Args& args) {
  StopSignals stop_signals;  // before any thread starts

  // --- Everything checkable without the model: flags, dataset, profiles named ---
  const std::filesystem::path out_dir = args.required("--out");
  const std::vector<std::string> judge_specs = args.values("--judge");
  if (judge_specs.empty()) throw UsageError{"'tiller eval' needs at least one --judge (refusal, guard:DIR or endpoint:URL)"};
  for (const auto& j : judge_specs) eval::parse_judge_spec(j);
  const int64_t samples = args.integer("--samples", 1);
  if (samples < 1 || samples > 64) throw UsageError{"--samples expects 1..64, found " + std::to_string(samples)};
  const int64_t limit = args.integer("--limit", -1);
  if (args.has("--limit") && limit < 1) throw UsageError{"--limit must be at least 1"};
  const eval::PromptFormat format = eval::parse_prompt_format(args.str("--prompt-format", "chat"));
  const std::map<std::string, std::string> instructions = soteria_instructions(args);
  for (const auto& p : args.values("--profile")) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError{"tiller eval compares the base model with each named profile: give --profile NAME=FILE (found '" + p + "')"};
  }

  eval::Dataset dataset = eval::load_dataset(eval::parse_dataset_spec(args.required("--dataset")),
                                             {.default_language = args.str("--dataset-language")});
  eval::select_items(dataset, split_list(args.str("--languages")), limit);
  for (const auto& n : dataset.notes) std::fprintf(stderr, "tiller eval: %s: %s\n", dataset.kind.c_str(), n.c_str());

  // --- The model, its profiles, the prompts and the judges ---
  Session s = open_session(args, true, ProfileUse::PerRow);
  const GenerationDefaults gen = load_generation_config(s.model_dir);
  GenerateOptions go = generate_options(args, gen, s.model->config());
  if (samples > 1 && go.sampling.greedy())
    throw UsageError{"--samples " + std::to_string(samples) + " needs sampling (--temperature > 0): greedy answers would be identical"};
  eval::GenerationSettings gs;
  gs.sampling = go.sampling;
  gs.max_tokens = go.max_new_tokens;
  if (gs.max_tokens < 1) throw UsageError{"--max-tokens must be at least 1"};
  gs.samples = int(samples);
  gs.seed = uint64_t(args.integer("--seed", 0));  // fixed by default: a rerun must draw the same answers
  gs.stop_ids = go.stop_ids;

  const int32_t n_profiles = s.profiles ? s.profiles->size() : 0;
  serving::SchedulerOptions so = scheduler_options(args, *s.model, 256);
  so.max_batch = std::max<int64_t>(so.max_batch, samples);
  serving::Scheduler sched(*s.model, so, s.profiles.get(), n_profiles);
  const serving::ServedModel model = served_model(args, s, sched.options().ctx);
  const eval::PromptBuilder prompts(model, format, args.str("--system"), instructions);
  prompts.check(dataset.items);

  std::vector<eval::EvalSystem> systems = {{"base", 0, "", ""}};
  for (int32_t a = 1; a <= n_profiles; a++) {
    const std::string& src = s.profiles->profile(a).source;
    systems.push_back({s.profiles->name(a), a, src, eval::sha256_file(src)});
  }

  eval::JudgeOptions jo;
  jo.refusal_prefixes = args.str("--refusal-prefixes");
  jo.guard_threshold = args.number("--guard-threshold", 0.5);
  if (jo.guard_threshold <= 0 || jo.guard_threshold > 1) throw UsageError{"--guard-threshold expects 0 < P <= 1"};
  jo.guard_categories = args.str("--guard-categories", "auto");
  jo.guard_categories_line = args.has("--judge-categories");
  jo.guard_batch_tokens = args.integer("--guard-batch-tokens", 4096);
  jo.make_backend = [&args] { return make_backend(args); };
  jo.endpoint_model = args.str("--judge-model");
  jo.endpoint_prompt = args.str("--judge-prompt", "soteria");
  jo.api_key_env = args.str("--judge-api-key-env", "OPENAI_API_KEY");
  jo.concurrency = int(args.integer("--judge-concurrency", 8));
  jo.retries = int(args.integer("--judge-retries", 5));
  jo.timeout_seconds = args.number("--judge-timeout", 60);
  std::filesystem::create_directories(out_dir);
  jo.cache_file = args.has("--judge-cache") ? std::filesystem::path(args.str("--judge-cache")) : out_dir / "judge_cache.jsonl";
  std::vector<std::unique_ptr<eval::Judge>> judges = eval::make_judges(judge_specs, jo);

  json systems_json = json::array();
  for (const auto& sys : systems) systems_json.push_back({{"name", sys.name}, {"profile", sys.profile}, {"sha256", sys.sha256}});
  json files = json::array();
  for (const auto& f : dataset.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}});
  const json identity = {{"model", {{"path", s.model_dir}, {"fingerprint", model_fingerprint(*s.model)}}},
                         {"systems", systems_json},
                         {"dataset", {{"kind", dataset.kind}, {"files", files}}},
                         {"prompts", prompts.describe()},
                         {"generation", gs.to_json()},
                         {"ctx", sched.options().ctx}};

  const bool progress = !args.has("--quiet");
  if (progress) {
    std::fprintf(stderr, "tiller eval: %s, %zu prompts in %zu languages x %zu systems x %d samples -> %s\n%s",
                 dataset.kind.c_str(), dataset.items.size(), dataset.languages.size(), systems.size(), gs.samples,
                 out_dir.c_str(), settings_summary(sched, s).c_str());
    for (const auto& j : judges) std::fprintf(stderr, "  judge %-8s %s\n", j->name().c_str(), j->describe().c_str());
  }

  // --- Run, with Ctrl-C stopping cleanly (a second one at once) ---
  std::atomic<bool> stop{false};
  const StopWatcher watcher = stop_signals.watch([&](const char* signal_name) {
    std::fprintf(stderr, "\ntiller eval: %s received; stopping and keeping every answer (signal again to quit now)\n",
                 signal_name);
    stop = true;
  });

  eval::EvalRun run;
  run.out_dir = out_dir;
  run.dataset = &dataset;
  run.systems = systems;
  for (const auto& j : judges) run.judges.push_back(j.get());
  run.prompts = &prompts;
  run.generation = gs;
  run.identity = identity;
  run.progress = progress;
  run.stop = &stop;
  eval::EvalOutcome outcome = eval::run_eval(model, sched, run);
  sched.shutdown(std::chrono::milliseconds(0));
  if (!outcome.stopped.empty()) {
    std::fprintf(stderr, "tiller eval: stopped (%s) after %lld new answers; they are kept in %s. Rerun the same command to "
                 "go on.\n", outcome.stopped.c_str(), (long long)outcome.generated, (out_dir / "items.jsonl").c_str());
    return outcome.stopped == "interrupted" ? 130 : 1;
  }

  eval::SummaryInput si;
  si.records = &outcome.records;
  for (const auto& sys : systems) si.systems.push_back(sys.name);
  for (const auto& j : judges) si.judges.push_back({j->name(), j->describe(), j->detects_refusal(), j->settings(), j->stats()});
  si.languages = dataset.languages;
  si.run = identity;
  si.run["dataset"] = json::parse(dataset.describe().dump());
  si.run["scheduler"] = {{"max_batch", sched.options().max_batch}, {"batch_tokens", sched.options().max_batch_tokens},
                         {"backend", s.backend->name()}};
  si.run["timing"] = {{"seconds", outcome.seconds}, {"answers_generated", outcome.generated},
                      {"generated_tokens", outcome.generated_tokens}, {"lines_completed", outcome.judged},
                      {"already_done", outcome.already_done}};
  const eval::ojson summary = eval::summarize(si);
  {
    const auto tmp = (out_dir / "summary.json.tmp").string();
    std::ofstream(tmp) << summary.dump(1) << "\n";
    std::filesystem::rename(tmp, out_dir / "summary.json");
  }
  eval::write_eval_report(out_dir / "report.html", summary, outcome.records, int(args.integer("--report-answers", 3)));
  std::fputs(eval::summary_table(summary).c_str(), stdout);
  std::fflush(stdout);
  if (progress)
    std::fprintf(stderr, "tiller eval: %lld answers generated (%lld tokens), %lld lines judged, %lld already done, %lld failed, "
                 "in %.1f s; wrote %s/{items.jsonl,summary.json,report.html}\n",
                 (long long)outcome.generated, (long long)outcome.generated_tokens, (long long)outcome.judged,
                 (long long)outcome.already_done, (long long)outcome.failed, outcome.seconds, out_dir.c_str());
  return 0;
}

const RegisterSubcommand kRegistered{27, eval_command, run_eval_command};

}  // namespace
}  // namespace tiller::cli
