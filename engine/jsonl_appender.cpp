// Whole-line appends with O_APPEND and one write per line; torn tails cut at open.
#include "engine/jsonl_appender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/json_file.h"

namespace tiller {

JsonlAppender::JsonlAppender(const std::filesystem::path& path, const std::function<void(std::string_view)>& on_line)
    : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path.string(), ": cannot open for appending (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    ::close(fd_);
    fail(path.string(), ": cannot stat (", std::strerror(errno), ")");
  }
  // Read what is there in blocks, keeping only the unfinished tail between them.
  std::string pending;
  size_t complete = 0, offset = 0;
  char block[1 << 16];
  while (true) {
    const ssize_t n = ::pread(fd_, block, sizeof block, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd_);
      fail(path.string(), ": read error (", std::strerror(errno), ")");
    }
    if (n == 0) break;
    pending.append(block, size_t(n));
    offset += size_t(n);
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      if (on_line) on_line(std::string_view(pending).substr(start, nl - start));
      start = nl + 1;
    }
    complete += start;
    pending.erase(0, start);
  }
  if (!pending.empty()) {  // a last line without its newline: an append that never finished
    torn_ = int64_t(pending.size());
    if (::ftruncate(fd_, off_t(complete)) != 0) {
      ::close(fd_);
      fail(path.string(), ": cannot cut off its unfinished last line (", std::strerror(errno), ")");
    }
  }
}

JsonlAppender::~JsonlAppender() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlAppender::append(std::string_view line) {
  TILLER_CHECK(line.find('\n') == std::string_view::npos, "a JSONL line must not contain a newline");
  std::string text;
  text.reserve(line.size() + 1);
  text.append(line);
  text.push_back('\n');
  std::lock_guard lock(mutex_);
  size_t done = 0;
  while (done < text.size()) {  // one write; only a short write (signal, disk full) loops
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      if (done > 0) {  // cut the partial line back off, so the file stays whole lines
        struct stat st {};
        if (::fstat(fd_, &st) == 0) (void)!::ftruncate(fd_, st.st_size - off_t(done));
      }
      fail(path_.string(), ": write failed (", n < 0 ? std::strerror(err) : "no space", "; disk full?)");
    }
    done += size_t(n);
  }
}

void JsonlAppender::sync() {
  std::lock_guard lock(mutex_);
  if (::fdatasync(fd_) != 0) fail(path_.string(), ": fdatasync failed (", std::strerror(errno), ")");
}

std::vector<std::string> read_jsonl_lines(const std::filesystem::path& path) {
  std::vector<std::string> lines;
  if (!std::filesystem::exists(path)) return lines;
  const std::string text = read_text_file(path);
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    if (end > start) lines.push_back(text.substr(start, end - start));
  return lines;
}

void write_jsonl_atomically(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::filesystem::remove(tmp);
  {
    JsonlAppender out(tmp);
    for (const std::string& line : lines) out.append(line);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path.string(), ": cannot replace it with ", tmp.string(), " (", ec.message(), ")");
}

}  // namespace tiller
