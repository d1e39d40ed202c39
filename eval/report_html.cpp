// SVG charts and the HTML page around them. Layout is computed here (no script), with text widths
// estimated from character counts, which is close enough for labels and legends.
#include "eval/report_html.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "engine/error.h"

namespace tiller::eval::html {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

const char* series_colour(size_t i) {
  // Okabe & Ito's palette, black last.
  static const char* colours[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"};
  return colours[i % (sizeof colours / sizeof colours[0])];
}

std::string format_number(double v, int precision) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

std::string format_percent(double fraction, int decimals) {
  if (!std::isfinite(fraction)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%%", decimals, fraction * 100);
  return buf;
}

namespace {

constexpr double kCharWidth = 6.2;  // px per character at the 11px label size
constexpr double kTitleHeight = 26, kLegendRow = 18;
constexpr size_t kRotatedChars = 28;  // longer group names are cut (the full name is in the tooltip)

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// UTF-8 aware truncation to at most `max_chars` characters, with an ellipsis.
std::string shorten(const std::string& s, size_t max_chars) {
  size_t chars = 0, i = 0;
  while (i < s.size()) {
    if (chars == max_chars) return s.substr(0, i) + "…";
    i++;
    while (i < s.size() && (uint8_t(s[i]) & 0xC0) == 0x80) i++;
    chars++;
  }
  return s;
}

size_t char_count(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (uint8_t(c) & 0xC0) != 0x80;
  return n;
}

struct Range {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};

// A "nice" axis covering [lo, hi] with about `n` ticks at 1, 2 or 5 × 10^k.
Range nice_range(double lo, double hi, int n, const Axis& axis) {
  if (axis.min) lo = *axis.min;
  if (axis.max) hi = *axis.max;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) {
    const double pad = std::max(std::abs(hi) * 0.1, axis.percent ? 0.05 : 1.0);
    if (!axis.min) lo -= lo == 0 ? 0 : pad;
    hi += pad;
  }
  const double raw = (hi - lo) / n, mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (axis.integer && m == 2.5 && mag < 10) continue;
    if (raw <= m * mag + 1e-12) {
      step = m * mag;
      break;
    }
  }
  if (axis.integer) step = std::max(step, 1.0);
  Range r;
  r.lo = axis.min ? lo : std::floor(lo / step + 1e-9) * step;
  r.hi = axis.max ? hi : std::ceil(hi / step - 1e-9) * step;
  for (double t = std::ceil(r.lo / step - 1e-9) * step; t <= r.hi + step * 1e-6; t += step) r.ticks.push_back(t);
  return r;
}

std::string tick_label(double v, const Axis& axis) {
  if (std::abs(v) < 1e-12) v = 0;  // no "-0" from accumulated steps
  if (axis.percent) {
    const double p = v * 100;
    return num(std::round(p * 100) / 100) + "%";
  }
  return format_number(v, 4);
}

struct Frame {
  double left, top, right, bottom;  // plot area in px
};

class Svg {
 public:
  Svg(const std::string& id, const std::string& title, int w, int h) : w_(w), h_(h), id_(id), title_(title) {}
  std::string& body() { return body_; }
  void text(double x, double y, const std::string& s, const char* anchor = "middle", const char* extra = "") {
    body_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\"" + extra + ">" + escape(s) +
             "</text>";
  }
  void line(double x1, double y1, double x2, double y2, const char* cls) {
    body_ += "<line class=\"" + std::string(cls) + "\" x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) +
             "\" y2=\"" + num(y2) + "\"/>";
  }
  void count_mark() { marks_++; }
  std::string finish() const {
    return "<svg class=\"chart\" id=\"" + escape(id_) + "\" data-marks=\"" +
           std::to_string(marks_) + "\" data-title=\"" + escape(title_) + "\" viewBox=\"0 0 " + std::to_string(w_) + " " +
           std::to_string(h_) + "\" width=\"" + std::to_string(w_) + "\" height=\"" + std::to_string(h_) +
           "\" role=\"img\" aria-label=\"" + escape(title_) + "\"><title>" + escape(title_) + "</title>" + body_ + "</svg>";
  }

 private:
  int w_, h_;
  std::string id_, title_, body_;
  int marks_ = 0;
};

// Title at the top, legend rows under it; returns the y where the plot may start.
double title_and_legend(Svg& svg, const std::string& title, const std::vector<std::string>& names, double width) {
  svg.text(width / 2, 18, title, "middle", " class=\"chart-title\"");
  double y = kTitleHeight;
  if (names.size() <= 1 && (names.empty() || names[0].empty())) return y + 6;
  double x = 12;
  y += 4;
  for (size_t i = 0; i < names.size(); i++) {
    const double w = 18 + kCharWidth * double(char_count(shorten(names[i], 40))) + 16;
    if (x + w > width - 8 && x > 12) {
      x = 12;
      y += kLegendRow;
    }
    svg.body() += "<g class=\"legend-item\"><rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"12\" height=\"12\" rx=\"2\" fill=\"" +
                  series_colour(i) + "\"/>";
    svg.text(x + 17, y + 10, shorten(names[i], 40), "start");
    svg.body() += "</g>";
    x += w;
  }
  return y + kLegendRow + 6;
}

// Grid lines and tick labels of a value axis; `vertical`: the values run up the y axis.
void value_axis(Svg& svg, const Frame& f, const Range& r, const Axis& axis, bool vertical) {
  auto pos = [&](double v) {
    const double t = (v - r.lo) / (r.hi - r.lo);
    return vertical ? f.bottom - t * (f.bottom - f.top) : f.left + t * (f.right - f.left);
  };
  svg.body() += "<g class=\"grid\">";
  for (double t : r.ticks) {
    const double p = pos(t);
    if (vertical) {
      svg.line(f.left, p, f.right, p, "gridline");
      svg.text(f.left - 6, p + 4, tick_label(t, axis), "end");
    } else {
      svg.line(p, f.top, p, f.bottom, "gridline");
      svg.text(p, f.bottom + 15, tick_label(t, axis), "middle");
    }
  }
  svg.body() += "</g>";
  if (!axis.label.empty()) {
    if (vertical)
      svg.text(14, (f.top + f.bottom) / 2, axis.label, "middle",
               (" transform=\"rotate(-90 14 " + num((f.top + f.bottom) / 2) + ")\"").c_str());
    else
      svg.text((f.left + f.right) / 2, f.bottom + 32, axis.label, "middle");
  }
}

struct XYScale {
  Frame f;
  Range x, y;
  double px(double v) const { return f.left + (v - x.lo) / (x.hi - x.lo) * (f.right - f.left); }
  double py(double v) const { return f.bottom - (v - y.lo) / (y.hi - y.lo) * (f.bottom - f.top); }
};

XYScale xy_frame(Svg& svg, const std::string& title, const Axis& xa, const Axis& ya, const std::vector<Series>& series,
                 int width, int height) {
  std::vector<std::string> names;
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (const auto& s : series) {
    names.push_back(s.name);
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); i++) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]), xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
      if (i < s.low.size() && std::isfinite(s.low[i])) ylo = std::min(ylo, s.low[i]);
      if (i < s.high.size() && std::isfinite(s.high[i])) yhi = std::max(yhi, s.high[i]);
    }
  }
  const double top = title_and_legend(svg, title, names, width);
  XYScale s;
  s.f = {64, top + 6, double(width) - 20, double(height) - (xa.label.empty() ? 28 : 44)};
  s.x = nice_range(xlo, xhi, 6, xa);
  s.y = nice_range(ylo, yhi, 5, ya);
  value_axis(svg, s.f, s.y, ya, true);
  value_axis(svg, s.f, s.x, xa, false);
  svg.body() += "<rect class=\"frame\" x=\"" + num(s.f.left) + "\" y=\"" + num(s.f.top) + "\" width=\"" +
                num(s.f.right - s.f.left) + "\" height=\"" + num(s.f.bottom - s.f.top) + "\"/>";
  return s;
}

std::string point_title(const Series& s, size_t i, const Axis& xa, const Axis& ya) {
  std::string t = s.name.empty() ? "" : s.name + ": ";
  t += xa.label.empty() ? "x" : xa.label;
  t += " " + (xa.percent ? format_percent(s.x[i]) : format_number(s.x[i], 4)) + ", ";
  t += ya.label.empty() ? "y" : ya.label;
  t += " " + (ya.percent ? format_percent(s.y[i]) : format_number(s.y[i], 4));
  if (i < s.low.size() && i < s.high.size() && std::isfinite(s.low[i]) && std::isfinite(s.high[i]))
    t += " [" + (ya.percent ? format_percent(s.low[i]) : format_number(s.low[i], 4)) + ", " +
         (ya.percent ? format_percent(s.high[i]) : format_number(s.high[i], 4)) + "]";
  if (i < s.labels.size() && !s.labels[i].empty()) t += " — " + s.labels[i];
  return t;
}

void check_series(const std::vector<Series>& series, const std::string& id) {
  for (const auto& s : series) {
    if (s.x.size() != s.y.size() || (!s.low.empty() && s.low.size() != s.y.size()) ||
        (!s.high.empty() && s.high.size() != s.y.size()))
      fail("chart ", id, ": series '", s.name, "' has ", s.x.size(), " x values, ", s.y.size(), " y values, ", s.low.size(),
           " lows and ", s.high.size(), " highs; they must match");
  }
}

}  // namespace

std::string svg_line_chart(const LineChart& c) {
  check_series(c.series, c.id);
  Svg svg(c.id, c.title, c.width, c.height);
  const XYScale s = xy_frame(svg, c.title, c.x, c.y, c.series, c.width, c.height);
  for (size_t k = 0; k < c.series.size(); k++) {
    const Series& ser = c.series[k];
    const char* colour = series_colour(k);
    svg.body() += "<g class=\"series\">";
    if (!ser.low.empty() && !ser.high.empty()) {  // interval band, broken at gaps
      size_t i = 0;
      while (i < ser.y.size()) {
        std::vector<size_t> run;
        for (; i < ser.y.size() && std::isfinite(ser.low[i]) && std::isfinite(ser.high[i]); i++) run.push_back(i);
        i++;
        if (run.size() < 2) continue;
        std::string pts;
        for (size_t j : run) pts += num(s.px(ser.x[j])) + "," + num(s.py(ser.high[j])) + " ";
        for (auto it = run.rbegin(); it != run.rend(); ++it) pts += num(s.px(ser.x[*it])) + "," + num(s.py(ser.low[*it])) + " ";
        svg.body() += "<polygon class=\"band\" points=\"" + pts + "\" fill=\"" + colour + "\"/>";
      }
    }
    std::string d;
    bool pen = false;
    for (size_t i = 0; i < ser.y.size(); i++) {
      if (!std::isfinite(ser.y[i]) || !std::isfinite(ser.x[i])) {
        pen = false;
        continue;
      }
      d += (pen ? "L" : "M") + num(s.px(ser.x[i])) + " " + num(s.py(ser.y[i]));
      pen = true;
    }
    if (!d.empty()) svg.body() += "<path class=\"line\" d=\"" + d + "\" stroke=\"" + colour + "\"/>";
    for (size_t i = 0; i < ser.y.size(); i++) {
      if (!std::isfinite(ser.y[i]) || !std::isfinite(ser.x[i])) continue;
      svg.body() += "<circle class=\"mark\" cx=\"" + num(s.px(ser.x[i])) + "\" cy=\"" + num(s.py(ser.y[i])) +
                    "\" r=\"3\" fill=\"" + colour + "\"><title>" + escape(point_title(ser, i, c.x, c.y)) + "</title></circle>";
      svg.count_mark();
    }
    svg.body() += "</g>";
  }
  return svg.finish();
}

std::string svg_scatter_chart(const ScatterChart& c) {
  check_series(c.series, c.id);
  Svg svg(c.id, c.title, c.width, c.height);
  const XYScale s = xy_frame(svg, c.title, c.x, c.y, c.series, c.width, c.height);
  for (size_t k = 0; k < c.series.size(); k++) {
    const Series& ser = c.series[k];
    svg.body() += "<g class=\"series\" fill=\"" + std::string(series_colour(k)) + "\" stroke=\"" + series_colour(k) + "\">";
    for (size_t i = 0; i < ser.y.size(); i++) {
      if (!std::isfinite(ser.y[i]) || !std::isfinite(ser.x[i])) continue;
      const double x = s.px(ser.x[i]), y = s.py(ser.y[i]);
      if (i < ser.low.size() && i < ser.high.size() && std::isfinite(ser.low[i]) && std::isfinite(ser.high[i]))
        svg.line(x, s.py(ser.low[i]), x, s.py(ser.high[i]), "interval");
      svg.body() += "<circle class=\"mark point\" cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(c.point_radius) +
                    "\"><title>" + escape(point_title(ser, i, c.x, c.y)) + "</title></circle>";
      svg.count_mark();
    }
    svg.body() += "</g>";
  }
  return svg.finish();
}

std::string svg_bar_chart(const BarChart& c) {
  const size_t G = c.groups.size(), S = c.series.size();
  if (c.values.size() != S) fail("chart ", c.id, ": ", S, " series but ", c.values.size(), " value rows");
  for (size_t k = 0; k < S; k++) {
    if (c.values[k].size() != G) fail("chart ", c.id, ": series ", k, " has ", c.values[k].size(), " values for ", G, " groups");
    if ((!c.low.empty() && c.low.at(k).size() != G) || (!c.high.empty() && c.high.at(k).size() != G))
      fail("chart ", c.id, ": series ", k, " intervals do not match its ", G, " groups");
  }
  auto has_interval = [&](size_t k, size_t g) {
    return !c.low.empty() && !c.high.empty() && std::isfinite(c.low[k][g]) && std::isfinite(c.high[k][g]);
  };
  double lo = 0, hi = 0;
  for (size_t k = 0; k < S; k++) {
    for (size_t g = 0; g < G; g++) {
      if (!std::isfinite(c.values[k][g])) continue;
      lo = std::min(lo, c.values[k][g]), hi = std::max(hi, c.values[k][g]);
      if (has_interval(k, g)) lo = std::min(lo, c.low[k][g]), hi = std::max(hi, c.high[k][g]);
    }
  }
  Axis value_axis_spec = c.value;
  if (value_axis_spec.percent && !value_axis_spec.max && hi > 0.9) value_axis_spec.max = 1.0;
  const Range r = nice_range(lo, hi, 5, value_axis_spec);

  size_t longest = 0;
  for (const auto& g : c.groups) longest = std::max(longest, char_count(shorten(g, 44)));
  const double band_px = c.horizontal ? std::max(14.0, 9.0 * double(S) + 8) : 0;
  std::vector<std::string> legend = c.series;
  Svg probe_svg("", "", c.width, 0);
  const double legend_bottom = title_and_legend(probe_svg, c.title, legend, c.width);
  // Vertical bars: group names under the axis, turned -35° when they do not fit their band (a
  // turned name reaches down sin 35° ≈ 0.58 of its length).
  double left = 64, band_w = (c.width - left - 20) / double(std::max<size_t>(G, 1));
  const bool rotate = !c.horizontal && double(longest) * kCharWidth > band_w - 4;
  size_t rotated = 0;
  for (const auto& g : c.groups) rotated = std::max(rotated, char_count(shorten(g, kRotatedChars)));
  const double label_h = rotate ? double(rotated) * kCharWidth * 0.58 + 20 : 18;
  if (rotate) {  // the first name reaches left cos 35° ≈ 0.82 of its length from its band's centre
    left = std::max(left, double(rotated) * kCharWidth * 0.82 + 8 - band_w / 2);
    band_w = (c.width - left - 20) / double(std::max<size_t>(G, 1));
  }
  int height = c.height;
  if (height == 0)
    height = c.horizontal ? int(legend_bottom + 12 + band_px * double(G) + (c.value.label.empty() ? 30 : 46))
                          : int(legend_bottom + 250 + label_h);
  Svg svg(c.id, c.title, c.width, height);
  const double top = title_and_legend(svg, c.title, legend, c.width) + 6;

  if (!c.horizontal) {
    const Frame f{left, top, double(c.width) - 20, double(height) - label_h};
    value_axis(svg, f, r, value_axis_spec, true);
    auto py = [&](double v) { return f.bottom - (v - r.lo) / (r.hi - r.lo) * (f.bottom - f.top); };
    const double bw = band_w * 0.8 / double(std::max<size_t>(S, 1));
    for (size_t g = 0; g < G; g++) {
      const double x0 = f.left + band_w * double(g) + band_w * 0.1;
      const double cx = f.left + band_w * (double(g) + 0.5);
      if (rotate)
        svg.body() += "<text x=\"" + num(cx) + "\" y=\"" + num(f.bottom + 12) + "\" text-anchor=\"end\" transform=\"rotate(-35 " +
                      num(cx) + " " + num(f.bottom + 12) + ")\">" + escape(shorten(c.groups[g], kRotatedChars)) + "<title>" +
                      escape(c.groups[g]) + "</title></text>";
      else
        svg.text(cx, f.bottom + 14, c.groups[g]);
      for (size_t k = 0; k < S; k++) {
        const double v = c.values[k][g];
        if (!std::isfinite(v)) continue;
        const double x = x0 + bw * double(k), y0 = py(std::max(0.0, r.lo)), y1 = py(v);
        const double y = std::min(y0, y1), h = std::max(1.0, std::abs(y0 - y1));
        std::string tip = c.series[k] + " · " + c.groups[g] + ": " +
                          (c.value.percent ? format_percent(v) : format_number(v, 4));
        if (has_interval(k, g))
          tip += " [" + (c.value.percent ? format_percent(c.low[k][g]) : format_number(c.low[k][g], 4)) + ", " +
                 (c.value.percent ? format_percent(c.high[k][g]) : format_number(c.high[k][g], 4)) + "]";
        if (!c.notes.empty() && !c.notes[k][g].empty()) tip += " — " + c.notes[k][g];
        svg.body() += "<rect class=\"mark bar\" x=\"" + num(x + 1) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(1.0, bw - 2)) +
                      "\" height=\"" + num(h) + "\" fill=\"" + series_colour(k) + "\"><title>" + escape(tip) + "</title></rect>";
        svg.count_mark();
        if (has_interval(k, g)) {
          const double xm = x + bw / 2, cap = std::min(4.0, bw / 3);
          svg.line(xm, py(c.low[k][g]), xm, py(c.high[k][g]), "interval");
          svg.line(xm - cap, py(c.low[k][g]), xm + cap, py(c.low[k][g]), "interval");
          svg.line(xm - cap, py(c.high[k][g]), xm + cap, py(c.high[k][g]), "interval");
        }
      }
    }
    svg.line(f.left, py(std::max(0.0, r.lo)), f.right, py(std::max(0.0, r.lo)), "baseline");
  } else {
    const double label_w = std::min(300.0, double(longest) * kCharWidth + 12);
    const Frame f{label_w + 8, top, double(c.width) - 24, top + band_px * double(G)};
    value_axis(svg, f, r, value_axis_spec, false);
    auto px = [&](double v) { return f.left + (v - r.lo) / (r.hi - r.lo) * (f.right - f.left); };
    const double bh = (band_px - 6) / double(std::max<size_t>(S, 1));
    for (size_t g = 0; g < G; g++) {
      const double y0 = f.top + band_px * double(g) + 3;
      svg.body() += "<text x=\"" + num(f.left - 6) + "\" y=\"" + num(y0 + (band_px - 6) / 2 + 4) +
                    "\" text-anchor=\"end\">" + escape(shorten(c.groups[g], 44)) + "<title>" + escape(c.groups[g]) +
                    "</title></text>";
      for (size_t k = 0; k < S; k++) {
        const double v = c.values[k][g];
        if (!std::isfinite(v)) continue;
        const double y = y0 + bh * double(k), x0 = px(std::max(0.0, r.lo)), x1 = px(v);
        const double x = std::min(x0, x1), w = std::max(1.0, std::abs(x1 - x0));
        std::string tip = c.series[k] + " · " + c.groups[g] + ": " +
                          (c.value.percent ? format_percent(v) : format_number(v, 4));
        if (has_interval(k, g))
          tip += " [" + (c.value.percent ? format_percent(c.low[k][g]) : format_number(c.low[k][g], 4)) + ", " +
                 (c.value.percent ? format_percent(c.high[k][g]) : format_number(c.high[k][g], 4)) + "]";
        if (!c.notes.empty() && !c.notes[k][g].empty()) tip += " — " + c.notes[k][g];
        svg.body() += "<rect class=\"mark bar\" x=\"" + num(x) + "\" y=\"" + num(y + 0.5) + "\" width=\"" + num(w) +
                      "\" height=\"" + num(std::max(1.0, bh - 1)) + "\" fill=\"" + series_colour(k) + "\"><title>" +
                      escape(tip) + "</title></rect>";
        svg.count_mark();
        if (has_interval(k, g)) {
          const double ym = y + bh / 2, cap = std::min(3.0, bh / 3);
          svg.line(px(c.low[k][g]), ym, px(c.high[k][g]), ym, "interval");
          svg.line(px(c.low[k][g]), ym - cap, px(c.low[k][g]), ym + cap, "interval");
          svg.line(px(c.high[k][g]), ym - cap, px(c.high[k][g]), ym + cap, "interval");
        }
      }
    }
    svg.line(px(std::max(0.0, r.lo)), f.top, px(std::max(0.0, r.lo)), f.bottom, "baseline");
  }
  return svg.finish();
}

std::string html_table(const Table& t) {
  auto align = [&](size_t c) { return c < t.numeric.size() && t.numeric[c] ? " class=\"num\"" : ""; };
  std::string s = "<div class=\"table-wrap\"><table>";
  if (!t.caption.empty()) s += "<caption>" + escape(t.caption) + "</caption>";
  s += "<thead><tr>";
  for (size_t c = 0; c < t.header.size(); c++) s += std::string("<th") + align(c) + ">" + escape(t.header[c]) + "</th>";
  s += "</tr></thead><tbody>";
  for (const auto& row : t.rows) {
    s += "<tr>";
    for (size_t c = 0; c < row.size(); c++) s += std::string("<td") + align(c) + ">" + escape(row[c]) + "</td>";
    s += "</tr>";
  }
  return s + "</tbody></table></div>";
}

HtmlReport::HtmlReport(std::string title) : title_(std::move(title)) {}

void HtmlReport::heading(std::string_view text, int level) {
  level = std::clamp(level, 1, 4);
  body_ += "<h" + std::to_string(level) + ">" + escape(text) + "</h" + std::to_string(level) + ">\n";
}
void HtmlReport::paragraph(std::string_view text) { body_ += "<p>" + escape(text) + "</p>\n"; }
void HtmlReport::note(std::string_view text) { body_ += "<p class=\"note\">" + escape(text) + "</p>\n"; }
void HtmlReport::html(std::string_view trusted) { body_ += std::string(trusted) + "\n"; }
void HtmlReport::open_details(std::string_view summary, bool open) {
  body_ += std::string("<details") + (open ? " open" : "") + "><summary>" + escape(summary) + "</summary>\n";
}
void HtmlReport::close_details() { body_ += "</details>\n"; }
void HtmlReport::preformatted(std::string_view text) { body_ += "<pre>" + escape(text) + "</pre>\n"; }

std::string HtmlReport::str() const {
  static const char* style = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Noto Sans", "DejaVu Sans", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
.note { color: #555; font-size: 13px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
caption { text-align: left; color: #555; padding-bottom: 4px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: 8px; font-size: 12px; }
details { margin: 6px 0; } summary { cursor: pointer; }
svg.chart { display: block; margin: 10px 0 18px; max-width: 100%; height: auto; font-size: 11px; }
svg.chart text { fill: #333; }
svg.chart .chart-title { font-size: 13px; font-weight: 600; }
svg.chart .gridline { stroke: #e6e6e6; }
svg.chart .frame { fill: none; stroke: #bbb; }
svg.chart .baseline { stroke: #888; }
svg.chart .line { fill: none; stroke-width: 1.8; }
svg.chart .band { opacity: 0.15; stroke: none; }
svg.chart .interval { stroke: #222; stroke-width: 1.2; }
svg.chart .point { fill-opacity: 0.7; stroke-width: 0.5; }
)";
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
         "content=\"width=device-width, initial-scale=1\"><title>" +
         escape(title_) + "</title><style>" + style + "</style></head><body>\n<h1>" + escape(title_) + "</h1>\n" + body_ +
         "</body></html>\n";
}

void HtmlReport::write(const std::filesystem::path& path) const {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, ": cannot open for writing");
    out << str();
    if (!out.flush()) fail(tmp, ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace tiller::eval::html
