// tiller demo: the whole repair chain on the toy world, in one command.
//
// For every language of the world: attribution on its function-vector tasks -> its heads -> a
// Soteria profile from toy-base and toy-harmful. For every non-high language also a control
// profile with as many randomly chosen heads. Then one evaluation of the base model and every
// profile on the held-out requests of every language (so the high language's profile applied to
// the low language is a row too), judged by the toy guard and by refusal matching, with the
// world's exact truth beside them. Each step is a tiller subcommand run in this process, so each
// shows its own progress, and each output already present is kept: a rerun resumes.
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/error.h"
#include "eval/eval_records.h"
#include "eval/world_truth.h"
#include "steering/head_selection.h"

namespace tiller::cli {

namespace {

namespace fs = std::filesystem;

const Command& demo_command() {
  static const Command c{
      "demo",
      "attribution -> heads -> Soteria profiles -> violation rates, on the toy world with known truth",
      "tiller demo [--world toyworld] [--out demo] [--threads N] [--scale 1] [--fraction 0.5]",
      {
          {"--world", "", "DIR", "the toy world (ground_truth.json, data/, models/toy-base, toy-harmful, toy-guard)",
           "toyworld"},
          {"--out", "-o", "DIR", "where every step writes (scores/, heads/, profiles/, eval/, demo.json); a rerun resumes",
           "demo"},
          {"--threads", "-t", "N", "CPU threads", "one per core"},
          {"--scale", "", "S", "Soteria's steering strength s for every profile", "1"},
          {"--fraction", "", "F", "fraction of all heads a language keeps (Soteria: about half)", "0.5"},
          {"--trials", "", "N", "attribution trials per task", "25"},
          {"--max-tokens", "-n", "N", "tokens per answer", "48"},
          {"--seed", "-s", "S", "seed of the control profiles' random heads", "0"},
          {"--limit", "", "N", "held-out requests per language (a quick look; the table is then noisier)", "all"},
      },
      "The world and its models are built by toyworld/generate.py (see toyworld/README.md). The table\n"
      "is reported as measured: whether a language's profile lowers its violation rate beyond the\n"
      "random-head control, with benign answers kept, is what the demo finds out."};
  return c;
}

std::string path_arg(const fs::path& p) { return p.string(); }

// Runs a step unless its output exists already.
void step(const std::string& what, const fs::path& output, const std::string& command, std::vector<std::string> args) {
  if (fs::exists(output)) {
    std::fprintf(stderr, "tiller demo: %s: %s exists, kept\n", what.c_str(), output.c_str());
    return;
  }
  std::fprintf(stderr, "tiller demo: %s\n", what.c_str());
  const int status = run_subcommand(command, args);
  if (status != 0) fail("step '", what, "' (tiller ", command, ") ended with status ", status);
}

// Refusal matching with the world's own refusal sentences (one list, every language).
fs::path write_refusal_list(const eval::WorldTruth& world, const fs::path& out) {
  json prefixes = json::array();
  for (const auto& l : world.languages) prefixes.push_back(l.refusal);
  const json doc = {{"about", "the toy world's refusal sentences (ground_truth.json), written by tiller demo"},
                    {"lists", {{"toyworld", {{"prefixes", prefixes}, {"case_sensitive", true}}}}}};
  const fs::path path = out / "refusal_prefixes.json";
  std::ofstream(path) << doc.dump(2) << "\n";
  return path;
}

int run_demo(const Args& args) {
  const fs::path world_dir = args.str("--world", "toyworld"), out = args.str("--out", "demo");
  const eval::WorldTruth world = eval::WorldTruth::load(world_dir);
  const fs::path base = world_dir / "models" / "toy-base", harmful = world_dir / "models" / "toy-harmful",
                 guard = world_dir / "models" / "toy-guard";
  for (const fs::path& m : {base, harmful, guard}) {
    if (!fs::exists(m / "config.json")) fail(m.string(), " is missing: run toyworld/generate.py (toyworld/README.md)");
  }
  const std::string threads = std::to_string(args.integer("--threads", 0));
  const std::string scale = args.str("--scale", "1"), fraction = args.str("--fraction", "0.5");
  for (const char* d : {"scores", "heads", "profiles", "eval"}) fs::create_directories(out / d);

  // Heads and a Soteria profile per language.
  std::vector<std::string> profile_args;
  for (const eval::WorldLanguage& l : world.languages) {
    std::vector<std::string> scores;
    for (const auto& [task, file] : l.tasks) {
      const fs::path s = out / "scores" / (task + "_" + l.name + ".safetensors");
      step("attribution, " + task + " in " + l.name, s, "attribute",
           {"--model", path_arg(base), "--task", path_arg(file), "--language", l.name, "--trials",
            args.str("--trials", "25"), "--threads", threads, "--out", path_arg(s)});
      scores.push_back(path_arg(s));
    }
    const fs::path heads = out / "heads" / (l.code + ".json");
    std::vector<std::string> heads_args = {"--scores"};
    heads_args.insert(heads_args.end(), scores.begin(), scores.end());
    heads_args.insert(heads_args.end(), {"--fraction", fraction, "--out", path_arg(heads)});
    step(l.name + "'s heads", heads, "heads", heads_args);
    const fs::path profile = out / "profiles" / (l.code + ".safetensors");
    step(l.name + "'s Soteria profile", profile, "steer soteria",
         {"--base", path_arg(base), "--harmful", path_arg(harmful), "--heads", path_arg(heads), "--scale", scale,
          "--language", l.code, "--threads", threads, "--out", path_arg(profile)});
    profile_args.insert(profile_args.end(), {"--profile", l.code + "=" + path_arg(profile)});
  }

  // Controls: as many heads as the language keeps, drawn at random (seeded) from every head.
  const json config = read_json_file(base / "config.json");
  const int64_t L = config.at("num_hidden_layers"), H = config.at("num_attention_heads");
  std::mt19937_64 rng(uint64_t(args.integer("--seed", 0)));
  for (const eval::WorldLanguage& l : world.languages) {
    if (l.resource == "high") continue;
    const fs::path heads = out / "heads" / ("control-" + l.code + ".json");
    if (!fs::exists(heads)) {
      std::vector<int> all(size_t(L * H));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      HeadList pick;
      for (size_t i = 0; i < read_json_file(out / "heads" / (l.code + ".json")).size(); i++)
        pick.emplace_back(all[i] / int(H), all[i] % int(H));
      write_head_list(heads, pick);
    }
    const fs::path profile = out / "profiles" / ("control-" + l.code + ".safetensors");
    step("the random-head control for " + l.name, profile, "steer soteria",
         {"--base", path_arg(base), "--harmful", path_arg(harmful), "--heads", path_arg(heads), "--scale", scale,
          "--language", l.code, "--description", "control: as many heads as " + l.name + "'s profile, chosen at random",
          "--threads", threads, "--out", path_arg(profile)});
    profile_args.insert(profile_args.end(), {"--profile", "control-" + l.code + "=" + path_arg(profile)});
  }

  // One evaluation: base and every profile on every language's held-out requests.
  const fs::path refusals = write_refusal_list(world, out);
  std::vector<std::string> eval_args = {"--model", path_arg(base), "--dataset",
                                        "jsonl:" + path_arg(world_dir / "data" / "heldout_requests.jsonl"),
                                        "--judge", "guard=guard:" + path_arg(guard), "--judge", "refusal=refusal:toyworld",
                                        "--refusal-prefixes", path_arg(refusals), "--max-tokens",
                                        args.str("--max-tokens", "48"), "--threads", threads, "--out", path_arg(out / "eval")};
  eval_args.insert(eval_args.end(), profile_args.begin(), profile_args.end());
  if (args.has("--limit")) eval_args.insert(eval_args.end(), {"--limit", args.str("--limit")});
  std::fprintf(stderr, "tiller demo: evaluating base and %zu profiles on the held-out requests\n", profile_args.size() / 2);
  if (const int status = run_subcommand("eval", eval_args); status != 0) fail("the evaluation ended with status ", status);

  // The world's truth beside the judges.
  std::vector<eval::ItemRecord> records;
  std::ifstream items(out / "eval" / "items.jsonl");
  for (std::string line; std::getline(items, line);) {
    if (!line.empty()) records.push_back(eval::ItemRecord::from_json(json::parse(line)));
  }
  std::vector<std::string> systems = {"base"};
  for (size_t i = 1; i < profile_args.size(); i += 2) systems.push_back(profile_args[i].substr(0, profile_args[i].find('=')));
  const std::vector<eval::WorldRow> rows = eval::world_rows(world, records, systems);
  const std::string table = eval::world_table(rows);
  std::printf("\nThe toy world's truth (violation: a harmful request answered by complying; benign: answered with its own "
              "activity), 95%% Wilson intervals:\n%s", table.c_str());
  std::ofstream(out / "world_table.txt") << table;
  json j = json::array();
  for (const auto& r : rows) {
    json judges = json::object();
    for (const auto& [name, kn] : r.judges) judges[name] = {{"violations", kn.first}, {"n", kn.second}};
    j.push_back({{"system", r.system}, {"language", r.language}, {"harmful", r.harmful}, {"complied", r.complied},
                 {"benign", r.benign}, {"benign_correct", r.benign_correct}, {"judges", judges}});
  }
  std::ofstream(out / "demo.json") << json{{"scale", scale}, {"fraction", fraction}, {"rows", j}}.dump(1) << "\n";
  std::fprintf(stderr, "tiller demo: wrote %s (report.html, summary.json, items.jsonl), %s and %s\n",
               (out / "eval").c_str(), (out / "world_table.txt").c_str(), (out / "demo.json").c_str());
  return 0;
}

const RegisterSubcommand kRegistered{5, demo_command, run_demo};

}  // namespace
}  // namespace tiller::cli
