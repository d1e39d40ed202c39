// Whole-line JSONL reading and appending.
#include "eval/jsonl_file.h"

#include <fstream>

#include "engine/error.h"

namespace tiller::eval {

std::vector<std::string> read_jsonl_lines(const std::filesystem::path& path, bool repair) {
  std::vector<std::string> lines;
  if (!std::filesystem::exists(path)) return lines;
  const std::string text = read_text_file(path);
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      if (repair) std::filesystem::resize_file(path, start);
      break;
    }
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

JsonlAppender::JsonlAppender(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "ab");
  if (!file_) fail(path.string(), ": cannot open for appending");
}

JsonlAppender::~JsonlAppender() {
  if (file_) std::fclose(file_);
}

void JsonlAppender::append(const std::string& line) {
  std::string whole = line;
  whole += '\n';
  std::lock_guard lock(mutex_);
  if (std::fwrite(whole.data(), 1, whole.size(), file_) != whole.size() || std::fflush(file_) != 0)
    fail(path_.string(), ": write failed (disk full?)");
}

void write_jsonl_atomically(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp, ": cannot open for writing");
    for (const auto& l : lines) out << l << '\n';
    if (!out.flush()) fail(tmp, ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace tiller::eval
