// The multilingual sets: MultiJail, XSafety, PolyRefuse and PKU-SafeRLHF (MLC's translations).
#include <algorithm>
#include <array>
#include <map>

#include "engine/error.h"
#include "eval/csv_reader.h"
#include "eval/dataset.h"
#include "eval/dataset_files.h"

namespace tiller::eval {

namespace fs = std::filesystem;

namespace {

// MultiJail's `tags` cell is a Python list literal of strings: ['a', "b's"].
std::vector<std::string> parse_python_string_list(const std::string& s, const std::string& where) {
  std::vector<std::string> out;
  size_t i = s.find_first_not_of(" \t");
  if (i == std::string::npos || s[i] != '[') fail(where, ": expected a list like ['Theft'], found '", s, "'");
  i++;
  while (true) {
    i = s.find_first_not_of(" \t,", i);
    if (i == std::string::npos) fail(where, ": the list '", s, "' never closes");
    if (s[i] == ']') break;
    const char q = s[i];
    if (q != '\'' && q != '"') fail(where, ": expected a quoted string in '", s, "' at offset ", i);
    std::string item;
    for (i++; i < s.size() && s[i] != q; i++) {
      if (s[i] == '\\' && i + 1 < s.size()) i++;
      item += s[i];
    }
    if (i >= s.size()) fail(where, ": a string in '", s, "' never closes");
    out.push_back(std::move(item));
    i++;
  }
  return out;
}

}  // namespace

Dataset load_multijail(const fs::path& path) {
  Dataset d;
  d.kind = "multijail";
  d.path = path;
  const fs::path file = resolve_dataset_file(path, "MultiJail.csv", d.kind);
  const CsvTable t(file);
  add_dataset_file(d, file);
  const size_t id = t.require("id", "MultiJail's prompt id"), source = t.require("source", "where the prompt came from"),
               tags = t.require("tags", "the harm categories");
  const size_t en = t.require("en", "the English prompt");
  // Every column after `tags` is a language.
  std::vector<std::pair<std::string, size_t>> languages;
  for (size_t c = tags + 1; c < t.header().size(); c++) languages.emplace_back(t.header()[c], c);
  for (const auto& [lang, col] : languages) {
    for (const auto& row : t.rows()) {
      EvalItem item;
      item.id = t.at(row, id);
      item.language = lang;
      item.categories = parse_python_string_list(t.at(row, tags), t.origin() + ":" + std::to_string(row.line));
      item.source = "multijail:" + t.at(row, source);
      item.prompt = t.at(row, col);
      item.english = t.at(row, en);
      if (item.prompt.empty())
        fail(t.origin(), ":", row.line, ": the '", lang, "' cell of prompt ", item.id, " is empty");
      d.items.push_back(std::move(item));
    }
  }
  finish_dataset(d);
  return d;
}

namespace {

// XSafety's 14 categories. Upstream names the files inconsistently (`<C>.csv`, `<C>_n.csv`,
// `Crimes_And_Illegal_Activities_en.csv`, and ru's `Crimes_And_Illegal_Activitie.csv`); a file
// belongs to a category when its stem, less a `_n`/`_en` suffix, is the category's name or that
// name missing its last letter.
constexpr std::array<const char*, 14> kXSafetyCategories = {
    "Crimes_And_Illegal_Activities", "Ethics_And_Morality",     "Goal_Hijacking",
    "Inquiry_With_Unsafe_Opinion",   "Insult",                  "Mental_Health",
    "Physical_Harm",                 "Privacy_And_Property",    "Prompt_Leaking",
    "Reverse_Exposure",              "Role_Play_Instruction",   "Unfairness_And_Discrimination",
    "Unsafe_Instruction_Topic",      "commonsense"};

std::string xsafety_language(const std::string& folder) { return folder == "sp" ? "es" : folder; }

bool xsafety_file_is(const std::string& stem_in, const std::string& category) {
  std::string stem = stem_in;
  for (const char* suffix : {"_en", "_n"}) {
    if (stem.ends_with(suffix)) {
      stem.resize(stem.size() - std::string(suffix).size());
      break;
    }
  }
  return stem == category || (stem.size() + 1 == category.size() && category.starts_with(stem));
}

// Column 0 of a headerless, one-prompt-per-row file (some carry empty trailing columns).
std::vector<std::string> xsafety_rows(const fs::path& file) {
  std::vector<std::string> out;
  for (auto& r : read_csv_file(file)) out.push_back(r.fields.empty() ? std::string() : std::move(r.fields[0]));
  return out;
}

}  // namespace

Dataset load_xsafety(const fs::path& path) {
  Dataset d;
  d.kind = "xsafety";
  d.path = path;
  require_dataset_folder(path, d.kind, "one subfolder per language: ar/, bn/, en/, ...");
  std::vector<std::string> folders;
  for (const auto& e : fs::directory_iterator(path)) {
    if (e.is_directory()) folders.push_back(e.path().filename().string());
  }
  std::sort(folders.begin(), folders.end());
  if (folders.empty()) fail("xsafety: ", path.string(), " has no language subfolders (expected ar/, bn/, en/, ...)");

  // folder -> category -> rows
  std::map<std::string, std::map<std::string, std::vector<std::string>>> rows;
  for (const auto& folder : folders) {
    if (folder != xsafety_language(folder)) d.notes.push_back(folder + "/ read as language " + xsafety_language(folder));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(path / folder)) {
      if (e.is_regular_file() && e.path().extension() == ".csv") files.push_back(e.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    std::vector<bool> used(files.size(), false);
    for (const char* category : kXSafetyCategories) {
      std::vector<size_t> matches;
      for (size_t i = 0; i < files.size(); i++) {
        if (xsafety_file_is(fs::path(files[i]).stem().string(), category)) matches.push_back(i);
      }
      if (matches.empty())
        fail("xsafety: ", (path / folder).string(), " has no file for the category ", category,
             " (expected ", category, ".csv or ", category, "_n.csv)");
      if (matches.size() > 1)
        fail("xsafety: ", (path / folder).string(), " has several files for ", category, ": ", files[matches[0]],
             " and ", files[matches[1]]);
      used[matches[0]] = true;
      const fs::path file = path / folder / files[matches[0]];
      add_dataset_file(d, file);
      rows[folder][category] = xsafety_rows(file);
      if (files[matches[0]] != std::string(category) + ".csv" && !fs::path(files[matches[0]]).stem().string().ends_with("_n"))
        d.notes.push_back(folder + "/" + files[matches[0]] + " read as " + category);
    }
    for (size_t i = 0; i < files.size(); i++) {
      if (!used[i]) d.notes.push_back(folder + "/" + files[i] + " skipped: not one of XSafety's 14 category files");
    }
  }
  const bool have_en = rows.count("en") != 0;
  for (const auto& folder : folders) {
    for (const char* category : kXSafetyCategories) {
      const auto& prompts = rows[folder][category];
      const std::vector<std::string>* english = have_en ? &rows["en"][category] : nullptr;
      if (english && english->size() != prompts.size())
        d.notes.push_back(folder + "/" + category + " has " + std::to_string(prompts.size()) + " rows but en/ has " +
                          std::to_string(english->size()) + ": no English versions for it");
      for (size_t r = 0; r < prompts.size(); r++) {
        EvalItem item;
        item.id = std::string(category) + "-" + std::to_string(r);
        item.language = xsafety_language(folder);
        item.categories = {category};
        item.source = "xsafety:" + folder + "/" + category;
        item.prompt = prompts[r];
        if (english && english->size() == prompts.size()) item.english = (*english)[r];
        d.items.push_back(std::move(item));
      }
    }
  }
  finish_dataset(d);
  return d;
}

namespace {

// PolyRefuse file names: {harmful,harmless}_{test,train,val}_translated_<lang>.json
struct PolyRefuseName {
  bool harmful = true;
  std::string split, language;
};

std::optional<PolyRefuseName> polyrefuse_name(const std::string& filename) {
  const std::string stem = fs::path(filename).stem().string();
  PolyRefuseName n;
  std::string rest;
  if (stem.starts_with("harmful_")) rest = stem.substr(8);
  else if (stem.starts_with("harmless_")) rest = stem.substr(9), n.harmful = false;
  else return std::nullopt;
  const size_t t = rest.find("_translated_");
  if (t == std::string::npos || fs::path(filename).extension() != ".json") return std::nullopt;
  n.split = rest.substr(0, t);
  n.language = rest.substr(t + 12);
  return n;
}

void load_polyrefuse_file(Dataset& d, const fs::path& file, const PolyRefuseName& name) {
  const json rows = read_json_file(file);
  if (!rows.is_array()) fail(file.string(), ": expected a JSON list of {instruction, ...}, found ", rows.type_name());
  add_dataset_file(d, file);
  for (size_t r = 0; r < rows.size(); r++) {
    const json& row = rows[r];
    if (!row.is_object() || !row.contains("instruction") || !row["instruction"].is_string())
      fail(file.string(), ": entry ", r, " has no \"instruction\" string");
    EvalItem item;
    item.id = std::string(name.harmful ? "harmful" : "harmless") + "-" + std::to_string(r);
    item.language = name.language;
    item.harmful = name.harmful;
    item.source = "polyrefuse:" + file.filename().string();
    // Test files hold the English `instruction` and its translation; train/val files hold the
    // translation alone, in `instruction`.
    if (row.contains("instruction_translated") && row["instruction_translated"].is_string()) {
      item.prompt = row["instruction_translated"];
      item.english = row["instruction"].get<std::string>();
    } else {
      item.prompt = row["instruction"];
      if (name.language == "en") item.english = item.prompt;
    }
    if (row.contains("category") && row["category"].is_string()) item.categories = {row["category"]};
    d.items.push_back(std::move(item));
  }
}

}  // namespace

Dataset load_polyrefuse(const fs::path& path) {
  Dataset d;
  d.kind = "polyrefuse";
  d.path = path;
  if (fs::is_directory(path)) {
    std::vector<std::pair<PolyRefuseName, fs::path>> files;
    for (const auto& e : fs::directory_iterator(path)) {
      if (auto n = polyrefuse_name(e.path().filename().string()); n && n->split == "test") files.emplace_back(*n, e.path());
    }
    if (files.empty())
      fail("polyrefuse: ", path.string(), " has no {harmful,harmless}_test_translated_<lang>.json files");
    // Harmful before harmless, languages alphabetically.
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
      return std::make_pair(!a.first.harmful, a.first.language) < std::make_pair(!b.first.harmful, b.first.language);
    });
    for (const auto& [n, f] : files) load_polyrefuse_file(d, f, n);
  } else {
    const auto n = polyrefuse_name(path.filename().string());
    if (!n)
      fail("polyrefuse: ", path.string(), " is not named {harmful,harmless}_{test,train,val}_translated_<lang>.json, "
           "so its split and language are unknown");
    load_polyrefuse_file(d, path, *n);
  }
  finish_dataset(d);
  return d;
}

Dataset load_pku_saferlhf(const fs::path& path) {
  Dataset d;
  d.kind = "pku-saferlhf";
  d.path = path;
  const fs::path file = resolve_dataset_file(path, "pku_saferlhf_safety_test.jsonl", d.kind);
  const std::string text = read_text_file(file);
  add_dataset_file(d, file);
  // One list per language in the order the first line names them: "prompt" is English, "prompt_xx" language xx.
  std::vector<std::string> languages;
  std::map<std::string, std::vector<EvalItem>> by_language;
  size_t start = 0;
  int64_t line_no = 0, row = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    line_no++;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ojson j;
    try {
      j = ojson::parse(line);
    } catch (const ojson::parse_error& e) {
      fail(file.string(), ":", line_no, ": malformed JSON: ", e.what());
    }
    if (!j.is_object() || !j.contains("prompt")) fail(file.string(), ":", line_no, ": no \"prompt\" field");
    std::string english;
    for (const auto& [key, value] : j.items()) {
      if (key != "prompt" && !key.starts_with("prompt_")) continue;
      const std::string lang = key == "prompt" ? "en" : key.substr(7);
      // [{"from": "human", "value": "..."}]: a ShareGPT list with one turn.
      if (!value.is_array() || value.empty() || !value[0].is_object() || !value[0].contains("value") ||
          !value[0]["value"].is_string())
        fail(file.string(), ":", line_no, ": \"", key, "\" is not a [{\"from\": \"human\", \"value\": ...}] list");
      EvalItem item;
      item.id = std::to_string(row);
      item.language = lang;
      item.source = "pku-saferlhf";
      item.prompt = value[0]["value"];
      if (lang == "en") english = item.prompt;
      if (!by_language.count(lang)) languages.push_back(lang);
      by_language[lang].push_back(std::move(item));
    }
    for (const auto& lang : languages) {
      auto& items = by_language[lang];
      if (int64_t(items.size()) != row + 1)
        fail(file.string(), ":", line_no, ": no \"", lang == "en" ? "prompt" : "prompt_" + lang, "\" on this line");
      if (!english.empty()) items.back().english = english;
    }
    row++;
  }
  for (const auto& lang : languages) {
    for (auto& item : by_language[lang]) d.items.push_back(std::move(item));
  }
  finish_dataset(d);
  return d;
}

}  // namespace tiller::eval
