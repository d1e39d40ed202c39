// Head ranking, top-k and group selection, and head-list files.
#include "steering/head_selection.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>

#include "engine/error.h"
#include "engine/json_file.h"

namespace tiller {

ScoreTable average_scores(std::span<const AttributionScores> files) {
  if (files.empty()) fail("no scores files given");
  ScoreTable t;
  const AttributionScores& first = files[0];
  t.n_layers = first.n_layers;
  t.n_heads = first.n_heads;
  t.fingerprint = first.meta("model_fingerprint");
  std::vector<int64_t> counts;
  for (const AttributionScores& f : files) {
    if (f.meta("model_fingerprint") != t.fingerprint || f.n_layers != t.n_layers || f.n_heads != t.n_heads)
      fail("scores files come from different models: ", first.path, " is ", t.fingerprint, " (", t.n_layers, "x",
           t.n_heads, ") but ", f.path, " is ", f.meta("model_fingerprint"), " (", f.n_layers, "x", f.n_heads,
           "). Average only scores of one model.");
    const std::string& lang = f.meta("language");
    auto it = std::find_if(t.languages.begin(), t.languages.end(), [&](const LanguageScores& l) { return l.language == lang; });
    if (it == t.languages.end()) {
      t.languages.push_back({lang, {}, std::vector<float>(f.mean.size(), 0.0f)});
      counts.push_back(0);
      it = t.languages.end() - 1;
    }
    const size_t li = size_t(it - t.languages.begin());
    it->tasks.push_back(f.meta("task"));
    for (size_t i = 0; i < f.mean.size(); i++) it->score[i] += f.mean[i];
    counts[li]++;
  }
  for (size_t li = 0; li < t.languages.size(); li++) {
    for (float& v : t.languages[li].score) v = float(double(v) / double(counts[li]));
  }
  return t;
}

int64_t resolve_head_count(std::optional<int64_t> top_k, std::optional<double> fraction, int64_t n_layers,
                           int64_t n_heads) {
  const int64_t total = n_layers * n_heads;
  if (top_k.has_value() == fraction.has_value()) fail("give exactly one of --top-k K or --fraction F");
  int64_t k = 0;
  if (fraction) {
    if (!(*fraction > 0 && *fraction <= 1)) fail("--fraction must be in (0, 1], found ", *fraction);
    k = std::max<int64_t>(1, std::llround(*fraction * double(total)));
  } else {
    k = *top_k;
  }
  if (k < 1 || k > total)
    fail("--top-k ", k, " is outside [1, ", total, "]: the model has ", n_layers, " layers x ", n_heads, " heads = ",
         total, " heads");
  return k;
}

HeadList rank_heads(std::span<const float> score, int64_t n_layers, int64_t n_heads) {
  TILLER_CHECK(int64_t(score.size()) == n_layers * n_heads);
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
  HeadList out;
  for (int64_t i : order) out.emplace_back(int32_t(i / n_heads), int32_t(i % n_heads));
  return out;
}

HeadList group_heads(std::span<const HeadList> lists, int64_t min_langs, int64_t n_layers, int64_t n_heads,
                     std::span<const float> tie_score) {
  if (min_langs < 1 || min_langs > int64_t(lists.size()))
    fail("--group-min-langs ", min_langs, " must be in [1, ", lists.size(), "] (the number of languages given)");
  std::vector<int64_t> count(size_t(n_layers * n_heads), 0), first_seen(size_t(n_layers * n_heads), -1);
  int64_t seen = 0;
  for (const HeadList& list : lists) {
    for (const auto& [l, h] : list) {
      const size_t i = size_t(l * n_heads + h);
      count[i]++;
      if (first_seen[i] < 0) first_seen[i] = seen++;
    }
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < int64_t(count.size()); i++) {
    if (count[size_t(i)] >= min_langs) keep.push_back(i);
  }
  std::sort(keep.begin(), keep.end(), [&](int64_t a, int64_t b) {
    if (count[size_t(a)] != count[size_t(b)]) return count[size_t(a)] > count[size_t(b)];
    if (!tie_score.empty() && tie_score[size_t(a)] != tie_score[size_t(b)]) return tie_score[size_t(a)] > tie_score[size_t(b)];
    return first_seen[size_t(a)] < first_seen[size_t(b)];
  });
  HeadList out;
  for (int64_t i : keep) out.emplace_back(int32_t(i / n_heads), int32_t(i % n_heads));
  return out;
}

void write_head_list(const std::filesystem::path& path, const HeadList& heads) {
  std::string s = "[";
  for (size_t i = 0; i < heads.size(); i++)
    s += (i ? ", [" : "[") + std::to_string(heads[i].first) + ", " + std::to_string(heads[i].second) + "]";
  s += "]";
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    if (!(out << s)) fail(path.string(), ": cannot write");
  }
  std::filesystem::rename(tmp, path);
}

HeadList read_head_list(const std::filesystem::path& path, int64_t n_layers, int64_t n_heads, bool drop_invalid,
                        const std::function<void(const std::string&)>& warn) {
  const json j = read_json_file(path);
  if (!j.is_array()) fail(path.string(), ": expected a JSON list [[layer, head], …], found a JSON ", j.type_name());
  HeadList out;
  std::vector<char> seen(size_t(n_layers * n_heads), 0);
  for (size_t i = 0; i < j.size(); i++) {
    const json& e = j[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number_integer())
      fail(path.string(), ": entry ", i, " is not [layer, head]: ", e.dump());
    const int64_t l = e[0].get<int64_t>(), h = e[1].get<int64_t>();
    if (l < 0 || l >= n_layers || h < 0 || h >= n_heads) {
      const std::string msg = path.string() + ": entry " + std::to_string(i) + " names head [" + std::to_string(l) +
                              ", " + std::to_string(h) + "], outside the model's " + std::to_string(n_layers) +
                              " layers x " + std::to_string(n_heads) + " heads";
      if (!drop_invalid) fail(msg, ". Use a list made for this model, or drop such entries with a warning (tiller heads --drop-invalid, tiller steer soteria --drop-invalid-heads).");
      if (warn) warn(msg + "; dropped");
      continue;
    }
    if (seen[size_t(l * n_heads + h)]++) fail(path.string(), ": head [", l, ", ", h, "] is listed twice");
    out.emplace_back(int32_t(l), int32_t(h));
  }
  return out;
}

}  // namespace tiller
