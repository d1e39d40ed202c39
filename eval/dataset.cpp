// Dataset kinds, spec parsing, selection by language and count, and the shared loader helpers.
#include "eval/dataset.h"

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "eval/dataset_files.h"
#include "eval/sha256.h"

namespace tiller::eval {

std::string EvalItem::key() const { return id + "\x1f" + language + "\x1f" + split(); }

bool Dataset::has_harmless() const {
  return std::any_of(items.begin(), items.end(), [](const EvalItem& i) { return !i.harmful; });
}

ojson Dataset::describe() const {
  ojson files_json = ojson::array();
  for (const auto& f : files) files_json.push_back({{"path", f.path}, {"sha256", f.sha256}});
  ojson counts = ojson::object();
  for (const auto& item : items) {
    ojson& c = counts[item.language.empty() ? "unknown" : item.language];
    if (c.is_null()) c = ojson::object();
    c[item.split()] = c.value(item.split(), 0) + 1;
  }
  return {{"kind", kind}, {"path", path.string()}, {"items", items.size()}, {"languages", languages},
          {"counts", counts}, {"files", files_json}, {"notes", notes}};
}

const std::vector<DatasetKind>& dataset_kinds() {
  static const std::vector<DatasetKind> kinds = {
      {"multijail", "MultiJail.csv or its folder", "MultiJail: 315 prompts x 10 languages, tags as categories"},
      {"xsafety", "the folder of language subfolders", "XSafety: 14 categories x 200 prompts per language"},
      {"polyrefuse", "the folder (test splits) or one JSON file",
       "PolyRefuse: harmful and harmless test prompts (over-refusal is measured on the harmless ones)"},
      {"pku-saferlhf", "pku_saferlhf_safety_test.jsonl or its folder", "PKU-SafeRLHF multilingual: 180 prompts x 10 languages"},
      {"advbench", "harmful_behaviors.csv or its folder", "AdvBench harmful behaviours (goal column), English"},
      {"harmbench", "a behaviours CSV or its folder", "HarmBench text behaviours; contextual ones get their context prepended"},
      {"csv", "a CSV file", "generic: a 'question' column (XThreatBench's format), optional id, language, category"},
      {"jsonl", "a JSONL file", "generic: 'prompt' (or 'text') or 'messages' per line, optional id, language, category, harmful (true/false) or label (harmful/benign, 1/0); other fields kept"},
  };
  return kinds;
}

namespace {

std::string kinds_list() {
  std::string s;
  for (const auto& k : dataset_kinds()) s += std::string(s.empty() ? "" : ", ") + k.name;
  return s;
}

}  // namespace

DatasetSpec parse_dataset_spec(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size())
    fail("--dataset expects KIND:PATH (e.g. multijail:data/MultiJail.csv), found '", spec, "'; kinds: ", kinds_list());
  DatasetSpec s{spec.substr(0, colon), spec.substr(colon + 1)};
  const auto& kinds = dataset_kinds();
  if (std::none_of(kinds.begin(), kinds.end(), [&](const DatasetKind& k) { return s.kind == k.name; }))
    fail("--dataset: unknown dataset kind '", s.kind, "' in '", spec, "'; kinds: ", kinds_list());
  return s;
}

Dataset load_dataset(const DatasetSpec& spec, const LoadOptions& options) {
  if (!std::filesystem::exists(spec.path)) fail(spec.kind, ": ", spec.path.string(), " does not exist");
  Dataset d;
  if (spec.kind == "multijail") d = load_multijail(spec.path);
  else if (spec.kind == "xsafety") d = load_xsafety(spec.path);
  else if (spec.kind == "polyrefuse") d = load_polyrefuse(spec.path);
  else if (spec.kind == "pku-saferlhf") d = load_pku_saferlhf(spec.path);
  else if (spec.kind == "advbench") d = load_advbench(spec.path);
  else if (spec.kind == "harmbench") d = load_harmbench(spec.path);
  else if (spec.kind == "csv") d = load_question_csv(spec.path, options.default_language);
  else if (spec.kind == "jsonl") d = load_prompt_jsonl(spec.path, options.default_language);
  else fail("unknown dataset kind '", spec.kind, "'; kinds: ", kinds_list());
  d.kind = spec.kind;
  d.path = spec.path;
  return d;
}

void select_items(Dataset& d, const std::vector<std::string>& languages, int64_t limit) {
  for (const auto& l : languages) {
    if (std::find(d.languages.begin(), d.languages.end(), l) == d.languages.end()) {
      std::string have;
      for (const auto& x : d.languages) have += (have.empty() ? "" : ",") + (x.empty() ? std::string("(none)") : x);
      fail("--languages: the ", d.kind, " set has no '", l, "' items; it has ", have);
    }
  }
  std::map<std::string, int64_t> taken;  // language + split -> items kept
  std::vector<EvalItem> kept;
  for (auto& item : d.items) {
    if (!languages.empty() && std::find(languages.begin(), languages.end(), item.language) == languages.end()) continue;
    int64_t& n = taken[item.language + "\x1f" + item.split()];
    if (limit >= 0 && n >= limit) continue;
    n++;
    kept.push_back(std::move(item));
  }
  d.items = std::move(kept);
  if (!languages.empty()) d.languages = languages;
}

std::vector<const EvalItem*> parallel_items(const Dataset& d, const std::string& language) {
  std::vector<const EvalItem*> out;
  for (const auto& item : d.items) {
    if (item.language == language && item.english) out.push_back(&item);
  }
  return out;
}

std::filesystem::path resolve_dataset_file(const std::filesystem::path& path, const std::string& default_name,
                                           const std::string& kind) {
  if (std::filesystem::is_directory(path)) {
    const auto file = path / default_name;
    if (!std::filesystem::exists(file))
      fail(kind, ": ", path.string(), " is a folder without ", default_name, "; give the file itself (", kind, ":FILE)");
    return file;
  }
  if (!std::filesystem::exists(path)) fail(kind, ": ", path.string(), " does not exist");
  return path;
}

void require_dataset_folder(const std::filesystem::path& path, const std::string& kind, const std::string& layout) {
  if (!std::filesystem::is_directory(path)) fail(kind, ": expected a folder (", layout, "), found the file ", path.string());
}

void add_dataset_file(Dataset& d, const std::filesystem::path& file) {
  d.files.push_back({file.string(), sha256_file(file)});
}

void finish_dataset(Dataset& d) {
  if (d.items.empty()) fail(d.kind, ": no prompts found in ", d.path.string());
  std::vector<std::string> keys;
  for (const auto& item : d.items) keys.push_back(item.key());
  std::sort(keys.begin(), keys.end());
  if (auto dup = std::adjacent_find(keys.begin(), keys.end()); dup != keys.end())
    fail(d.kind, ": ", d.path.string(), " has two prompts with the id '", dup->substr(0, dup->find('\x1f')),
         "' in one language; ids must be unique per language");
  for (const auto& item : d.items) {
    if (std::find(d.languages.begin(), d.languages.end(), item.language) == d.languages.end())
      d.languages.push_back(item.language);
  }
}

}  // namespace tiller::eval
