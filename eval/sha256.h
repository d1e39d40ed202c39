// SHA-256 (FIPS 180-4): dataset checksums comparable with `sha256sum`, and cache keys.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace tiller::eval {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view bytes);
  std::array<uint8_t, 32> digest();  // finishes; the object is spent afterwards
  std::string hex();                 // 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

}  // namespace tiller::eval
