// Append-only JSON-lines output that survives being killed at any moment (kill -9, a crash, the
// machine going down after sync()): each line goes out in one write() of the whole line and its
// newline, and opening an existing file first cuts off a last line that has no newline (what an
// interrupted write leaves), so a file only ever holds whole lines. A resumed run learns from the
// lines already there what is done and appends only what is missing. (tiller batch, tiller eval's
// items.jsonl and its endpoint judge's answer cache use it; any long job writing results line by
// line can.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace tiller {

class JsonlAppender {
 public:
  // Opens `path` for appending, creating it (and no folders). A torn last line is cut off first;
  // `on_line` (optional) then sees every complete line already there, in order. Throws Error.
  explicit JsonlAppender(const std::filesystem::path& path,
                         const std::function<void(std::string_view line)>& on_line = {});
  ~JsonlAppender();
  JsonlAppender(const JsonlAppender&) = delete;
  JsonlAppender& operator=(const JsonlAppender&) = delete;

  // Appends `line` (which must not contain a newline) and its newline. Throws Error when the
  // write fails (disk full); what was written of this line is cut off again, so the file stays whole.
  // Thread-safe: concurrent appends never interleave.
  void append(std::string_view line);
  // Waits until what was appended is on the disk (fdatasync): for surviving power loss, not kills.
  void sync();

  const std::filesystem::path& path() const { return path_; }
  int64_t torn_bytes_cut() const { return torn_; }  // bytes of a torn last line removed at open

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  int64_t torn_ = 0;
  std::mutex mutex_;
};

// The complete, non-empty lines of `path` (none when it does not exist), without changing it: a
// last line without its newline is not one of them.
std::vector<std::string> read_jsonl_lines(const std::filesystem::path& path);

// Replaces `path` by `lines`, all or nothing: written to a temporary file beside it, then renamed.
void write_jsonl_atomically(const std::filesystem::path& path, const std::vector<std::string>& lines);

}  // namespace tiller
