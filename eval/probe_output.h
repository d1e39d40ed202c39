// What `tiller probe` writes: metrics.json and metrics.csv (one row per system × language ×
// layer, with Δ against the reference when there is one), and the journal that lets an
// interrupted run resume after the last language it finished.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/json_file.h"
#include "eval/probe.h"

namespace tiller::eval {

inline constexpr const char* kReferenceSystem = "reference";

// One row as metrics.json spells it; `reference` (the reference's row for the same language and
// layer, or null) adds the delta_* fields.
ojson probe_row_json(const ProbeRow& row, const ProbeRow* reference);

// Writes metrics.json ({"settings", "rows"}) and metrics.csv into `dir`, each atomically.
void write_probe_metrics(const std::filesystem::path& dir, const ojson& settings, const std::vector<ProbeRow>& rows);

// dir/probe-journal.jsonl: a first line with the run's settings, then one line per finished
// (system, language) with the model's fingerprint. Opening a journal written under other settings is an Error that names the
// first setting that differs.
class ProbeJournal {
 public:
  ProbeJournal(const std::filesystem::path& dir, const ojson& settings);
  bool done(const std::string& system, const std::string& language) const;
  // Appends every system's rows and pictures of one language, flushed before it returns, with the
  // fingerprint of the model that gave them.
  void record(const ProbeLanguageResult& result, const std::string& model_fingerprint);
  // An Error when a result of `system` read back was measured on another checkpoint (the
  // reference is loaded only after the settings are fixed, so its fingerprint is checked here).
  void check_model(const std::string& system, const std::string& model_fingerprint) const;
  const std::vector<ProbeRow>& rows() const { return rows_; }
  const std::vector<ProbeScatter>& scatters() const { return scatters_; }
  size_t resumed() const { return resumed_; }  // (system, language) pairs read back at open
  std::filesystem::path path() const { return path_; }

 private:
  void take(const ojson& line);
  std::filesystem::path path_;
  std::vector<ProbeRow> rows_;
  std::vector<ProbeScatter> scatters_;
  std::vector<std::pair<std::string, std::string>> done_;
  std::vector<std::string> fingerprints_;  // [done_] the model each was measured on
  size_t resumed_ = 0;
};

}  // namespace tiller::eval
