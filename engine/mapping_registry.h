// The files tiller has memory-mapped, so a fault in one (SIGBUS: the file was truncated while
// mapped, and a read fell past its new end) ends the process with a message naming the file
// instead of a bare "Bus error".
#pragma once

#include <cstddef>
#include <filesystem>

namespace tiller {

void register_mapping(const void* base, size_t size, const std::filesystem::path& path);
void unregister_mapping(const void* base);

// Installs the SIGBUS handler that names the mapped file (the tiller binary calls it at start).
void install_mapping_fault_handler();

}  // namespace tiller
