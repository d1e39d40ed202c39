// `tiller probe` (METHODS §6): per language × layer × system, how far a language's harmful and
// harmless prompts separate in the model's hidden states. A system is the model as loaded, one
// of its steering profiles (applied per row, so all share each forward), or a reference model;
// Δ = metric(system) − metric(reference) is the alignment-induced separation.
//
// One language at a time: its prompts run once per system, every state is reduced as it arrives
// (ClassStates), and the language's rows are final before the next starts, so a run can resume
// language by language (ProbeJournal, eval/probe_output.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "eval/probe_capture.h"
#include "eval/probe_stats.h"

namespace tiller::eval {

struct ProbeLanguage {
  std::string language;
  std::vector<std::vector<int32_t>> harmful, harmless;  // tokenized prompts [items][T]
  std::vector<std::string> skipped_long;                // ids of items left out: longer than the context
};

struct ProbeOptions {
  StateTap tap;
  SeparationOptions separation;
  int64_t silhouette_cap = 500;     // items per class the silhouette uses (seeded subsample above it)
  uint64_t seed = 0;                // the subsample's seed
  std::vector<int> scatter_layers;  // layers whose 2-D PCA pictures are kept (a subset of tap.layers)
  int64_t hold_rows = -1;           // ClassStates' hold threshold (-1: 2·D)
};

struct ProbeRow {
  std::string system, language;
  int layer = 0;
  HookPoint point = HookPoint::ResidPost;  // ResidPost, or FinalNorm for the last layer with --norm post
  Separation metrics;                      // pc2 left empty (pictures are in ProbeScatter)
};

struct ProbeScatter {
  std::string system, language;
  int layer = 0;
  std::vector<float> xy;         // [m, 2] the silhouette's items on the first two PCA components
  std::vector<uint8_t> harmful;  // [m]
};

struct ProbeLanguageResult {
  std::vector<ProbeRow> rows;          // [systems × layers], systems outermost
  std::vector<ProbeScatter> scatters;  // [systems × scatter layers]
};

// The dataset's items of each language as prompt tokens (`tokens`: e.g. a PromptBuilder's). An
// empty item is an Error naming it; so is one longer than `context` tokens, unless `skip_long`
// (then it is left out and counted: truncating would probe another prompt).
std::vector<ProbeLanguage> tokenize_probe_languages(const Dataset& dataset, const std::vector<std::string>& languages,
                                                    const std::function<std::vector<int32_t>(const EvalItem&)>& tokens,
                                                    int64_t context, bool skip_long = false);

// Refuses what cannot give metrics, before any forward: a class with fewer than 2 items, fewer
// items than PCA components + 1, more components than the hidden size; names the language and
// says what to do.
void check_probe_language(const ProbeLanguage& language, int components, int64_t hidden_size);

// Runs one model's systems (systems[a]: the name of adapter a; 0 is the model as loaded) over
// one language. delta: the ProfileSet that adapters 1.. name (null when there is only adapter 0).
// progress(prompt runs done, total) as forwards finish.
ProbeLanguageResult probe_language(Model& model, ProjectionDelta* delta, const std::vector<std::string>& systems,
                                   const ProbeLanguage& language, const ProbeOptions& options,
                                   const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace tiller::eval
