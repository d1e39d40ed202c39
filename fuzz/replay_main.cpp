// tiller_fuzz_replay: runs fuzz targets over files (the committed corpus and regression inputs
// by default) without libFuzzer, so any compiler (and the sanitizer build) checks every input
// that ever found a bug or gained coverage.
//
//   tiller_fuzz_replay                         every target over fuzz/corpus/<t> and fuzz/regressions/<t>
//   tiller_fuzz_replay --target NAME PATH...   one target over files or folders
//   tiller_fuzz_replay --list
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>

#include "fuzz/fuzz_target.h"

using namespace tiller::fuzz;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_under(const fs::path& p) {
  std::vector<fs::path> out;
  if (fs::is_regular_file(p)) return {p};
  if (!fs::is_directory(p)) return out;
  for (const auto& e : fs::recursive_directory_iterator(p))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs one input; false (with the file named) when the target failed on it.
bool replay(const Target& t, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  try {
    t.fn(bytes);
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL %s %s: %s\n", t.name, file.c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "FAIL %s %s: a non-standard exception\n", t.name, file.c_str());
  }
  return false;
}

int usage() {
  std::fprintf(stderr, "usage: tiller_fuzz_replay [--list] [--target NAME PATH...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--list") {
    for (const Target& t : targets()) std::printf("%-18s %s\n", t.name, t.what);
    return 0;
  }
  std::vector<std::pair<const Target*, std::vector<fs::path>>> plan;
  if (!args.empty()) {
    if (args[0] != "--target" || args.size() < 3) return usage();
    const Target* t = find_target(args[1]);
    if (!t) {
      std::fprintf(stderr, "tiller_fuzz_replay: no target '%s' (--list shows them)\n", args[1].c_str());
      return 2;
    }
    std::vector<fs::path> files;
    for (size_t i = 2; i < args.size(); i++)
      for (auto& f : files_under(args[i])) files.push_back(f);
    plan.push_back({t, files});
  } else {
    const fs::path root = source_dir() / "fuzz";
    for (const Target& t : targets()) {
      std::vector<fs::path> files = files_under(root / "corpus" / t.name);
      for (auto& f : files_under(root / "regressions" / t.name)) files.push_back(f);
      plan.push_back({&t, files});
    }
  }
  int failures = 0;
  for (const auto& [t, files] : plan) {
    const auto t0 = std::chrono::steady_clock::now();
    int failed = 0;
    for (const fs::path& f : files) failed += replay(*t, f) ? 0 : 1;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-18s %5zu inputs  %4d failed  %6.2f s\n", t->name, files.size(), failed, s);
    std::fflush(stdout);
    failures += failed;
  }
  if (failures) std::fprintf(stderr, "tiller_fuzz_replay: %d inputs failed\n", failures);
  return failures ? 1 : 0;
}
