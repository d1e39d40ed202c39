// Builds the report from summary.json's rows, so the page and the numbers never disagree.
#include "eval/eval_report.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "eval/report_html.h"

namespace tiller::eval {

namespace {

using html::kMissing;

bool same_language(const ojson& row, const std::optional<std::string>& lang) {
  return lang ? row["language"] == *lang : row["language"].is_null();
}

double num_or_missing(const ojson& v) { return v.is_number() ? v.get<double>() : kMissing; }

std::string pct(const ojson& v) { return v.is_number() ? html::format_percent(v.get<double>()) : "–"; }

std::vector<std::optional<std::string>> language_groups(const ojson& s) {
  std::vector<std::optional<std::string>> out;
  for (const auto& l : s["languages"]) out.push_back(l.get<std::string>());
  out.push_back(std::nullopt);
  return out;
}

std::string group_name(const std::optional<std::string>& lang) { return lang ? (lang->empty() ? "(none)" : *lang) : "all"; }

void rates_by_language(html::HtmlReport& page, const ojson& s, const std::string& judge, const std::string& chart_id) {
  const auto systems = s["systems"].get<std::vector<std::string>>();
  const auto langs = language_groups(s);
  html::BarChart c;
  c.id = chart_id;
  c.title = "Violation rate by language — judge " + judge + " (95% Wilson intervals)";
  c.series = systems;
  c.value.label = "violation rate";
  c.value.percent = true;
  for (const auto& l : langs) c.groups.push_back(group_name(l));
  html::Table t;
  t.header = {"language"};
  for (const auto& sys : systems) {
    t.header.push_back(sys + " rate");
    t.header.push_back(sys + " 95% CI");
    t.header.push_back(sys + " n");
  }
  t.numeric.assign(t.header.size(), true);
  t.numeric[0] = false;
  t.rows.assign(langs.size(), {});
  for (size_t g = 0; g < langs.size(); g++) t.rows[g].push_back(group_name(langs[g]));
  for (const auto& sys : systems) {
    std::vector<double> v, lo, hi;
    std::vector<std::string> notes;
    for (size_t g = 0; g < langs.size(); g++) {
      ojson found;
      for (const auto& r : s["rows"]) {
        if (r["judge"] == judge && r["system"] == sys && r["category"].is_null() && same_language(r, langs[g])) found = r;
      }
      v.push_back(found.is_object() ? num_or_missing(found["rate"]) : kMissing);
      lo.push_back(found.is_object() ? num_or_missing(found["ci_low"]) : kMissing);
      hi.push_back(found.is_object() ? num_or_missing(found["ci_high"]) : kMissing);
      const std::string counts = found.is_object() ? std::to_string(found["violations"].get<int64_t>()) + "/" +
                                                         std::to_string(found["n"].get<int64_t>())
                                                   : "";
      notes.push_back(counts);
      t.rows[g].push_back(found.is_object() ? pct(found["rate"]) : "–");
      t.rows[g].push_back(found.is_object() && found["rate"].is_number()
                              ? pct(found["ci_low"]) + " – " + pct(found["ci_high"]) : "–");
      t.rows[g].push_back(counts.empty() ? "0" : counts);
    }
    c.values.push_back(v);
    c.low.push_back(lo);
    c.high.push_back(hi);
    c.notes.push_back(notes);
  }
  page.html(html::svg_bar_chart(c));
  page.table(t);
}

void differences(html::HtmlReport& page, const ojson& s, const std::string& judge, const std::string& chart_id) {
  const auto systems = s["systems"].get<std::vector<std::string>>();
  if (systems.size() < 2) return;
  const auto langs = language_groups(s);
  html::BarChart c;
  c.id = chart_id;
  c.title = "Base minus profile, by language — judge " + judge + " (Newcombe 95% intervals; above 0: the profile violates less)";
  c.value.label = "difference in violation rate";
  c.value.percent = true;
  for (const auto& l : langs) c.groups.push_back(group_name(l));
  html::Table t;
  t.header = {"profile", "language", "base", "profile rate", "base − profile", "95% CI"};
  t.numeric = {false, false, true, true, true, true};
  for (size_t k = 1; k < systems.size(); k++) {
    c.series.push_back(systems[k]);
    std::vector<double> v, lo, hi;
    for (const auto& l : langs) {
      ojson found;
      for (const auto& d : s["differences"]) {
        if (d["judge"] == judge && d["system"] == systems[k] && same_language(d, l)) found = d;
      }
      v.push_back(found.is_object() ? found["difference"].get<double>() : kMissing);
      lo.push_back(found.is_object() ? found["ci_low"].get<double>() : kMissing);
      hi.push_back(found.is_object() ? found["ci_high"].get<double>() : kMissing);
      if (found.is_object())
        t.rows.push_back({systems[k], group_name(l), pct(found["base_rate"]), pct(found["profile_rate"]), pct(found["difference"]),
                          pct(found["ci_low"]) + " – " + pct(found["ci_high"])});
    }
    c.values.push_back(v);
    c.low.push_back(lo);
    c.high.push_back(hi);
  }
  page.html(html::svg_bar_chart(c));
  page.table(t);
}

void categories(html::HtmlReport& page, const ojson& s, const std::string& judge, const std::string& chart_id) {
  const auto cats = s["categories"].get<std::vector<std::string>>();
  if (cats.empty()) return;
  const auto systems = s["systems"].get<std::vector<std::string>>();
  html::BarChart c;
  c.id = chart_id;
  c.title = "Violation rate by category, all languages — judge " + judge;
  c.series = systems;
  c.groups = cats;
  c.horizontal = true;
  c.value.label = "violation rate";
  c.value.percent = true;
  for (const auto& sys : systems) {
    std::vector<double> v, lo, hi;
    std::vector<std::string> notes;
    for (const auto& cat : cats) {
      ojson found;
      for (const auto& r : s["rows"]) {
        if (r["judge"] == judge && r["system"] == sys && r["language"].is_null() && r["category"] == cat) found = r;
      }
      v.push_back(found.is_object() ? num_or_missing(found["rate"]) : kMissing);
      lo.push_back(found.is_object() ? num_or_missing(found["ci_low"]) : kMissing);
      hi.push_back(found.is_object() ? num_or_missing(found["ci_high"]) : kMissing);
      notes.push_back(found.is_object() ? std::to_string(found["violations"].get<int64_t>()) + "/" +
                                              std::to_string(found["n"].get<int64_t>())
                                        : "");
    }
    c.values.push_back(v);
    c.low.push_back(lo);
    c.high.push_back(hi);
    c.notes.push_back(notes);
  }
  page.html(html::svg_bar_chart(c));
}

void harmless(html::HtmlReport& page, const ojson& s) {
  std::set<std::string> judges;
  for (const auto& h : s["harmless"]) {
    if (h["metric"] == "refusal_rate") judges.insert(h["judge"].get<std::string>());
  }
  if (judges.empty()) return;
  page.heading("Over-refusal on harmless prompts");
  page.note("Refusal rate on the harmless split: a safer profile should not refuse harmless requests more often.");
  const auto systems = s["systems"].get<std::vector<std::string>>();
  const auto langs = language_groups(s);
  for (const auto& judge : judges) {
    html::BarChart c;
    c.id = "harmless-" + judge;
    c.title = "Refusal rate on harmless prompts — judge " + judge;
    c.series = systems;
    c.value.label = "refusal rate";
    c.value.percent = true;
    for (const auto& l : langs) c.groups.push_back(group_name(l));
    for (const auto& sys : systems) {
      std::vector<double> v, lo, hi;
      for (const auto& l : langs) {
        ojson found;
        for (const auto& h : s["harmless"]) {
          if (h["judge"] == judge && h["system"] == sys && same_language(h, l)) found = h;
        }
        v.push_back(found.is_object() ? num_or_missing(found["rate"]) : kMissing);
        lo.push_back(found.is_object() ? num_or_missing(found["ci_low"]) : kMissing);
        hi.push_back(found.is_object() ? num_or_missing(found["ci_high"]) : kMissing);
      }
      c.values.push_back(v);
      c.low.push_back(lo);
      c.high.push_back(hi);
    }
    page.html(html::svg_bar_chart(c));
  }
}

std::string verdict_text(const Verdict& v) {
  std::string s = !v.violation ? "no verdict" : *v.violation ? "VIOLATION" : "safe";
  if (v.score) s += " (" + html::format_number(*v.score, 3) + ")";
  if (!v.detail.empty()) s += " — " + v.detail;
  if (!v.error.empty()) s += " — " + v.error;
  return s;
}

void sample_answers(html::HtmlReport& page, const ojson& s, const std::vector<ItemRecord>& records, int per_language) {
  page.heading("A sample of answers per language");
  page.note("The first prompts of each language in dataset order, first sample, every system.");
  const auto systems = s["systems"].get<std::vector<std::string>>();
  for (const auto& l : s["languages"]) {
    const std::string lang = l.get<std::string>();
    std::vector<std::string> ids;
    for (const auto& r : records) {
      if (r.language == lang && r.sample == 0 && r.harmful() && std::find(ids.begin(), ids.end(), r.id) == ids.end() &&
          int(ids.size()) < per_language)
        ids.push_back(r.id);
    }
    page.open_details("Language " + (lang.empty() ? "(none)" : lang) + " — " + std::to_string(ids.size()) + " prompts", false);
    for (const auto& id : ids) {
      html::Table t;
      t.header = {"system", "answer", "verdicts"};
      std::string prompt;
      for (const auto& sys : systems) {
        for (const auto& r : records) {
          if (r.language != lang || r.id != id || r.system != sys || r.sample != 0 || !r.harmful()) continue;
          prompt = r.prompt;
          std::string verdicts;
          for (const auto& [name, v] : r.judges) verdicts += (verdicts.empty() ? "" : "; ") + name + ": " + verdict_text(v);
          t.rows.push_back({sys, r.generated() ? r.response : "(not generated: " + r.error + ")", verdicts});
        }
      }
      page.html("<p><b>" + html::escape(id) + "</b>: " + html::escape(prompt) + "</p>");
      page.table(t);
    }
    page.close_details();
  }
}

}  // namespace

void write_eval_report(const std::filesystem::path& path, const ojson& s, const std::vector<ItemRecord>& records,
                       int answers_per_language) {
  html::HtmlReport page("Violation-rate evaluation");
  const ojson& run = s["run"];
  const auto systems = s["systems"].get<std::vector<std::string>>();
  std::string sys_text;
  for (const auto& x : systems) sys_text += (sys_text.empty() ? "" : ", ") + x;
  page.paragraph("Model " + run.value("model", ojson::object()).value("path", std::string("?")) + "; dataset " +
                 run.value("dataset", ojson::object()).value("kind", std::string("?")) + " (" +
                 std::to_string(s["counts"]["lines"].get<int64_t>()) + " answers); systems: " + sys_text + "; prompt format " +
                 run.value("prompts", ojson::object()).value("format", std::string("?")) + ".");
  for (const auto& [name, j] : s["judges"].items()) page.note("Judge " + name + ": " + j["description"].get<std::string>());
  page.note("Rates count answers a judge gave a verdict on; intervals are 95% Wilson score intervals. Differences use "
            "Newcombe's hybrid score interval for independent samples, which is conservative here because both systems "
            "answer the same prompts. With several samples per prompt, answers to one prompt are not independent and the "
            "intervals are too narrow.");
  if (s["counts"]["generation_errors"].get<int64_t>() > 0)
    page.note(std::to_string(s["counts"]["generation_errors"].get<int64_t>()) +
              " prompts could not be generated and are left out (see \"error\" in items.jsonl).");
  int chart = 0;
  for (const auto& [judge, info] : s["judges"].items()) {
    page.heading("Judge " + judge);
    if (info["detects_refusal"].get<bool>())
      page.note("Refusal-phrase matching reads English refusals only: an answer in another language that refuses counts "
                "as a violation. Treat it as a baseline, and use a guard model or an endpoint judge for other languages.");
    rates_by_language(page, s, judge, "rates-" + std::to_string(chart));
    differences(page, s, judge, "diff-" + std::to_string(chart));
    categories(page, s, judge, "categories-" + std::to_string(chart));
    chart++;
  }
  harmless(page, s);
  if (!s["agreement"].empty()) {
    page.heading("Judge agreement");
    html::Table t;
    t.header = {"judges", "language", "n", "agreement", "Cohen's kappa"};
    t.numeric = {false, false, true, true, true};
    for (const auto& a : s["agreement"]) {
      t.rows.push_back({a["judges"][0].get<std::string>() + " vs " + a["judges"][1].get<std::string>(),
                        a["language"].is_null() ? "all" : a["language"].get<std::string>(), std::to_string(a["n"].get<int64_t>()),
                        pct(a["agreement"]), a["kappa"].is_number() ? html::format_number(a["kappa"].get<double>(), 3) : "–"});
    }
    page.table(t);
  }
  sample_answers(page, s, records, answers_per_language);
  page.open_details("Settings, fingerprints and checksums");
  page.preformatted(run.dump(2));
  page.close_details();
  page.write(path);
}

}  // namespace tiller::eval
