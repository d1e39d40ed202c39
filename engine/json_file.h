// Reading JSON and text files with errors that name the file and the place it went wrong; writing
// text files atomically.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace tiller {

using json = nlohmann::json;

// Parses a whole file; throws Error("<file>: malformed JSON at byte N: ...") or ("cannot open").
json read_json_file(const std::filesystem::path& path);
// Parses a document read from `source` (named in errors) with read_json_file's errors.
json parse_json_text(std::string_view text, const std::string& source);

// At most 80 characters of `j` as JSON, for error messages.
std::string json_excerpt(const json& j);
// An optional string field of an object: `fallback` when absent or null, an Error naming
// `where`.`key` and what was found when it holds anything else.
std::string json_optional_string(const json& j, const char* key, const std::string& where,
                                 const std::string& fallback = {});

// Reads a whole file into a string; throws Error naming the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

// Writes `text` to a temporary file beside `path` and renames it into place, so a failure never
// leaves a truncated file; throws Error naming the file.
void write_text_file(const std::filesystem::path& path, const std::string& text);

}  // namespace tiller
