// Safety evaluation sets as one list of items: MultiJail, XSafety, PolyRefuse, PKU-SafeRLHF
// (multilingual), AdvBench, HarmBench, and generic CSV / JSONL files. The path is always given;
// nothing is fetched. Each loader keeps the set's quirks out of its items (BOMs, CRLF, misspelled
// files, trailing empty columns) and refuses what it cannot read with the file and line.
//
// Items keep the set's id (shared by the language versions of one prompt), language, harm
// categories and source; parallel sets also carry the English version of each prompt, which is
// what distillation (METHODS §5) reads as the teacher's query.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/json_file.h"

namespace tiller::eval {

using ojson = nlohmann::ordered_json;

struct EvalItem {
  std::string id;                       // the set's id; the language versions of one prompt share it
  std::string language;                 // ISO 639-1 ("en", "bn", ...); "" when the file does not say
  std::vector<std::string> categories;  // harm categories (MultiJail rows may have several); empty: none
  std::string source;                   // where it came from, e.g. "multijail:anthropics", "xsafety:ru/Insult.csv"
  bool harmful = true;                  // false: a harmless prompt (refusing it is over-refusal)
  std::string prompt;                   // the user's text; for a conversation, its last user message
  ojson messages;                       // a whole conversation ([{role, content}], from JSONL "messages"); null otherwise
  std::optional<std::string> english;   // the same prompt in English, when the set is parallel
  ojson extra = ojson::object();        // fields passed through (JSONL "label", HarmBench's functional category, ...)

  const char* split() const { return harmful ? "harmful" : "harmless"; }
  // id, language and split: unique within a dataset.
  std::string key() const;
};

struct DatasetFile {
  std::string path;
  std::string sha256;
};

struct Dataset {
  std::string kind;                     // "multijail", "xsafety", ...
  std::filesystem::path path;           // as given
  std::vector<EvalItem> items;          // in the set's order: by language, then row
  std::vector<std::string> languages;   // every language the set has, in its own order
  std::vector<DatasetFile> files;       // every file read, with its checksum
  std::vector<std::string> notes;       // quirks met and how they were handled (for the log and summary)

  bool has_harmless() const;
  ojson describe() const;  // kind, path, files + checksums, counts per language and split
};

struct DatasetSpec {
  std::string kind;
  std::filesystem::path path;
};

// The kinds load_dataset knows, with a one-line description each (for --help and errors).
struct DatasetKind {
  const char* name;
  const char* path_hint;
  const char* description;
};
const std::vector<DatasetKind>& dataset_kinds();

// "KIND:PATH" (e.g. "multijail:data/MultiJail.csv"); an unknown kind or a missing ':' is an Error
// that lists the kinds.
DatasetSpec parse_dataset_spec(const std::string& spec);

struct LoadOptions {
  // Language of csv:/jsonl: rows that name none ("" leaves it unknown).
  std::string default_language;
};

// Loads the whole set (every language). A file or folder that is missing, empty, or lacks a
// column the kind needs is an Error saying what was expected and found.
Dataset load_dataset(const DatasetSpec& spec, const LoadOptions& options = {});

// Keeps the items of `languages` (all when empty) and at most `limit` per language and split
// (no limit when < 0), in the set's order. A language the set lacks is an Error listing the ones
// it has.
void select_items(Dataset& dataset, const std::vector<std::string>& languages, int64_t limit);

// Parallel access: the items of `language` that have an English version, in the set's order.
std::vector<const EvalItem*> parallel_items(const Dataset& dataset, const std::string& language);

// One loader per kind (eval/datasets_*.cpp); load_dataset dispatches to them. `path` is a file or
// the folder that holds the set's usual file names.
Dataset load_multijail(const std::filesystem::path& path);
Dataset load_xsafety(const std::filesystem::path& path);
// A folder loads the test splits (harmful and harmless); a single file loads that file.
Dataset load_polyrefuse(const std::filesystem::path& path);
Dataset load_pku_saferlhf(const std::filesystem::path& path);
Dataset load_advbench(const std::filesystem::path& path);
Dataset load_harmbench(const std::filesystem::path& path);
Dataset load_question_csv(const std::filesystem::path& path, const std::string& default_language);
Dataset load_prompt_jsonl(const std::filesystem::path& path, const std::string& default_language);

}  // namespace tiller::eval
