// Checked field access for tokenizer.json: errors name the JSON path and what was found there.
#pragma once

#include <memory>
#include <string>

#include "engine/json_file.h"
#include "engine/tokenizer/hf_regex.h"

namespace tiller {

// The "type" string of a component object.
std::string json_type(const json& j, const std::string& where);
std::string json_string(const json& j, const char* key, const std::string& where);
// A bool field; absent or null gives `fallback`.
bool json_bool(const json& j, const char* key, const std::string& where, bool fallback);
const json& json_array(const json& j, const char* key, const std::string& where);
const json& json_object(const json& j, const char* key, const std::string& where);
// (optional string fields: json_optional_string, engine/json_file.h)

// j["pattern"]: {"String": "..."} (literal) or {"Regex": "..."} (Oniguruma syntax).
std::unique_ptr<HfRegex> make_hf_pattern(const json& j, const std::string& where);

}  // namespace tiller
