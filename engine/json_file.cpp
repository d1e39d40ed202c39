// JSON and text file reading with errors that name the file; atomic text file writes.
#include "engine/json_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace tiller {

std::string json_excerpt(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string json_optional_string(const json& j, const char* key, const std::string& where, const std::string& fallback) {
  if (!j.is_object()) fail(where, ": expected a JSON object, found ", json_excerpt(j));
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail(where, ".", key, ": expected a string or null, found ", json_excerpt(*it));
  return it->get<std::string>();
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open (", std::strerror(errno), ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path.string(), ": read error");
  return ss.str();
}

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(tmp.string(), ": cannot open for writing (", std::strerror(errno), ")");
    out << text;
    if (!out.flush()) fail(tmp.string(), ": write failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path.string(), ": cannot replace it with ", tmp.string(), " (", ec.message(), ")");
}

json read_json_file(const std::filesystem::path& path) { return parse_json_text(read_text_file(path), path.string()); }

json parse_json_text(std::string_view text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(source, ": malformed JSON at byte ", e.byte, " (", e.what(),
         "). Expected a valid JSON document; check the file is complete and not an HTML error page.");
  } catch (const json::exception& e) {  // a number past double's range
    fail(source, ": JSON that cannot be read (", e.what(), ")");
  }
}

}  // namespace tiller
