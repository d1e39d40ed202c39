#include "engine/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/error.h"
#include "engine/mapping_registry.h"

namespace tiller {

void MappedFile::map(const std::filesystem::path& path) {
  path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot open (", std::strerror(errno), ")");
  try {
    stamp_ = FileStamp::of(fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  size_ = size_t(stamp_.size);
  void* map = size_ ? mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0) : nullptr;
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail(path.string(), ": mmap failed (", std::strerror(map_errno), ")");
  base_ = static_cast<const uint8_t*>(map);
  if (base_) register_mapping(base_, size_, path);
}

MappedFile::~MappedFile() {
  if (base_) {
    unregister_mapping(base_);
    munmap(const_cast<uint8_t*>(base_), size_);
  }
}

FileChange MappedFile::changed_on_disk(std::string* what) const { return compare(stamp_, FileStamp::of(path_), what); }

void MappedFile::check_unchanged(const std::string& while_doing) const {
  std::string what;
  if (changed_on_disk(&what) != FileChange::Modified) return;
  fail(path_.string(), " changed on disk while tiller had it mapped (", what, ", noticed while ", while_doing,
       "): the weights read through the mapping can no longer be trusted. Another program is writing it in place; "
       "let it finish, then start again. (Replace model files by writing a new file and renaming it over the old one.)");
}

}  // namespace tiller
