// metrics.json / metrics.csv and the resume journal.
#include "eval/probe_output.h"

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "engine/jsonl_appender.h"
#include "steering/activation_capture.h"

namespace tiller::eval {

namespace fs = std::filesystem;

namespace {

const char* const kMetricNames[] = {"between_class_ratio", "bhattacharyya", "silhouette"};

double metric(const Separation& m, int i) {
  return i == 0 ? m.between_class_ratio : i == 1 ? m.bhattacharyya : m.silhouette;
}

const ProbeRow* find_reference(const std::vector<ProbeRow>& rows, const ProbeRow& row) {
  if (row.system == kReferenceSystem) return nullptr;
  for (const ProbeRow& r : rows) {
    if (r.system == kReferenceSystem && r.language == row.language && r.layer == row.layer) return &r;
  }
  return nullptr;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

ProbeRow row_from_json(const ojson& j) {
  ProbeRow r;
  r.system = j.at("system");
  r.language = j.at("language");
  r.layer = j.at("layer");
  const auto point = parse_hook_point(j.at("point").get<std::string>());
  if (!point) fail("probe journal: unknown point ", j.at("point").dump());
  r.point = *point;
  Separation& m = r.metrics;
  m.n_harmful = j.at("n_harmful");
  m.n_harmless = j.at("n_harmless");
  m.between_class_ratio = j.at("between_class_ratio");
  m.bhattacharyya = j.at("bhattacharyya");
  m.silhouette = j.at("silhouette");
  m.ridge = j.at("ridge");
  m.explained_variance = j.at("explained_variance");
  m.silhouette_points = j.at("silhouette_points");
  return r;
}

// The first key whose value differs between two settings objects ("" when equal).
std::string first_difference(const ojson& a, const ojson& b) {
  for (const auto& [k, v] : a.items()) {
    if (!b.contains(k) || b[k] != v) return k;
  }
  for (const auto& [k, v] : b.items()) {
    if (!a.contains(k)) return k;
  }
  return "";
}

}  // namespace

ojson probe_row_json(const ProbeRow& row, const ProbeRow* reference) {
  const Separation& m = row.metrics;
  ojson j = {{"system", row.system},
            {"language", row.language},
            {"layer", row.layer},
            {"point", hook_point_name(row.point)},
            {"n_harmful", m.n_harmful},
            {"n_harmless", m.n_harmless},
            {"between_class_ratio", m.between_class_ratio},
            {"bhattacharyya", m.bhattacharyya},
            {"silhouette", m.silhouette},
            {"ridge", m.ridge},
            {"explained_variance", m.explained_variance},
            {"silhouette_points", m.silhouette_points}};
  if (reference) {
    for (int i = 0; i < 3; i++)
      j[std::string("delta_") + kMetricNames[i]] = metric(m, i) - metric(reference->metrics, i);
  }
  return j;
}

void write_probe_metrics(const fs::path& dir, const ojson& settings, const std::vector<ProbeRow>& rows) {
  const bool has_reference =
      std::any_of(rows.begin(), rows.end(), [](const ProbeRow& r) { return r.system == kReferenceSystem; });
  ojson list = ojson::array();
  for (const ProbeRow& r : rows) list.push_back(probe_row_json(r, find_reference(rows, r)));
  ojson doc = {{"settings", settings}, {"rows", list}};
  write_text_file(dir / "metrics.json", doc.dump(1) + "\n");

  std::vector<std::string> columns = {"system",        "language",   "layer",     "point",
                                      "n_harmful",     "n_harmless", "between_class_ratio",
                                      "bhattacharyya", "silhouette", "ridge",
                                      "explained_variance", "silhouette_points"};
  if (has_reference) {
    for (const char* m : kMetricNames) columns.push_back(std::string("delta_") + m);
  }
  std::string csv;
  for (size_t i = 0; i < columns.size(); i++) csv += (i ? "," : "") + columns[i];
  csv += "\n";
  for (const ojson& j : list) {
    for (size_t i = 0; i < columns.size(); i++) {
      const ojson* v = j.contains(columns[i]) ? &j[columns[i]] : nullptr;
      csv += i ? "," : "";
      if (v && v->is_string()) csv += csv_field(v->get<std::string>());
      else if (v) csv += v->dump();  // numbers in their shortest exact form
    }
    csv += "\n";
  }
  write_text_file(dir / "metrics.csv", csv);
}

ProbeJournal::ProbeJournal(const fs::path& dir, const ojson& settings) : path_(dir / "probe-journal.jsonl") {
  fs::create_directories(dir);
  // Complete lines only: a line cut short by an interruption is cut off, and what it held redone.
  std::vector<std::string> lines;
  { JsonlAppender cut_torn_tail(path_, [&](std::string_view line) { lines.emplace_back(line); }); }
  if (lines.empty()) write_text_file(path_, ojson({{"settings", settings}}).dump() + "\n");
  for (size_t i = 0; i < lines.size(); i++) {
    ojson j;
    try {
      j = ojson::parse(lines[i]);
    } catch (const ojson::parse_error& e) {
      fail(path_.string(), ":", i + 1, ": malformed JSON (", e.what(), "); give another --out, or delete the journal to start over");
    }
    if (i > 0) {
      take(j);
      resumed_++;
      continue;
    }
    if (!j.is_object() || !j.contains("settings"))
      fail(path_.string(), ": not a probe journal (its first line has no \"settings\"); give another --out");
    const std::string diff = first_difference(j["settings"], settings);
    if (!diff.empty())
      fail(path_.string(), ": this folder holds a probe run with other settings (", diff, ": ",
           j["settings"].value(diff, ojson()).dump(), " there, ", settings.value(diff, ojson()).dump(),
           " now); give another --out, or delete the journal to start over");
  }
}

bool ProbeJournal::done(const std::string& system, const std::string& language) const {
  return std::find(done_.begin(), done_.end(), std::make_pair(system, language)) != done_.end();
}

void ProbeJournal::take(const ojson& j) {
  for (const ojson& r : j.at("rows")) rows_.push_back(row_from_json(r));
  for (const ojson& s : j.at("scatters")) {
    ProbeScatter sc{s.at("system"), s.at("language"), s.at("layer"), s.at("xy").get<std::vector<float>>(),
                    s.at("harmful").get<std::vector<uint8_t>>()};
    scatters_.push_back(std::move(sc));
  }
  done_.emplace_back(j.at("system"), j.at("language"));
  fingerprints_.push_back(j.value("model_fingerprint", ""));
}

void ProbeJournal::check_model(const std::string& system, const std::string& model_fingerprint) const {
  for (size_t i = 0; i < done_.size(); i++) {
    if (done_[i].first == system && fingerprints_[i] != model_fingerprint)
      fail(path_.string(), ": its '", system, "' results were measured on another checkpoint (", fingerprints_[i],
           " there, ", model_fingerprint, " now); give another --out, or delete the journal to start over");
  }
}

void ProbeJournal::record(const ProbeLanguageResult& result, const std::string& model_fingerprint) {
  std::map<std::string, ojson> by_system;  // one line per system
  std::vector<std::string> order;
  for (const ProbeRow& r : result.rows) {
    ojson& line = by_system[r.system];
    if (line.is_null()) {
      line = {{"system", r.system},
              {"language", r.language},
              {"model_fingerprint", model_fingerprint},
              {"rows", ojson::array()},
              {"scatters", ojson::array()}};
      order.push_back(r.system);
    }
    line["rows"].push_back(probe_row_json(r, nullptr));
  }
  for (const ProbeScatter& s : result.scatters)
    by_system.at(s.system)["scatters"].push_back(
        {{"system", s.system}, {"language", s.language}, {"layer", s.layer}, {"xy", s.xy}, {"harmful", s.harmful}});
  JsonlAppender out(path_);
  for (const std::string& system : order) {
    if (done(system, by_system[system]["language"])) continue;  // recorded before an interruption
    out.append(by_system[system].dump());
    take(by_system[system]);
  }
}

}  // namespace tiller::eval
