// Checked field access for tokenizer.json components.
#include "engine/tokenizer/hf_json.h"

#include "engine/error.h"

namespace tiller {
namespace {

const json& field(const json& j, const char* key, const std::string& where) {
  if (!j.is_object()) fail(where, ": expected a JSON object, found ", json_excerpt(j));
  auto it = j.find(key);
  if (it == j.end()) fail(where, ": missing \"", key, "\" (found keys ", json_excerpt(j), ")");
  return *it;
}

}  // namespace

std::string json_type(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, ": expected an object with a \"type\", found ", json_excerpt(j));
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail(where, ": expected a \"type\" string, found ", json_excerpt(j));
  return it->get<std::string>();
}

std::string json_string(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_string()) fail(where, ".", key, ": expected a string, found ", json_excerpt(v));
  return v.get<std::string>();
}

bool json_bool(const json& j, const char* key, const std::string& where, bool fallback) {
  if (!j.is_object()) fail(where, ": expected a JSON object, found ", json_excerpt(j));
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(where, ".", key, ": expected true or false, found ", json_excerpt(*it));
  return it->get<bool>();
}

const json& json_array(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_array()) fail(where, ".", key, ": expected a list, found ", json_excerpt(v));
  return v;
}

const json& json_object(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  if (!v.is_object()) fail(where, ".", key, ": expected an object, found ", json_excerpt(v));
  return v;
}

std::unique_ptr<HfRegex> make_hf_pattern(const json& j, const std::string& where) {
  const json& p = field(j, "pattern", where);
  const std::string path = where + ".pattern";
  if (p.is_object() && p.size() == 1) {
    if (auto it = p.find("String"); it != p.end() && it->is_string())
      return std::make_unique<HfRegex>(it->get<std::string>(), true, path);
    if (auto it = p.find("Regex"); it != p.end() && it->is_string())
      return std::make_unique<HfRegex>(it->get<std::string>(), false, path);
  }
  fail(path, ": expected {\"String\": ...} or {\"Regex\": ...}, found ", json_excerpt(p));
}

}  // namespace tiller
