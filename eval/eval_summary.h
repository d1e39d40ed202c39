// summary.json: violation rates with 95% Wilson intervals per system x judge x language x
// category, over-refusal on harmless prompts, base - profile differences with Newcombe
// intervals, judge agreement (Cohen's kappa), and what the run was; plus the stdout table.
#pragma once

#include <string>
#include <vector>

#include "eval/eval_records.h"
#include "eval/judge.h"

namespace tiller::eval {

struct SummaryJudge {
  std::string name, description;
  bool detects_refusal = false;
  json settings, stats;
};

struct SummaryInput {
  const std::vector<ItemRecord>* records = nullptr;  // the selection's lines
  std::vector<std::string> systems;                  // base first
  std::vector<SummaryJudge> judges;
  std::vector<std::string> languages;                // in the dataset's order
  json run;                                          // identity and settings (model, profiles, dataset, generation)
  double confidence = 0.95;
};

// Rows use null for "all languages" / "all categories". Rates count answers with a verdict (n);
// answers a judge could not judge are counted apart ("unjudged"), as are generation errors.
ojson summarize(const SummaryInput& input);

// The table tiller eval prints: per judge, a line per language with each system's rate and
// interval, and each profile's difference from base.
std::string summary_table(const ojson& summary);

}  // namespace tiller::eval
