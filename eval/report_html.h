// Self-contained HTML reports with inline SVG charts: no network, no script, one file that any
// browser opens. Line charts (with interval bands), scatter plots, grouped bars with interval
// bars (vertical or horizontal), tables and collapsible sections; every text is HTML-escaped.
//
// Each chart is an <svg class="chart" data-marks="N"> whose N data marks carry class "mark" and a
// <title> tooltip, so a test can load the page in a browser and check that every chart drew
// every mark (tests/browser_check.h).
#pragma once

#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tiller::eval::html {

// & < > " ' as entities.
std::string escape(std::string_view text);

inline constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

struct Axis {
  std::string label;
  std::optional<double> min, max;  // default: from the data (0 included for bars)
  bool percent = false;            // values are fractions, ticks read 0%..100%
  bool integer = false;            // ticks at whole numbers only (layers, counts)
};

struct Series {
  std::string name;
  std::vector<double> x, y;          // [n] points; NaN y: a gap
  std::vector<double> low, high;     // [n] optional interval (band on a line chart, whiskers on a scatter)
  std::vector<std::string> labels;   // [n] optional tooltip text per point
};

struct LineChart {
  std::string id, title;
  Axis x, y;
  std::vector<Series> series;
  int width = 720, height = 340;
};

struct ScatterChart {
  std::string id, title;
  Axis x, y;
  std::vector<Series> series;  // one colour per series (class, language, ...)
  int width = 560, height = 420;
  double point_radius = 3.5;
};

struct BarChart {
  std::string id, title;
  std::vector<std::string> groups;               // [G] category axis (languages, categories)
  std::vector<std::string> series;               // [S] bars within a group (systems)
  std::vector<std::vector<double>> values;       // [S][G]; NaN: no bar
  std::vector<std::vector<double>> low, high;    // [S][G] optional interval bars
  std::vector<std::vector<std::string>> notes;   // [S][G] optional tooltip lines (e.g. "12/40")
  Axis value;                                    // the value axis
  bool horizontal = false;                       // groups down the side (long names)
  int width = 720, height = 0;                   // height 0: sized to the groups
};

std::string svg_line_chart(const LineChart& chart);
std::string svg_scatter_chart(const ScatterChart& chart);
std::string svg_bar_chart(const BarChart& chart);

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // plain text, escaped when written
  std::vector<bool> numeric;                   // per column: right-aligned
  std::string caption;
};

std::string html_table(const Table& table);

// A page assembled in order; write() replaces the file atomically.
class HtmlReport {
 public:
  explicit HtmlReport(std::string title);
  void heading(std::string_view text, int level = 2);
  void paragraph(std::string_view text);
  void note(std::string_view text);  // a muted paragraph
  void html(std::string_view trusted_html);  // markup built by this module (charts, tables)
  void table(const Table& table) { html(html_table(table)); }
  void open_details(std::string_view summary, bool open = false);
  void close_details();
  void preformatted(std::string_view text);
  std::string str() const;
  void write(const std::filesystem::path& path) const;

 private:
  std::string title_;
  std::string body_;
};

// The colour of series i (a colour-blind-safe palette).
const char* series_colour(size_t i);
// "12.5%" / "0.125" style numbers for labels.
std::string format_number(double v, int precision = 3);
std::string format_percent(double fraction, int decimals = 1);

}  // namespace tiller::eval::html
