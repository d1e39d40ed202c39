// Tokenizer encode throughput (MB/s, one core) on multilingual text, beside HF tokenizers on the
// same documents in the same run (bench_tokenizer_peer.py).
//
//   tiller-bench-tokenizer [--shared DIR] [--tokenizers llama3,qwen2,...] [--passes N]
//                          [--python PATH] [--no-peer] [--per-language-kb N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "bench/flags.h"
#include "engine/error.h"
#include "engine/json_file.h"
#include "engine/tokenizer/tokenizer.h"

namespace {

using namespace tiller;
namespace fs = std::filesystem;

const char* const kLanguages[] = {"English", "Spanish", "German", "French", "Chinese", "Arabic",
                                  "Bulgarian", "Thai", "Hindi", "Bengali", "Tamil", "Telugu"};
const char* const kTasks[] = {"sentiment", "antonym", "country-capital", "country-currency", "ag_news"};

// Documents of about 2 KB (lines joined with newlines), `per_language` bytes of each language
// from the Soteria task files, so every script weighs the same.
std::vector<std::string> load_documents(const fs::path& shared, size_t per_language) {
  std::vector<std::string> docs;
  for (const char* lang : kLanguages) {
    size_t taken = 0;
    std::string doc;
    for (const char* task : kTasks) {
      const fs::path p = shared / "data" / "attribution" / "soteria" / (std::string(task) + "_" + lang + ".json");
      if (!fs::exists(p) || taken >= per_language) continue;
      for (const json& row : read_json_file(p)) {
        for (const char* key : {"input", "output"}) {
          if (!row.contains(key) || !row[key].is_string()) continue;
          const std::string& line = row[key].get_ref<const std::string&>();
          doc += line;
          doc += '\n';
          taken += line.size() + 1;
        }
        if (doc.size() >= 2048) docs.push_back(std::move(doc)), doc.clear();
        if (taken >= per_language) break;
      }
    }
    if (!doc.empty()) docs.push_back(std::move(doc));
  }
  return docs;
}

std::string checksum(const std::vector<std::vector<int32_t>>& all) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const auto& ids : all) {
    for (int32_t id : ids) h = (h ^ uint32_t(id)) * 0x100000001B3ull;
    h = (h ^ 0xFFFFFFFFull) * 0x100000001B3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  pclose(pipe);
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

constexpr const char* kUsage = R"(Usage: tiller-bench-tokenizer [--shared DIR] [--tokenizers llama3,qwen2,...] [--passes N]
                              [--python PATH] [--no-peer] [--per-language-kb N]
Encode throughput (MB/s, one core) on multilingual text, beside HF tokenizers on the same text.
)";

int main(int argc, char** argv) {
  const fs::path source_root = fs::path(__FILE__).parent_path().parent_path();
  fs::path shared = source_root.parent_path() / "shared";
  if (const char* env = std::getenv("TILLER_SHARED")) shared = env;
  std::string python = (source_root / ".venv-tokenizers" / "bin" / "python").string();
  std::vector<std::string> names = {"llama3", "qwen2", "mistral-7b-instruct-v0.3", "smollm2", "llama2-spm"};
  int passes = 3;
  bool peer = true;
  size_t per_language_kb = 256;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--shared") shared = next();
    else if (a == "--python") python = next();
    else if (a == "--passes") passes = std::max(1, std::stoi(next()));
    else if (a == "--no-peer") peer = false;
    else if (a == "--per-language-kb") per_language_kb = std::stoul(next());
    else if (a == "--tokenizers") {
      names.clear();
      std::stringstream ss(next());
      for (std::string n; std::getline(ss, n, ',');) names.push_back(n);
    } else if (a == "--help" || a == "-h") {
      tiller::bench::usage_exit(kUsage);
    } else {
      tiller::bench::usage_exit(kUsage, "unknown flag " + a);
    }
  }
  if (!fs::exists(shared / "data" / "attribution" / "soteria")) {
    std::cerr << shared.string() << ": no data/attribution/soteria here; pass --shared or set TILLER_SHARED\n";
    return 1;
  }
  if (peer && !fs::exists(python)) {
    std::cerr << "note: " << python << " not found, running without the HF peer (make it with "
              << "python3 -m venv .venv-tokenizers && .venv-tokenizers/bin/pip install -r "
              << "tests/fixtures/tokenizer_requirements.txt, or pass --python)\n";
    peer = false;
  }

  const auto docs = load_documents(shared, per_language_kb * 1024);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  const fs::path docs_path = fs::temp_directory_path() / ("tiller_bench_tokenizer_" + std::to_string(getpid()) + ".json");
  std::ofstream(docs_path) << json(docs).dump();
  std::printf("%zu documents, %.2f MB (%zu KB of each of %zu languages), one core, %d passes\n", docs.size(),
              bytes / 1e6, per_language_kb, std::size(kLanguages), passes);
  std::printf("%-26s %10s %10s %12s %12s %12s %10s  %s\n", "tokenizer", "tokens", "MB/s 1st", "MB/s best",
              "HF MB/s", "HF batch", "speedup", "same ids");

  for (const auto& name : names) {
    const fs::path dir = shared / "data" / "tokenizers" / name;
    std::unique_ptr<Tokenizer> tok;
    try {
      tok = load_tokenizer(dir);
    } catch (const Error& e) {
      std::printf("%-26s failed to load: %s\n", name.c_str(), e.what());
      continue;
    }
    std::vector<std::vector<int32_t>> all(docs.size());
    double first = 0, best = 1e30;
    size_t tokens = 0;
    for (int p = 0; p < passes; p++) {
      const auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < docs.size(); i++) all[i] = tok->encode(docs[i], {.add_special = false, .parse_special = true});
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (p == 0) first = s;
      best = std::min(best, s);
    }
    for (const auto& ids : all) tokens += ids.size();
    const std::string sum = checksum(all);

    double hf = 0, hf_batch = 0;
    std::string same = "-";
    if (peer) {
      const std::string out = run_command(shell_quote(python) + " " +
                                          shell_quote((source_root / "bench" / "bench_tokenizer_peer.py").string()) +
                                          " --docs " + shell_quote(docs_path.string()) + " --tokenizer " +
                                          shell_quote(dir.string()) + " --passes " + std::to_string(passes));
      try {
        const json r = json::parse(out.substr(out.rfind('{')));
        hf = bytes / r.at("best_s").get<double>() / 1e6;
        hf_batch = bytes / r.at("batch_best_s").get<double>() / 1e6;
        same = r.at("checksum").get<std::string>() == sum ? "yes" : "NO (" + r.at("checksum").get<std::string>() + ")";
      } catch (const std::exception&) {
        same = "peer failed: " + out.substr(0, 200);
      }
    }
    const double mbps = bytes / best / 1e6;
    const double hf_best = std::max(hf, hf_batch);
    std::printf("%-26s %10zu %10.2f %12.2f %12.2f %12.2f %9.2fx  %s\n", name.c_str(), tokens, bytes / first / 1e6, mbps,
                hf, hf_batch, hf_best > 0 ? mbps / hf_best : 0.0, same.c_str());
    std::fflush(stdout);
  }
  fs::remove(docs_path);
  return 0;
}
