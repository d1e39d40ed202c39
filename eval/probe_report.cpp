// The probe's HTML report, built from eval/report_html.h's charts and tables.
#include "eval/probe_report.h"

#include <algorithm>
#include <map>

#include "engine/error.h"
#include "eval/probe_output.h"
#include "eval/report_html.h"

namespace tiller::eval {

namespace {

struct Metric {
  const char* key;
  const char* label;
  double (*get)(const Separation&);
};

const Metric kMetrics[] = {
    {"between_class_ratio", "between-class variance ratio", [](const Separation& m) { return m.between_class_ratio; }},
    {"bhattacharyya", "Bhattacharyya distance", [](const Separation& m) { return m.bhattacharyya; }},
    {"silhouette", "silhouette", [](const Separation& m) { return m.silhouette; }},
};

const ProbeRow* find_row(const std::vector<ProbeRow>& rows, const std::string& system, const std::string& language, int layer) {
  for (const ProbeRow& r : rows) {
    if (r.system == system && r.language == language && r.layer == layer) return &r;
  }
  return nullptr;
}

std::string chart_id(std::string s) {
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
  }
  return s;
}

// One chart per metric for `system`: x = layer, one line per language. With `reference`, the
// line is metric(system) − metric(reference).
void layer_curves(html::HtmlReport& page, const ProbeReportInput& in, const std::vector<int>& layers,
                  const std::string& system, bool delta) {
  for (const Metric& m : kMetrics) {
    html::LineChart chart;
    chart.id = chart_id((delta ? "delta-" : "curve-") + system + "-" + m.key);
    chart.title = delta ? "Δ " + std::string(m.label) + ": " + system + " − reference" : std::string(m.label) + ": " + system;
    chart.x.label = "layer (residual stream after the block)";
    chart.x.integer = true;
    chart.y.label = delta ? std::string("Δ ") + m.key : m.key;
    for (const std::string& language : in.languages) {
      html::Series s;
      s.name = language;
      for (int layer : layers) {
        const ProbeRow* r = find_row(*in.rows, system, language, layer);
        const ProbeRow* ref = delta ? find_row(*in.rows, kReferenceSystem, language, layer) : nullptr;
        s.x.push_back(layer);
        s.y.push_back(!r || (delta && !ref) ? html::kMissing : m.get(r->metrics) - (ref ? m.get(ref->metrics) : 0.0));
      }
      chart.series.push_back(std::move(s));
    }
    page.html(html::svg_line_chart(chart));
  }
}

}  // namespace

std::string probe_report_html(const ProbeReportInput& in) {
  TILLER_CHECK(in.rows && in.scatters);
  const std::vector<ProbeRow>& rows = *in.rows;
  std::vector<int> layers;
  for (const ProbeRow& r : rows) layers.push_back(r.layer);
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  if (layers.empty()) fail("probe report: no rows to show");
  const bool has_reference = std::find(in.systems.begin(), in.systems.end(), kReferenceSystem) != in.systems.end();

  html::HtmlReport page(in.title);
  page.paragraph(
      "How far each language's harmful and harmless prompts separate in the model's hidden states, per layer "
      "(METHODS §6): the states are projected on their top principal components, then the between-class variance "
      "ratio R, the Gaussian Bhattacharyya distance D_B and the silhouette S measure the separation. Higher is more "
      "separated." +
      std::string(has_reference ? " Δ = metric(system) − metric(reference): the separation the system adds over the reference "
                                  "model (alignment-induced separation)."
                                : ""));
  page.open_details("Settings");
  page.preformatted(in.settings.dump(2));
  page.close_details();

  const int deepest = layers.back();
  page.heading("At layer " + std::to_string(deepest));
  html::Table t;
  t.header = {"language", "system", "n harmful", "n harmless", "R", "D_B", "S"};
  if (has_reference) t.header.insert(t.header.end(), {"Δ R", "Δ D_B", "Δ S"});
  for (size_t i = 0; i < t.header.size(); i++) t.numeric.push_back(i >= 2);
  for (const std::string& language : in.languages) {
    for (const std::string& system : in.systems) {
      const ProbeRow* r = find_row(rows, system, language, deepest);
      if (!r) continue;
      const ProbeRow* ref = system == kReferenceSystem ? nullptr : find_row(rows, kReferenceSystem, language, deepest);
      std::vector<std::string> cells = {language, system, std::to_string(r->metrics.n_harmful),
                                        std::to_string(r->metrics.n_harmless)};
      for (const Metric& m : kMetrics) cells.push_back(html::format_number(m.get(r->metrics), 4));
      if (has_reference) {
        for (const Metric& m : kMetrics)
          cells.push_back(ref ? html::format_number(m.get(r->metrics) - m.get(ref->metrics), 4) : "");
      }
      t.rows.push_back(std::move(cells));
    }
  }
  t.caption = "R in [0, 1], D_B ≥ 0, S in [−1, 1], on the top principal components of each language's states";
  page.table(t);

  page.heading("Per-layer curves");
  for (const std::string& system : in.systems) {
    page.heading(system, 3);
    layer_curves(page, in, layers, system, false);
  }
  if (has_reference) {
    page.heading("Alignment-induced separation (Δ against the reference)");
    for (const std::string& system : in.systems) {
      if (system == kReferenceSystem) continue;
      page.heading(system + " − reference", 3);
      layer_curves(page, in, layers, system, true);
    }
  }

  std::vector<int> scatter_layers;
  for (const ProbeScatter& s : *in.scatters) scatter_layers.push_back(s.layer);
  std::sort(scatter_layers.begin(), scatter_layers.end());
  scatter_layers.erase(std::unique(scatter_layers.begin(), scatter_layers.end()), scatter_layers.end());
  for (int layer : scatter_layers) {
    page.heading("PCA at layer " + std::to_string(layer) + ": harmful vs harmless");
    page.note("Each point is one prompt's state on the first two principal components of its language's states "
              "(the silhouette's items); axes differ per chart.");
    for (const std::string& system : in.systems) {
      page.heading(system, 3);
      std::string row = "<div style=\"display:flex;flex-wrap:wrap;gap:4px 12px\">";
      for (const std::string& language : in.languages) {
        const auto it = std::find_if(in.scatters->begin(), in.scatters->end(), [&](const ProbeScatter& s) {
          return s.system == system && s.language == language && s.layer == layer;
        });
        if (it == in.scatters->end()) continue;
        html::ScatterChart chart;
        chart.id = chart_id("pca-" + system + "-" + language + "-" + std::to_string(layer));
        chart.title = language;
        chart.x.label = "PC1";
        chart.y.label = "PC2";
        chart.width = 330;
        chart.height = 300;
        chart.point_radius = 2.5;
        for (int cls = 1; cls >= 0; cls--) {
          html::Series s;
          s.name = cls ? "harmful" : "harmless";
          for (size_t i = 0; i < it->harmful.size(); i++) {
            if (it->harmful[i] != cls) continue;
            s.x.push_back(it->xy[i * 2]);
            s.y.push_back(it->xy[i * 2 + 1]);
          }
          chart.series.push_back(std::move(s));
        }
        row += "<div>" + html::svg_scatter_chart(chart) + "</div>";
      }
      page.html(row + "</div>");
    }
  }
  return page.str();
}

void write_probe_report(const std::filesystem::path& path, const ProbeReportInput& input) {
  write_text_file(path, probe_report_html(input));
}

}  // namespace tiller::eval
