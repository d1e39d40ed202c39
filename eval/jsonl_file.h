// JSONL files written a whole line at a time, so a killed run leaves at most one unfinished last
// line, which the next reader cuts off: evaluation items and the endpoint judge's answer cache.
#pragma once

#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "engine/json_file.h"

namespace tiller::eval {

// The complete lines of `path` (empty when it does not exist). A last line without its newline
// (a write cut short) is dropped and, with `repair`, cut off the file.
std::vector<std::string> read_jsonl_lines(const std::filesystem::path& path, bool repair);

// Appends lines; each append is one write of the whole line followed by a flush (thread-safe).
class JsonlAppender {
 public:
  explicit JsonlAppender(const std::filesystem::path& path);
  ~JsonlAppender();
  JsonlAppender(const JsonlAppender&) = delete;
  JsonlAppender& operator=(const JsonlAppender&) = delete;
  void append(const std::string& line);  // without the newline
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::mutex mutex_;
};

// Writes `lines` to `path` through a temporary file and a rename (all or nothing).
void write_jsonl_atomically(const std::filesystem::path& path, const std::vector<std::string>& lines);

}  // namespace tiller::eval
