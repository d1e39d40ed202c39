// A read-only memory mapping of a whole file that remembers what the file was when it was opened
// (engine/file_stamp.h), so tiller can refuse weights written in place while mapped. The base of
// the safetensors and GGUF readers: one place that opens, maps, registers and unmaps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "engine/file_stamp.h"

namespace tiller {

class MappedFile {
 public:
  virtual ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const FileStamp& stamp() const { return stamp_; }
  // Whether the file on disk is still the one mapped and, when `what` is given, how it changed.
  FileChange changed_on_disk(std::string* what = nullptr) const;
  // Throws Error for a file modified in place since it was mapped, naming `while_doing`
  // ("loading", "serving", ...). A file replaced by rename passes: the mapping holds the old one.
  void check_unchanged(const std::string& while_doing) const;

 protected:
  MappedFile() = default;
  // Opens, stamps and maps `path` (an empty file maps to nothing); throws Error naming the file.
  void map(const std::filesystem::path& path);

  std::filesystem::path path_;
  const uint8_t* base_ = nullptr;  // [size_] bytes
  size_t size_ = 0;
  FileStamp stamp_;
};

}  // namespace tiller
