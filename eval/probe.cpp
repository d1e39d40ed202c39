// One language through one model's systems: prompt runs -> pooled states -> ClassStates per
// system, layer and class -> the metrics.
#include "eval/probe.h"

#include <algorithm>

#include "engine/error.h"

namespace tiller::eval {

std::vector<ProbeLanguage> tokenize_probe_languages(const Dataset& dataset, const std::vector<std::string>& languages,
                                                    const std::function<std::vector<int32_t>(const EvalItem&)>& tokens,
                                                    int64_t context, bool skip_long) {
  std::vector<ProbeLanguage> out;
  for (const std::string& language : languages) {
    ProbeLanguage l;
    l.language = language;
    for (const EvalItem& item : dataset.items) {
      if (item.language != language) continue;
      std::vector<int32_t> ids = tokens(item);
      if (ids.empty())
        fail(dataset.kind, " item ", item.id, " (", language, ", ", item.split(), ") is empty after tokenization");
      if (int64_t(ids.size()) > context) {
        if (skip_long) {
          l.skipped_long.push_back(item.id);
          continue;
        }
        fail(dataset.kind, " item ", item.id, " (", language, ", ", item.split(), ") has ", ids.size(),
             " tokens, more than the model's context of ", context,
             "; leave it out of the data, or pass --skip-long to leave out every such item");
      }
      (item.harmful ? l.harmful : l.harmless).push_back(std::move(ids));
    }
    out.push_back(std::move(l));
  }
  return out;
}

void check_probe_language(const ProbeLanguage& l, int components, int64_t hidden_size) {
  const int64_t nh = int64_t(l.harmful.size()), ng = int64_t(l.harmless.size());
  if (nh == 0 || ng == 0)
    fail("language '", l.language, "' has only ", nh ? "harmful" : "harmless", " items (", nh, " harmful, ", ng,
         " harmless); the probe compares the two classes: give data with both, or leave the language out");
  if (nh < 2 || ng < 2)
    fail("language '", l.language, "' has ", nh, " harmful and ", ng, " harmless items; each class needs at least 2");
  if (components > hidden_size)
    fail("--pca ", components, " is more components than the model's hidden size ", hidden_size);
  if (nh + ng <= components)
    fail("language '", l.language, "' has ", nh + ng, " items (", nh, " harmful, ", ng, " harmless), fewer than --pca ",
         components, " components + 1: lower --pca or give more items (check --limit)");
}

ProbeLanguageResult probe_language(Model& model, ProjectionDelta* delta, const std::vector<std::string>& systems,
                                   const ProbeLanguage& lang, const ProbeOptions& opt,
                                   const std::function<void(int64_t, int64_t)>& progress) {
  const ModelConfig& c = model.config();
  const int64_t D = c.hidden_size;
  const size_t S = systems.size(), n_layers = opt.tap.layers.size();
  TILLER_CHECK(S >= 1 && n_layers >= 1);
  check_probe_language(lang, opt.separation.components, D);

  // [system][layer slot][class]: class 0 harmful, 1 harmless
  std::vector<std::vector<std::vector<ClassStates>>> states(S);
  for (auto& per_system : states) {
    per_system.resize(n_layers);
    for (auto& per_layer : per_system) {
      per_layer.emplace_back(D, opt.hold_rows);
      per_layer.emplace_back(D, opt.hold_rows);
    }
  }
  const std::vector<uint8_t> keep[2] = {silhouette_sample(int64_t(lang.harmful.size()), opt.silhouette_cap, opt.seed),
                                        silhouette_sample(int64_t(lang.harmless.size()), opt.silhouette_cap, opt.seed)};

  // Runs: each prompt once per system, systems adjacent (one prompt's runs share a forward).
  struct RunOf {
    int cls;
    size_t item;
    size_t system;
  };
  std::vector<PromptRun> runs;
  std::vector<RunOf> what;
  for (int cls = 0; cls < 2; cls++) {
    const auto& items = cls == 0 ? lang.harmful : lang.harmless;
    for (size_t i = 0; i < items.size(); i++) {
      for (size_t s = 0; s < S; s++) {
        runs.push_back({items[i], int32_t(s), s > 0});
        what.push_back({cls, i, s});
      }
    }
  }
  capture_pooled_states(
      model, S > 1 ? delta : nullptr, runs, opt.tap,
      [&](int64_t run, size_t slot, const float* state) {
        const RunOf& w = what[size_t(run)];
        states[w.system][slot][size_t(w.cls)].add(state, keep[w.cls][w.item]);
      },
      [&](int64_t done) {
        if (progress) progress(done, int64_t(runs.size()));
      });

  ProbeLanguageResult out;
  for (size_t s = 0; s < S; s++) {
    for (size_t slot = 0; slot < n_layers; slot++) {
      const int layer = opt.tap.layers[slot];
      ProbeRow row{systems[s], lang.language, layer, tap_point(opt.tap, layer, c.n_layers), {}};
      try {
        row.metrics = separation(states[s][slot][0], states[s][slot][1], opt.separation);
      } catch (const Error& e) {
        fail("system '", systems[s], "', language '", lang.language, "', layer ", layer, ": ", e.what());
      }
      if (std::find(opt.scatter_layers.begin(), opt.scatter_layers.end(), layer) != opt.scatter_layers.end())
        out.scatters.push_back({systems[s], lang.language, layer, std::move(row.metrics.pc2), std::move(row.metrics.pc2_harmful)});
      row.metrics.pc2.clear();
      row.metrics.pc2_harmful.clear();
      out.rows.push_back(std::move(row));
      states[s][slot][0] = ClassStates(1);  // free the layer's states as soon as it is measured
      states[s][slot][1] = ClassStates(1);
    }
  }
  return out;
}

}  // namespace tiller::eval
