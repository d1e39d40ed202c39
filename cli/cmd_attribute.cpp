// tiller attribute: every attention head's causal indirect effect for one (task, language).
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/progress.h"
#include "steering/attribution.h"
#include "steering/attribution_scores.h"
#include "steering/function_task.h"
#include "steering/head_selection.h"
#include "steering/model_fingerprint.h"

namespace tiller::cli {

namespace {

const Command& attribute_command() {
  static const Command c{
      "attribute",
      "measure every attention head's indirect effect on a function-vector task (METHODS §2)",
      "tiller attribute --model DIR (--task FILE.json | --prompts FILE.jsonl) [options] --out SCORES.safetensors",
      model_flags() +
          std::vector<Flag>{
              {"--task", "", "FILE.json", "task file: a JSON list of {\"input\", \"output\"}, named {task}_{Language}.json", ""},
              {"--language", "", "NAME", "language recorded in the scores", "from the task file name"},
              {"--shots", "", "N", "demonstrations per prompt", "10"},
              {"--trials", "", "N", "label-shuffled prompts (one IE tensor each)", "25"},
              {"--mean-prompts", "", "N", "clean prompts for the mean head activations", "25"},
              {"--seed", "-s", "S", "seed of the prompt sampling (the 70/9 train/valid split is fixed)", "42"},
              {"--positions", "", "last|all", "patch the last token (as the public code does) or every position", "last"},
              {"--naive", "", "", "one full forward per patched head (the slow reference path)", ""},
              {"--no-start-text", "", "", "for models without BOS: do not prepend the text <|endoftext|>", ""},
              {"--ctx", "", "N", "longest prompt in tokens; longer ones are drawn again (sampled) or skipped (--prompts)",
               "the model's context"},
              {"--batch-rows", "", "N", "rows per forward of the fast path (memory bound)", "1024"},
              {"--prompts", "", "FILE.jsonl",
               "replay these prompts (token ids used as they are) instead of sampling; --task then only names the "
               "task and language",
               ""},
              {"--dump-prompts", "", "FILE.jsonl", "write the prompts used, one JSON object per line", ""},
              {"--quiet", "-q", "", "no progress bar", ""},
              {"--out", "-o", "FILE", "scores (.safetensors): indirect_effect [trials, L, H], mean_indirect_effect [L, H]", ""},
          },
      "Example:\n  tiller attribute -m ./model --task antonym_English.json --out antonym_English.safetensors\n"
      "  tiller heads --scores *_English.safetensors --fraction 0.5 --out English_Heads.json"};
  return c;
}

int run_attribute(const Args& args) {
  const std::string out_path = args.required("--out");
  const bool replay = args.has("--prompts");
  if (!replay && !args.has("--task")) throw UsageError{"give --task FILE.json (or --prompts FILE.jsonl to replay)"};
  const std::string positions_arg = args.str("--positions", "last");
  if (positions_arg != "last" && positions_arg != "all")
    throw UsageError{"--positions expects last or all, found '" + positions_arg + "'"};
  const PatchPositions positions = positions_arg == "last" ? PatchPositions::Last : PatchPositions::All;
  PromptSampling sampling;
  sampling.shots = args.integer("--shots", 10);
  sampling.trials = args.integer("--trials", 25);
  sampling.mean_prompts = args.integer("--mean-prompts", 25);
  sampling.seed = uint64_t(args.integer("--seed", 42));
  sampling.slots = positions == PatchPositions::All;
  if (sampling.shots < 0 || sampling.trials < 1 || sampling.mean_prompts < 1)
    throw UsageError{"--shots must be >= 0, --trials and --mean-prompts >= 1"};
  AttributionOptions opt;
  opt.positions = positions;
  opt.naive = args.has("--naive");
  opt.max_rows = args.integer("--batch-rows", 1024);
  if (opt.max_rows < 1) throw UsageError{"--batch-rows must be >= 1"};

  Session s = open_session(args, !replay);
  const ModelConfig& c = s.model->config();
  sampling.max_tokens = args.integer("--ctx", c.max_position_embeddings);
  if (sampling.max_tokens < 1 || sampling.max_tokens > c.max_position_embeddings)
    throw UsageError{"--ctx must be in [1, " + std::to_string(c.max_position_embeddings) + "] (the model's context)"};
  const auto warn = [](const std::string& m) { std::fprintf(stderr, "tiller attribute: warning: %s\n", m.c_str()); };

  std::map<std::string, std::string> meta;
  PromptSet prompts;
  if (replay) {
    ReadPromptsResult r = read_prompts_jsonl(args.str("--prompts"), c.vocab_size, sampling.max_tokens, warn);
    prompts = std::move(r.prompts);
    if (r.skipped_too_long) warn(std::to_string(r.skipped_too_long) + " prompts skipped: longer than the context");
    meta["prompts_source"] = "replayed " + args.str("--prompts");
    meta["prompts_skipped"] = std::to_string(r.skipped_too_long);
    const std::filesystem::path task_path = args.str("--task", "");
    const std::string stem = task_path.stem().string();
    meta["task"] = stem.empty() ? "replayed" : stem.substr(0, stem.rfind('_'));
    meta["language"] = args.str("--language", stem.rfind('_') == std::string::npos ? "unknown" : stem.substr(stem.rfind('_') + 1));
  } else {
    const TaskSet task = load_task_file(args.str("--task"), args.str("--language"));
    std::fprintf(stderr, "tiller attribute: %s (%s, %s): %lld rows, %lld dropped (empty input or output), %zu train / %zu valid\n",
                 task.path.c_str(), task.task.c_str(), task.language.c_str(), (long long)task.rows_total,
                 (long long)task.rows_dropped, task.train.size(), task.valid.size());
    const PromptBuilder builder(*s.tokenizer, !args.has("--no-start-text"));
    SampledPrompts sp = sample_prompts(task, builder, sampling);
    const int64_t resampled = sp.resampled_clean + sp.resampled_corrupted;
    if (resampled)
      warn(std::to_string(resampled) + " sampled prompts (" + std::to_string(sp.resampled_clean) + " clean, " +
           std::to_string(sp.resampled_corrupted) + " corrupted) exceeded the context of " +
           std::to_string(sampling.max_tokens) + " tokens and were drawn again");
    prompts = std::move(sp.prompts);
    meta["prompts_source"] = "sampled";
    meta["task"] = task.task;
    meta["language"] = task.language;
    meta["task_file"] = task.path;
    meta["rows_total"] = std::to_string(task.rows_total);
    meta["rows_dropped"] = std::to_string(task.rows_dropped);
    meta["prompts_resampled"] = std::to_string(resampled);
    meta["start_of_text"] = builder.start_description();
    meta["shots"] = std::to_string(sampling.shots);
    meta["seed"] = std::to_string(sampling.seed);
    meta["split_seed"] = std::to_string(kTaskSplitSeed);
  }
  if (args.has("--dump-prompts")) write_prompts_jsonl(args.str("--dump-prompts"), prompts);

  const auto t0 = std::chrono::steady_clock::now();
  const MeanHeadActivations mean = mean_head_activations(*s.model, prompts.clean, positions, opt.max_rows);
  ProgressLine bar("attribute " + meta["task"] + "/" + meta["language"], "passes", !args.has("--quiet"));
  opt.progress = [&](int64_t done, int64_t total) { bar.update(done, total, {}, done == total); };
  const AttributionResult res = attribute_heads(*s.model, mean, prompts.corrupted, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  meta["model"] = s.model_dir;
  meta["model_fingerprint"] = model_fingerprint(*s.model);
  meta["mean_prompts"] = std::to_string(prompts.clean.size());
  meta["positions"] = patch_positions_name(positions);
  meta["method"] = opt.naive ? "naive" : "fast";
  write_attribution_scores(out_path, res, meta);

  const std::vector<float> m = res.mean_indirect_effect();
  const HeadList top = rank_heads(m, c.n_layers, c.n_heads);
  double p0 = 0;
  for (float p : res.baseline_prob) p0 += p;
  std::fprintf(stderr, "tiller attribute: %lld trials x %lld heads in %.1fs (%.0f patched passes/s); mean P(target | "
               "corrupted) %.4f; top heads:",
               (long long)res.trials, (long long)(c.n_layers * c.n_heads), seconds,
               double(res.trials * c.n_layers * c.n_heads) / seconds, p0 / double(res.trials));
  for (size_t i = 0; i < std::min<size_t>(5, top.size()); i++)
    std::fprintf(stderr, " [%d, %d] %.4f", top[i].first, top[i].second, m[size_t(top[i].first * c.n_heads + top[i].second)]);
  std::fprintf(stderr, "\ntiller attribute: wrote %s\n", out_path.c_str());
  return 0;
}

const RegisterSubcommand kRegistered{62, attribute_command, run_attribute};

}  // namespace
}  // namespace tiller::cli
