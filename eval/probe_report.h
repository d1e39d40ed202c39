// report.html for `tiller probe`: a summary table at the deepest layer, per-layer curves of each
// metric (one line per language, one chart per system and metric, and the Δ against the
// reference), and 2-D PCA scatters of harmful vs harmless items at the chosen layers, languages
// side by side. One self-contained file (eval/report_html.h).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/json_file.h"
#include "eval/probe.h"

namespace tiller::eval {

struct ProbeReportInput {
  std::string title;                  // e.g. "tiller probe: toy-base"
  ojson settings;                      // shown as the run's description
  std::vector<std::string> systems;   // in the order to show them (the reference last)
  std::vector<std::string> languages;
  const std::vector<ProbeRow>* rows = nullptr;
  const std::vector<ProbeScatter>* scatters = nullptr;
};

// The page as a string, and written atomically to `path`.
std::string probe_report_html(const ProbeReportInput& input);
void write_probe_report(const std::filesystem::path& path, const ProbeReportInput& input);

}  // namespace tiller::eval
