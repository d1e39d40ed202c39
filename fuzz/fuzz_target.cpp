// The target registry and the helpers targets share.
#include "fuzz/fuzz_target.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "engine/error.h"

namespace tiller::fuzz {

namespace {

std::vector<Target>& registry() {
  static std::vector<Target> all;
  return all;
}

struct Scratch {
  std::filesystem::path dir;
  Scratch() {
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = std::string(base) + "/tiller-fuzz-XXXXXX";
    if (!mkdtemp(pattern.data())) {
      std::perror("tiller fuzz: mkdtemp");
      std::abort();
    }
    dir = pattern;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

const std::vector<Target>& targets() { return registry(); }

const Target* find_target(std::string_view name) {
  for (const Target& t : registry())
    if (name == t.name) return &t;
  return nullptr;
}

Register::Register(const char* name, TargetFn fn, const char* what) { registry().push_back({name, fn, what}); }

bool accepted(const std::function<void()>& f) {
  try {
    f();
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<std::string_view> split_parts(std::string_view data, size_t parts) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const size_t at = data.find(kPartSeparator);
    if (at == std::string_view::npos) break;
    out.push_back(data.substr(0, at));
    data.remove_prefix(at + kPartSeparator.size());
  }
  out.push_back(data);
  out.resize(parts);
  return out;
}

const std::filesystem::path& scratch_dir() {
  static Scratch s;
  return s.dir;
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "tiller fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

std::filesystem::path source_dir() {
  if (const char* env = std::getenv("TILLER_SOURCE_DIR")) return env;
  return TILLER_SOURCE_DIR;
}

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("TILLER_SHARED")) return env;
  return source_dir().parent_path() / "shared";
}

}  // namespace tiller::fuzz
