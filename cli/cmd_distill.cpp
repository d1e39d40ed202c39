// tiller distill: multilingual self-distillation (METHODS §5) of LoRA adapters, head columns or
// every weight, saved as a steering profile.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.h"
#include "cli/train_common.h"
#include "engine/chat/chat_prompt.h"
#include "engine/chat/chat_template.h"
#include "engine/error.h"
#include "engine/sampler.h"
#include "engine/tokenizer/tokenizer_config.h"
#include "eval/dataset.h"
#include "models/model_config.h"
#include "train/distill.h"
#include "train/teacher_template.h"

namespace tiller::cli {
namespace {
namespace fs = std::filesystem;

const Command& distill_command() {
  static const Command c{
      "distill",
      "multilingual self-distillation: the model answers a language's queries as it would in English",
      "tiller distill --model DIR --queries (KIND:PATH | FILE.jsonl) --language CODE [--train SPEC] "
      "--out PROFILE.safetensors [options]",
      training_flags() +
          std::vector<Flag>{
              {"--queries", "", "KIND:PATH|FILE.jsonl", "parallel queries through evaluation's loaders (multijail:, "
                                                        "polyrefuse:, xsafety:, jsonl:, ...); a plain .jsonl holds "
                                                        "{\"prompt\": target-language query, \"english\": its English version}", ""},
              {"--language", "", "CODE", "the target language (ISO 639-1, e.g. bn)", ""},
              {"--holdout", "", "F", "fraction of the queries (by id, seeded) kept out of training for tiller eval", "0.2"},
              {"--holdout-out", "", "FILE.jsonl", "where the held-out queries go (eval's jsonl: format)", "<out>.heldout.jsonl"},
              {"--teacher-template", "", "FILE", "the teacher's user message: text with {english}, {query}, {language}",
               "English query + an instruction to judge as in English and answer in the language"},
              {"--mode", "", "on-policy|off-policy", "sample responses from the student or from the teacher", "on-policy"},
              {"--teacher", "", "frozen|live", "the teacher: the starting model, or the current one (no gradient)", "frozen"},
              {"--divergence", "", "rkl|fkl|jsd:BETA", "token divergence between student and teacher", "rkl"},
              {"--divergence-top-k", "", "K", "take the divergence over the teacher's top K tokens (0: full vocabulary)", "0"},
              {"--dpsw", "", "on|off", "dual-perspective safety weighting of the tokens", "on"},
              {"--dpsw-teacher", "", "confident|entropy", "teacher term: 1 - normalised top-K entropy, or the entropy", "confident"},
              {"--dpsw-k", "", "K", "K of the teacher's top-K entropy", "20"},
              {"--dpsw-student", "", "sampled|teacher-argmax", "student term 1 - p_S of the response token or of the "
                                                               "teacher's argmax", "sampled"},
              {"--dpsw-norm", "", "batch|none", "divide by the step's sum of weights, or by its token count", "batch"},
              {"--queries-per-step", "", "N", "queries per optimizer step", "8"},
              {"--max-new-tokens", "", "N", "response length limit", "128"},
              {"--temperature", "", "T", "sampling temperature of the responses (0: greedy)", "1"},
              {"--top-p", "", "P", "nucleus sampling of the responses", "1"},
              {"--micro-batch-tokens", "", "N", "student rows per forward and backward", "2048"},
              {"--chat-template", "", "NAME", "auto, model, llama2, llama3, chatml, a named template, or none (plain "
                                              "text prompts)", "auto"},
          },
      "Loss per response token t: w_t · D(p_student(· | query, y<t) || stopgrad p_teacher(· | teacher context, y<t)).\n"
      "Student context: the target-language query in the chat template. Teacher context: the teacher template in\n"
      "the chat template. Responses are sampled on the engine's own forward and KV cache.\n\n"
      "Example:\n"
      "  tiller distill -m ./toy-base --queries multijail:../shared/data/safety/multijail --language bn \\\n"
      "      --train lora --steps 200 --out bn-msd.safetensors"};
  return c;
}

bool flag_on(const Args& args, const char* name, const char* on, const char* off, bool fallback) {
  if (!args.has(name)) return fallback;
  const std::string v = args.str(name);
  if (v == on) return true;
  if (v == off) return false;
  throw UsageError{std::string(name) + " expects " + on + " or " + off + ", found '" + v + "'"};
}

eval::Dataset load_queries(const std::string& spec, const std::string& language) {
  eval::LoadOptions lo;
  lo.default_language = language;
  if (fs::is_regular_file(spec)) return eval::load_prompt_jsonl(spec, language);
  return eval::load_dataset(eval::parse_dataset_spec(spec), lo);
}

void write_heldout(const fs::path& path, const std::vector<const eval::EvalItem*>& items) {
  std::ofstream out(path);
  if (!out) fail("--holdout-out ", path.string(), ": cannot write the file");
  for (const eval::EvalItem* it : items) {
    nlohmann::ordered_json j = {{"id", it->id}, {"language", it->language}, {"prompt", it->prompt},
                                {"english", *it->english}, {"harmful", it->harmful}};
    if (!it->categories.empty()) j["category"] = it->categories;
    out << j.dump() << "\n";
  }
}

int run_distill(const Args& args) {
  Session s = open_session(args, true);
  const std::string language = args.required("--language");
  const std::string queries_spec = args.required("--queries");
  eval::Dataset data = load_queries(queries_spec, language);
  std::vector<const eval::EvalItem*> items;
  for (const eval::EvalItem& it : data.items) {
    if (it.language != language) continue;
    if (!it.english)
      fail("--queries ", queries_spec, ": query ", it.id, " (", language, ") has no English version; distillation "
           "needs each query with its English one (\"english\" in a .jsonl line, or a parallel set)");
    items.push_back(&it);
  }
  if (items.empty()) {
    std::string langs;
    for (const auto& l : data.languages) langs += (langs.empty() ? "" : ", ") + l;
    fail("--queries ", queries_spec, ": no query in language '", language, "' (the set has: ", langs, ")");
  }

  // Held-out part by id: the language versions of a prompt share an id, so it stays out whichever is evaluated.
  const uint64_t seed = uint64_t(args.integer("--seed", 42));
  const double holdout = args.number("--holdout", 0.2);
  if (holdout < 0 || holdout >= 1) throw UsageError{"--holdout expects a fraction in [0, 1)"};
  std::vector<const eval::EvalItem*> order = items, train_items, held;
  Rng rng(seed ^ 0x5eedu);
  for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[rng.next() % i]);
  const size_t n_held = size_t(std::ceil(holdout * double(order.size())));
  held.assign(order.begin(), order.begin() + long(n_held));
  train_items.assign(order.begin() + long(n_held), order.end());
  if (train_items.empty()) fail("--holdout ", holdout, " leaves no query to train on (", items.size(), " queries)");
  const std::string out = args.required("--out");
  const fs::path heldout_path =
      args.str("--holdout-out", (fs::path(out).parent_path() / fs::path(out).stem()).string() + ".heldout.jsonl");
  if (!held.empty()) write_heldout(heldout_path, held);

  // Contexts.
  const TokenizerConfig tc = read_tokenizer_config(s.model_dir);
  const std::string choice = args.str("--chat-template");
  std::unique_ptr<ChatTemplate> tmpl;
  if (choice != "none") tmpl = std::make_unique<ChatTemplate>(ChatTemplate::select(tc, choice, s.tokenizer.get()));
  ChatRenderOptions render = chat_options_for(tc);
  render.add_generation_prompt = true;
  const std::string teacher_tmpl =
      args.has("--teacher-template") ? read_text_file(args.str("--teacher-template")) : default_teacher_template();
  auto encode = [&](const std::string& text) {
    if (!tmpl) return s.tokenizer->encode(text, EncodeOptions{});
    const nlohmann::ordered_json messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", text}}});
    return encode_chat_prompt(*tmpl, *s.tokenizer, messages, render);
  };
  std::vector<DistillExample> examples;
  for (const eval::EvalItem* it : train_items) {
    DistillExample e;
    e.id = it->id;
    e.student_prompt = encode(it->prompt);
    e.teacher_prompt = encode(fill_teacher_template(teacher_tmpl, *it->english, it->prompt, language));
    examples.push_back(std::move(e));
  }

  DistillOptions o;
  o.on_policy = flag_on(args, "--mode", "on-policy", "off-policy", true);
  o.teacher_live = flag_on(args, "--teacher", "live", "frozen", false);
  parse_divergence(args.str("--divergence", "rkl"), o.loss);
  o.loss.top_k = args.integer("--divergence-top-k", 0);
  o.loss.dpsw = flag_on(args, "--dpsw", "on", "off", true);
  o.loss.teacher_confident = flag_on(args, "--dpsw-teacher", "confident", "entropy", true);
  o.loss.dpsw_k = args.integer("--dpsw-k", 20);
  o.loss.student_on_teacher_argmax = flag_on(args, "--dpsw-student", "teacher-argmax", "sampled", false);
  o.loss.normalize_batch = flag_on(args, "--dpsw-norm", "batch", "none", true);
  if (o.loss.top_k < 0 || o.loss.dpsw_k < 2) throw UsageError{"--divergence-top-k must be >= 0 and --dpsw-k >= 2"};
  o.micro_batch_tokens = args.integer("--micro-batch-tokens", 2048);
  o.sampling.max_new_tokens = args.integer("--max-new-tokens", 128);
  o.sampling.params.temperature = float(args.number("--temperature", 1.0));
  o.sampling.params.top_p = float(args.number("--top-p", 1.0));
  o.sampling.params.top_k = 0;
  const GenerationDefaults gen = load_generation_config(s.model_dir);
  o.sampling.stop_ids = gen.eos_token_ids.empty() ? s.model->config().eos_token_ids : gen.eos_token_ids;
  if (o.sampling.max_new_tokens < 1 || o.micro_batch_tokens < 1) throw UsageError{"--max-new-tokens and --micro-batch-tokens must be positive"};

  const int64_t per_step = args.integer("--queries-per-step", 8);
  if (per_step < 1) throw UsageError{"--queries-per-step must be positive"};
  int64_t steps = steps_flag(args);
  if (steps == 0) steps = args.integer("--epochs", 1) * int64_t((examples.size() + size_t(per_step) - 1) / size_t(per_step));
  const auto plan = plan_distill_steps(examples.size(), per_step, steps, seed);

  json settings = {{"queries", queries_spec},
                   {"language", language},
                   {"holdout", holdout},
                   {"train_queries", examples.size()},
                   {"teacher_template", teacher_tmpl},
                   {"mode", o.on_policy ? "on-policy" : "off-policy"},
                   {"teacher", o.teacher_live ? "live" : "frozen"},
                   {"divergence", divergence_name(o.loss)},
                   {"divergence_top_k", o.loss.top_k},
                   {"dpsw", o.loss.dpsw},
                   {"dpsw_teacher", o.loss.teacher_confident ? "confident" : "entropy"},
                   {"dpsw_k", o.loss.dpsw_k},
                   {"dpsw_student", o.loss.student_on_teacher_argmax ? "teacher-argmax" : "sampled"},
                   {"dpsw_norm", o.loss.normalize_batch ? "batch" : "none"},
                   {"queries_per_step", per_step},
                   {"max_new_tokens", o.sampling.max_new_tokens},
                   {"temperature", o.sampling.params.temperature},
                   {"top_p", o.sampling.params.top_p}};
  TrainingRun run = make_training_run(args, *s.model, "distill", settings, steps);
  std::fprintf(stderr, "tiller distill: %zu %s queries (%zu held out -> %s), %lld steps of %lld, %s, %s, %s, DPSW %s\n",
               examples.size(), language.c_str(), held.size(), held.empty() ? "-" : heldout_path.string().c_str(),
               (long long)steps, (long long)per_step, run.spec.describe().c_str(), o.on_policy ? "on-policy" : "off-policy",
               divergence_name(o.loss).c_str(), o.loss.dpsw ? "on" : "off");
  Trainer trainer(*run.trainable, run.trainer);
  trainer.run([&](int64_t step, TrainingPass& pass) {
    return distill_step(*run.trainable, pass, examples, plan[size_t(step)], o, run.seed * 1000003 + uint64_t(step));
  });
  write_training_outputs(args, run, s.model_dir, "msd", {language},
                         "multilingual self-distillation (" + language + ", " + divergence_name(o.loss) + ", " +
                             (o.on_policy ? "on-policy" : "off-policy") + ", DPSW " + (o.loss.dpsw ? "on" : "off") +
                             ") of " + run.spec.describe() + " on " + queries_spec);
  return 0;
}

const RegisterSubcommand kRegistered{72, distill_command, run_distill};

}  // namespace
}  // namespace tiller::cli
