// Renders an HTML file in headless Chromium and checks that every chart drew its marks.
//
// A copy of the page gets a small script that, after layout, measures each <svg class="chart">'s
// elements of class "mark" (eval/report_html.h) and lists those with a non-empty box inside the
// chart; Chromium's --dump-dom prints the page after the script ran. A second run writes a
// screenshot for a person to look at. Without Chromium (TILLER_CHROMIUM or chromium on PATH),
// `available` is false and the caller skips.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_run.h"

namespace tiller::test {

struct ChartDrawn {
  std::string id, title;
  int expected = 0;  // data-marks: the marks the chart meant to draw
  int drawn = 0;     // marks Chromium laid out with a non-empty box inside the chart
};

struct BrowserRender {
  bool available = false;
  std::string why;                  // when not available or the render failed
  std::vector<ChartDrawn> charts;
  std::filesystem::path screenshot;  // written when asked and Chromium managed
  std::string dom;
};

// Where tests leave screenshots for a person to look at: <build>/test-artifacts.
inline std::filesystem::path artifacts_dir() {
  return std::filesystem::path(TILLER_BINARY).parent_path() / "test-artifacts";
}

inline std::string find_chromium() {
  if (const char* env = std::getenv("TILLER_CHROMIUM")) return env;
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    if (run_shell(std::string("command -v ") + name + " >/dev/null").status == 0) return name;
  }
  return "";
}

inline BrowserRender render_in_chromium(const std::filesystem::path& html, const std::filesystem::path& screenshot = {}) {
  BrowserRender r;
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    r.why = "Chromium not found (apt-get install chromium, or set TILLER_CHROMIUM)";
    return r;
  }
  r.available = true;
  std::ifstream in(html, std::ios::binary);
  std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const char* probe = R"(<script>
window.addEventListener('load', () => {
  const out = [];
  document.querySelectorAll('svg.chart').forEach((svg, i) => {
    const box = svg.getBoundingClientRect();
    let drawn = 0;
    svg.querySelectorAll('.mark').forEach(m => {
      const b = m.getBoundingClientRect();
      const visible = getComputedStyle(m).display !== 'none' && getComputedStyle(m).visibility !== 'hidden';
      if (visible && (b.width > 0 || b.height > 0) && b.right >= box.left - 1 && b.left <= box.right + 1 &&
          b.bottom >= box.top - 1 && b.top <= box.bottom + 1) drawn++;
    });
    out.push({id: svg.id || ('chart' + i), title: svg.dataset.title || '', expected: +svg.dataset.marks, drawn});
  });
  const pre = document.createElement('pre');
  pre.id = 'tiller-chart-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>)";
  const size_t body_end = page.rfind("</body>");
  page.insert(body_end == std::string::npos ? page.size() : body_end, probe);
  const auto dir = scratch_path("chromium-" + html.stem().string());
  std::filesystem::create_directories(dir);
  const auto probed = dir / "probed.html";
  std::ofstream(probed, std::ios::binary) << page;
  const std::string common = "timeout 120 " + chromium +
                             " --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars "
                             "--disable-background-networking --user-data-dir=" + (dir / "profile").string() +
                             " --virtual-time-budget=5000 ";
  const CliRun dump = run_shell(common + "--dump-dom 'file://" + std::filesystem::absolute(probed).string() + "' 2>/dev/null");
  r.dom = dump.out;
  const size_t at = r.dom.find("<pre id=\"tiller-chart-check\">");
  if (dump.status != 0 || at == std::string::npos) {
    r.why = "Chromium did not render the page (exit " + std::to_string(dump.status) + "): " + r.dom.substr(0, 400);
    std::filesystem::remove_all(dir);
    return r;
  }
  const size_t start = r.dom.find('>', at) + 1, end = r.dom.find("</pre>", start);
  std::string text = r.dom.substr(start, end - start);
  for (auto [from, to] : {std::pair{"&quot;", "\""}, {"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}}) {
    for (size_t p = 0; (p = text.find(from, p)) != std::string::npos; p += std::string(to).size())
      text.replace(p, std::string(from).size(), to);
  }
  for (const auto& c : nlohmann::json::parse(text))
    r.charts.push_back({c["id"], c["title"], c["expected"].get<int>(), c["drawn"].get<int>()});
  if (!screenshot.empty()) {
    std::filesystem::create_directories(std::filesystem::absolute(screenshot).parent_path());
    run_shell(common + "--window-size=1200,2400 --screenshot=" + std::filesystem::absolute(screenshot).string() + " 'file://" +
              std::filesystem::absolute(html).string() + "' >/dev/null 2>&1");
    if (std::filesystem::exists(screenshot)) r.screenshot = screenshot;
  }
  std::filesystem::remove_all(dir);
  return r;
}

// Every chart drew every mark it meant to, and at least one chart drew something.
inline void check_charts_drawn(const BrowserRender& r, size_t expected_charts) {
  REQUIRE_MESSAGE(r.why.empty(), r.why);
  CHECK(r.charts.size() == expected_charts);
  for (const auto& c : r.charts) {
    CHECK_MESSAGE(c.expected > 0, c.id << " (" << c.title << ") has no marks");
    CHECK_MESSAGE(c.drawn == c.expected, c.id << " (" << c.title << "): drew " << c.drawn << " of " << c.expected << " marks");
  }
}

}  // namespace tiller::test
