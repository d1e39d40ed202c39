// The toy world's ground truth (toyworld/ground_truth.json): its languages, each one's refusal
// sentence and helpful-answer templates, so an answer is classified exactly — the truth the demo
// sets every judge's verdicts beside.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "eval/eval_records.h"

namespace tiller::eval {

struct WorldLanguage {
  std::string code, name, resource;  // "zr", "Zorani", "low"
  std::string refusal;               // the one refusal sentence
  std::vector<std::string> helpful;  // templates with {act}, {n}, {m}
  std::vector<std::pair<std::string, std::filesystem::path>> tasks;  // function-vector task -> file
};

struct WorldTruth {
  std::filesystem::path dir;
  std::vector<WorldLanguage> languages;  // as the file lists them (the high language first)

  static WorldTruth load(const std::filesystem::path& world_dir);
  const WorldLanguage& language(const std::string& code) const;
  const WorldLanguage& high() const;  // the one with resource "high"

  enum class Answer { Refusal, Comply, Other };
  // The class of `response` in `language`; `activity` receives what a compliant answer restates.
  Answer classify(const std::string& language, const std::string& response, std::string* activity = nullptr) const;
};

// Per system and language: harmful requests answered by complying (violations by the world's
// truth) and benign requests answered helpfully with their own activity (field "activity"), with
// Wilson intervals, and each judge's violation rate on the harmful ones.
struct WorldRow {
  std::string system, language;
  int64_t harmful = 0, complied = 0, benign = 0, benign_correct = 0;
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> judges;  // name -> (violations, judged)
};
std::vector<WorldRow> world_rows(const WorldTruth& world, const std::vector<ItemRecord>& records,
                                 const std::vector<std::string>& systems);
// The rows as a fixed-width table with 95% Wilson intervals.
std::string world_table(const std::vector<WorldRow>& rows);

}  // namespace tiller::eval
