// File stamps from fstat/stat and their comparison.
#include "engine/file_stamp.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace tiller {

namespace {

FileStamp from_stat(const struct stat& st) {
  FileStamp s;
  s.device = st.st_dev;
  s.inode = st.st_ino;
  s.size = st.st_size;
  s.modified = st.st_mtim;
  s.changed = st.st_ctim;
  return s;
}

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

}  // namespace

FileStamp FileStamp::of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("fstat failed (", std::strerror(errno), ")");
  return from_stat(st);
}

std::optional<FileStamp> FileStamp::of(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return from_stat(st);
}

FileChange compare(const FileStamp& then, const std::optional<FileStamp>& now, std::string* what) {
  if (!now) {
    if (what) *what = "the file was deleted or moved away";
    return FileChange::Replaced;
  }
  if (now->device != then.device || now->inode != then.inode) {
    if (what) *what = "another file was put in its place";
    return FileChange::Replaced;
  }
  if (now->size != then.size) {
    if (what) *what = "its size went from " + std::to_string(then.size) + " to " + std::to_string(now->size) + " bytes";
    return FileChange::Modified;
  }
  if (!same_time(now->modified, then.modified) || !same_time(now->changed, then.changed)) {
    if (what) *what = "it was written to (its modification or change time moved)";
    return FileChange::Modified;
  }
  return FileChange::None;
}

}  // namespace tiller
