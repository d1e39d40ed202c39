// What a file was when tiller opened it (device, inode, size, modification and change times), to
// tell later whether it changed. Weights and profiles are memory-mapped, and a mapping does not
// freeze the file: pages not yet read show whatever is on disk when they are read, and reading
// past the end of a truncated file faults. So a file written in place while mapped (the same
// inode, a new size or change time) can no longer be trusted, and is refused where tiller
// checks: at the end of loading, when a fingerprint is recorded, and while serving. A file
// replaced by rename (a new inode at the path, as downloaders and tiller's own writers do it)
// leaves the mapping whole and is only reported. The change time (ctime) cannot be set by
// user programs, so restoring the modification time does not hide a write.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <filesystem>
#include <optional>
#include <string>

namespace tiller {

struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  timespec modified{};
  timespec changed{};

  static FileStamp of(int fd);                                        // of an open file
  static std::optional<FileStamp> of(const std::filesystem::path&);  // nullopt when the path is gone
};

enum class FileChange {
  None,
  Replaced,  // another file now at the path (or none): the mapping still holds the old one whole
  Modified,  // written in place while mapped: bytes read through the mapping may be the new ones
};

// How `now` differs from `then`, with a description ("size 1024 -> 512 bytes") in `what`.
FileChange compare(const FileStamp& then, const std::optional<FileStamp>& now, std::string* what = nullptr);

}  // namespace tiller
