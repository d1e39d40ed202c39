// Test memory that ends where an inaccessible page begins (kernels must never read past an operand).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>

#include "test_util.h"

namespace tiller::test {

// Memory that ends where an inaccessible page begins, so a kernel reading one byte past the end
// of its operand crashes the test instead of passing by luck. The start is wherever that puts
// it: no alignment beyond the element size, as with a tensor inside a safetensors file.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) : bytes_(bytes) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    map_bytes_ = (bytes + page - 1) / page * page + page;
    void* m = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    map_ = static_cast<char*>(m);
    REQUIRE(mprotect(map_ + map_bytes_ - page, page, PROT_NONE) == 0);
    data_ = map_ + map_bytes_ - page - bytes;
  }
  ~GuardedBuffer() {
    if (map_) munmap(map_, map_bytes_);
  }
  GuardedBuffer(GuardedBuffer&& o) noexcept
      : map_(o.map_), data_(o.data_), bytes_(o.bytes_), map_bytes_(o.map_bytes_) {
    o.map_ = nullptr;
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(GuardedBuffer&&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(static_cast<void*>(data_));
  }

 private:
  char* map_ = nullptr;
  char* data_ = nullptr;
  size_t bytes_ = 0, map_bytes_ = 0;
};

}  // namespace tiller::test
