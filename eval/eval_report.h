// report.html of tiller eval: one self-contained page (eval/report_html.h) with violation rates
// by language for each system side by side with Wilson interval bars, base - profile differences,
// the per-category breakdown, over-refusal on harmless prompts, judge agreement, and a sample of
// answers per language.
#pragma once

#include <filesystem>
#include <vector>

#include "eval/eval_records.h"

namespace tiller::eval {

void write_eval_report(const std::filesystem::path& path, const ojson& summary, const std::vector<ItemRecord>& records,
                       int answers_per_language = 3);

}  // namespace tiller::eval
