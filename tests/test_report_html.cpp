// The HTML/SVG report module: escaping, chart geometry, and a render in headless Chromium that
// checks every chart drew every mark (skips without Chromium).
#include <doctest/doctest.h>

#include <cmath>

#include "browser_check.h"
#include "engine/error.h"
#include "eval/report_html.h"

using namespace tiller::eval;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
  return n;
}

html::BarChart sample_bars(bool horizontal) {
  html::BarChart c;
  c.id = horizontal ? "hbars" : "vbars";
  c.title = "Violation rate <by> language & system";
  c.groups = {"en", "bn", "sw", "Non-violent unethical behavior (e.g. lying, cheating, etc.)"};
  c.series = {"base", "soteria-bn"};
  c.values = {{0.1, 0.62, 0.0, 0.3}, {0.05, 0.2, html::kMissing, 0.25}};
  c.low = {{0.05, 0.5, 0.0, 0.2}, {0.01, 0.1, html::kMissing, 0.15}};
  c.high = {{0.2, 0.72, 0.1, 0.4}, {0.12, 0.31, html::kMissing, 0.36}};
  c.value.label = "violation rate";
  c.value.percent = true;
  c.horizontal = horizontal;
  return c;
}

html::Series series(std::string name, std::vector<double> x, std::vector<double> y, std::vector<double> low = {},
                    std::vector<double> high = {}) {
  html::Series s;
  s.name = std::move(name);
  s.x = std::move(x);
  s.y = std::move(y);
  s.low = std::move(low);
  s.high = std::move(high);
  return s;
}

}  // namespace

TEST_CASE("report_html: escaping and chart structure") {
  CHECK(html::escape("<a href=\"x\">'&'</a>") == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const std::string bars = html::svg_bar_chart(sample_bars(false));
  CHECK(bars.find("data-marks=\"7\"") != std::string::npos);  // 8 values, one missing
  CHECK(count(bars, "class=\"mark bar\"") == 7);
  CHECK(bars.find("<by>") == std::string::npos);
  CHECK(bars.find("&lt;by&gt; language &amp; system") != std::string::npos);
  CHECK(count(bars, "class=\"interval\"") == 7 * 3);  // whisker and two caps per finite interval
  const std::string hbars = html::svg_bar_chart(sample_bars(true));
  CHECK(count(hbars, "class=\"mark bar\"") == 7);

  html::LineChart line;
  line.id = "line";
  line.title = "Separation by layer";
  line.x.label = "layer";
  line.y.label = "between-class ratio";
  line.series.push_back(series("en", {0, 1, 2, 3}, {0.1, 0.2, NAN, 0.4}, {0.05, 0.1, NAN, 0.3}, {0.2, 0.3, NAN, 0.5}));
  line.series.push_back(series("bn", {0, 1, 2, 3}, {0.05, 0.07, 0.09, 0.1}));
  const std::string l = html::svg_line_chart(line);
  CHECK(l.find("data-marks=\"7\"") != std::string::npos);
  CHECK(count(l, "<path class=\"line\"") == 2);
  CHECK(l.find("M") != std::string::npos);
  html::LineChart layers;  // 4 layers over about 6 ticks: half steps, unless the axis is integer
  layers.id = "layers";
  layers.series.push_back(series("en", {0, 1, 2, 3}, {10, 20, 30, 40}));
  CHECK(html::svg_line_chart(layers).find(">0.5<") != std::string::npos);
  layers.x.integer = true;
  const std::string whole = html::svg_line_chart(layers);
  CHECK(whole.find(">0.5<") == std::string::npos);
  CHECK(whole.find(">2.5<") == std::string::npos);
  CHECK(whole.find(">3<") != std::string::npos);

  html::ScatterChart sc;
  sc.id = "scatter";
  sc.title = "PCA";
  sc.series.push_back(series("toxic", {1, 2, 3}, {1, 0, -1}));
  sc.series.push_back(series("non-toxic", {-1, -2}, {0.5, 0.2}));
  sc.series.back().labels = {"a", "b"};
  CHECK(html::svg_scatter_chart(sc).find("data-marks=\"5\"") != std::string::npos);

  html::LineChart bad;
  bad.id = "bad";
  bad.series.push_back(series("x", {1, 2}, {1}));
  CHECK_THROWS_WITH_AS(html::svg_line_chart(bad), doctest::Contains("they must match"), tiller::Error);

  html::Table t;
  t.header = {"language", "rate"};
  t.rows = {{"bn", "62.0%"}, {"<b>", "1"}};
  t.numeric = {false, true};
  const std::string table = html::html_table(t);
  CHECK(table.find("<td class=\"num\">62.0%</td>") != std::string::npos);
  CHECK(table.find("&lt;b&gt;") != std::string::npos);
}

TEST_CASE("report_html: every chart draws its marks in headless Chromium") {
  html::HtmlReport page("Report module check");
  page.paragraph("Charts of every kind, with a missing value, a zero bar and long category names.");
  page.html(html::svg_bar_chart(sample_bars(false)));
  page.html(html::svg_bar_chart(sample_bars(true)));
  html::LineChart line;
  line.id = "line";
  line.title = "A line with a gap and a band";
  line.y.percent = true;
  line.series.push_back(series("en", {0, 1, 2, 3, 4}, {0.1, 0.2, NAN, 0.4, 0.35}, {0.05, 0.1, NAN, 0.3, 0.3}, {0.2, 0.3, NAN, 0.5, 0.4}));
  line.series.push_back(series("বাংলা", {0, 1, 2, 3, 4}, {0.05, 0.07, 0.09, 0.1, 0.2}));
  page.html(html::svg_line_chart(line));
  html::ScatterChart sc;
  sc.id = "scatter";
  sc.title = "Scatter";
  for (int k = 0; k < 3; k++) {
    html::Series s;
    s.name = "class " + std::to_string(k);
    for (int i = 0; i < 40; i++) {
      s.x.push_back(std::cos(i * 0.3) * (k + 1));
      s.y.push_back(std::sin(i * 0.5) * (k + 2));
    }
    sc.series.push_back(s);
  }
  page.html(html::svg_scatter_chart(sc));
  html::Table t;
  t.header = {"a", "b"};
  t.rows = {{"1", "2"}};
  page.table(t);
  const auto dir = tiller::test::scratch_path("report-html");
  std::filesystem::create_directories(dir);
  page.write(dir / "report.html");
  const auto r = tiller::test::render_in_chromium(dir / "report.html", tiller::test::artifacts_dir() / "report_html.png");
  std::filesystem::remove_all(dir);
  TILLER_SKIP_UNLESS(r.available, r.why);
  tiller::test::check_charts_drawn(r, 4);
  CHECK(r.charts[0].expected == 7);
  CHECK(r.charts[3].expected == 120);
  CHECK(!r.screenshot.empty());
}
