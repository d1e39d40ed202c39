// What the dataset loaders share: finding a set's file in a folder, recording checksums, and
// listing languages in the set's order.
#pragma once

#include <filesystem>
#include <string>

#include "eval/dataset.h"

namespace tiller::eval {

// `path` itself when it is a file, else `path / default_name`; Error when neither exists.
std::filesystem::path resolve_dataset_file(const std::filesystem::path& path, const std::string& default_name,
                                           const std::string& kind);
// `path` must be a folder; Error otherwise.
void require_dataset_folder(const std::filesystem::path& path, const std::string& kind, const std::string& layout);
// Records a file read, with its SHA-256.
void add_dataset_file(Dataset& dataset, const std::filesystem::path& file);
// Fills dataset.languages from the items (first appearance order) and refuses an empty set.
void finish_dataset(Dataset& dataset);

}  // namespace tiller::eval
